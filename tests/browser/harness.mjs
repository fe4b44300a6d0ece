// The browser suite's harness: the static server, the helpers the cases share, and `check`, which
// runs one case and records its result. See playground.test.mjs for how the suite is run.

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const DONE_TIMEOUT_MS = Number(process.env.PREFSCOPE_DONE_TIMEOUT_MS || 300_000);
export const LOSS_TOLERANCE = 1e-4;
// The longest task allowed on the page's thread while the worker trains (see its test).
export const LONG_TASK_MS = 100;

// ---------------------------------------------------------------------------------------------
// A static file server for the dist dir.

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.wgsl': 'text/plain; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

export function serve(root) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    let rel = decodeURIComponent(url.pathname);
    if (rel.endsWith('/')) rel += 'index.html';
    const file = path.join(root, path.normalize(rel));
    if (!file.startsWith(root + path.sep)) {
      res.writeHead(403).end('forbidden');
      return;
    }
    fs.readFile(file, (err, body) => {
      if (err) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
        return;
      }
      res.writeHead(200, {
        'content-type': MIME[path.extname(file)] || 'application/octet-stream',
        'cache-control': 'no-store',
      });
      res.end(body);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}


// ---------------------------------------------------------------------------------------------
// Helpers

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const statusText = (page) => page.getByTestId('status').textContent();
export const hook = (page) => page.evaluate(() => {
  const h = window.__prefscope || {};
  return {
    backend: h.backend, adapter: h.adapter, status: h.status, accuracy: h.accuracy,
    losses: Array.from(h.losses || []), stepTimes: Array.from(h.stepTimes || []),
  };
});
export const stepsDone = (page) => page.evaluate(() => (window.__prefscope?.losses || []).length);

/** Wait for a landscape of the given plane; returns `window.__prefscope.landscape`. */
export async function landscapeReady(page, plane) {
  await page.waitForFunction((p) => {
    const L = window.__prefscope?.landscape;
    return L && ((L.status === 'ready' && L.plane === p) || L.status.startsWith('error'));
  }, plane, { timeout: 180_000, polling: 100 });
  const L = await page.evaluate(() => JSON.parse(JSON.stringify(window.__prefscope.landscape)));
  assert(L.status === 'ready', `landscape: ${L.status}`);
  return L;
}
export const renderer = (page) => page.evaluate(() => window.__prefscope?.landscapeRenderer || '');

export async function openPage(context, base, query, initScript) {
  const page = await context.newPage();
  if (initScript) await page.addInitScript(initScript);
  const tag = query.match(/backend=(\w+)/)?.[1] || 'auto';
  page.on('console', (msg) => {
    if (msg.type() === 'error') console.log(`# [${tag} console.${msg.type()}] ${msg.text()}`);
  });
  page.on('pageerror', (err) => console.log(`# [${tag} pageerror] ${err.message}`));
  await page.goto(`${base}/${query}`, { waitUntil: 'load' });
  // The badge leaves "detecting…" once the backend is chosen (or failed).
  await page.waitForFunction(() => {
    const b = document.querySelector('[data-testid=backend-badge]');
    return b && !b.textContent.includes('detecting');
  }, null, { timeout: 60_000 });
  return page;
}

/** Wait until the status is `done` (or an error); returns the final status text. */
export async function waitDone(page) {
  await page.waitForFunction(() => {
    const s = document.querySelector('[data-testid=status]')?.textContent || '';
    return s === 'done' || s.startsWith('error');
  }, null, { timeout: DONE_TIMEOUT_MS, polling: 100 });
  return statusText(page);
}

/** Train cyclic + GPM to the end on the given backend; returns what the page reports. */
export async function trainToEnd(context, base, backend, screenshot, outDir) {
  const page = await openPage(context, base, `?backend=${backend}&scenario=cyclic&model=gpm&seed=0`);
  try {
    await page.getByTestId('scenario-select').selectOption('cyclic');
    await page.getByTestId('model-select').selectOption('gpm');
    const t0 = Date.now();
    await page.getByTestId('train-button').click({ timeout: 60_000 });
    const status = await waitDone(page);
    const seconds = (Date.now() - t0) / 1000;
    const accuracyText = (await page.getByTestId('accuracy').textContent()).trim();
    const badge = (await page.getByTestId('backend-badge').textContent()).trim();
    const notice = page.getByTestId('fallback-notice');
    const noticeVisible = (await notice.count()) > 0 && (await notice.isVisible());
    const h = await hook(page);
    await page.screenshot({ path: path.join(outDir, screenshot), fullPage: true });
    // The first screen alone (the viewport): the README's picture of the page.
    await page.screenshot({ path: path.join(outDir, screenshot.replace('.png', '-top.png')) });
    const t = h.stepTimes;
    const steady = t.length > 60 ? ` (${((t[t.length - 1] - t[50]) / (t.length - 51)).toFixed(1)} ms/step after step 50)` : '';
    // From the click (as soon as the backend was chosen) and from navigation to the first step's metrics.
    const origin = await page.evaluate(() => performance.timeOrigin);
    const first = t.length ? `; first step ${(t[0] - t0).toFixed(0)} ms after the click, ${(t[0] - origin).toFixed(0)} ms after navigation` : '';
    console.log(`# ${backend}: status ${status}, accuracy ${accuracyText}, ${h.losses.length} steps in ${seconds.toFixed(1)} s${steady}${first}, badge "${badge}"${h.adapter ? `, adapter "${h.adapter}"` : ''}`);
    return { status, accuracyText, accuracy: Number(accuracyText), badge, noticeVisible, ...h };
  } finally {
    await page.close();
  }
}

/**
 * A pair-embedding file as `prefscope embed` writes it: safetensors (8-byte little-endian header
 * length, JSON header, raw F32 data) with `n` pairs of `d`-dimensional rows. Chosen rows have a
 * first feature in [0.5, 1.5], rejected ones in [−1.5, −0.5]: a linear reward separates them.
 */
export function embeddingFile(n, d, kind = 'pair-embeddings') {
  let seed = 12345;
  const rand = () => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return seed / 2 ** 32 - 0.5;
  };
  const chosen = new Float32Array(n * d);
  const rejected = new Float32Array(n * d);
  for (let i = 0; i < n * d; i++) [chosen[i], rejected[i]] = [rand(), rand()];
  for (let i = 0; i < n; i++) [chosen[i * d], rejected[i * d]] = [chosen[i * d] + 1, rejected[i * d] - 1];
  const size = n * d * 4;
  const header = JSON.stringify({
    __metadata__: { 'prefscope.kind': kind, 'prefscope.encoder': 'test', 'prefscope.source': 'x' },
    chosen: { dtype: 'F32', shape: [n, d], data_offsets: [0, size] },
    rejected: { dtype: 'F32', shape: [n, d], data_offsets: [size, 2 * size] },
  });
  const padded = header.padEnd(Math.ceil(header.length / 8) * 8, ' ');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(padded.length));
  return Buffer.concat([length, Buffer.from(padded), Buffer.from(chosen.buffer), Buffer.from(rejected.buffer)]);
}


// ---------------------------------------------------------------------------------------------
// The cases

export const results = [];
// PREFSCOPE_ONLY=regex runs only the matching cases (while working on one panel).
export const only = process.env.PREFSCOPE_ONLY ? new RegExp(process.env.PREFSCOPE_ONLY) : null;
export async function check(name, fn) {
  if (only && !only.test(name)) return;
  // Each case's wall time follows its line, so the suite's slowest cases are visible in every log.
  const started = performance.now();
  const took = () => `(${((performance.now() - started) / 1000).toFixed(1)} s)`;
  try {
    await fn();
    results.push(true);
    console.log(`ok - ${name} ${took()}`);
  } catch (err) {
    results.push(false);
    console.log(`not ok - ${name} ${took()}: ${String(err?.message || err).split('\n')[0]}`);
  }
}
export function assert(cond, message) {
  if (!cond) throw new Error(message);
}
