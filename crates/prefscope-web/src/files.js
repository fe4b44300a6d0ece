// Saving files from the page: bytes as a download, and a panel's pictures as one PNG.

/** Offer `bytes` (a Uint8Array) as a download named `filename`. */
export function downloadBytes(bytes, filename, mime) {
  const url = URL.createObjectURL(new Blob([bytes], { type: mime }));
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

// SVG presentation properties that the page sets in CSS; a serialised SVG needs them inline.
const STYLE_PROPS = ['fill', 'stroke', 'stroke-width', 'stroke-dasharray', 'opacity', 'font-size', 'font-weight', 'font-family', 'paint-order', 'display'];

function inlineStyles(source, clone) {
  const from = [source, ...source.querySelectorAll('*')];
  const to = [clone, ...clone.querySelectorAll('*')];
  from.forEach((el, i) => {
    const cs = getComputedStyle(el);
    to[i].setAttribute('style', STYLE_PROPS.map((p) => `${p}:${cs.getPropertyValue(p)}`).join(';'));
  });
}

function svgImage(svg, width, height) {
  const clone = svg.cloneNode(true);
  inlineStyles(svg, clone);
  clone.setAttribute('xmlns', 'http://www.w3.org/2000/svg');
  clone.setAttribute('width', width);
  clone.setAttribute('height', height);
  const url = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(new XMLSerializer().serializeToString(clone));
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error('the SVG could not be rasterised'));
    img.src = url;
  });
}

/**
 * Paint every visible canvas and SVG inside `root` at its on-screen place onto one white canvas
 * (2× for sharpness) and download it as `filename`. Resolves to the PNG's size in bytes.
 */
export async function exportPng(root, filename) {
  const box = root.getBoundingClientRect();
  const scale = 2;
  const out = document.createElement('canvas');
  out.width = Math.ceil(box.width * scale);
  out.height = Math.ceil(box.height * scale);
  const ctx = out.getContext('2d');
  ctx.scale(scale, scale);
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, box.width, box.height);
  for (const el of root.querySelectorAll('canvas, svg')) {
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height || el.closest('.hidden') || el.parentElement.closest('svg')) continue;
    const img = el instanceof HTMLCanvasElement ? el : await svgImage(el, r.width, r.height);
    ctx.drawImage(img, r.left - box.left, r.top - box.top, r.width, r.height);
  }
  const blob = await new Promise((resolve) => out.toBlob(resolve, 'image/png'));
  downloadBytes(blob, filename, 'image/png');
  return blob.size;
}
