// Runs shaders/landscape.wgsl on WebGPU (the loss-landscape heatmap).
//
// A GPUDevice of its own, separate from burn's: the page only hands it a few kilobytes of losses.
// Every failure resolves to a reason string instead of throwing, so the page can fall back to
// drawing on the CPU; a lost device is forgotten and requested again on the next draw.

let devicePromise = null;
const pipelines = new WeakMap();

function device() {
  if (!devicePromise) {
    devicePromise = (async () => {
      if (!navigator.gpu) throw new Error('navigator.gpu is missing');
      const adapter = await navigator.gpu.requestAdapter();
      if (!adapter) throw new Error('requestAdapter() returned null');
      const dev = await adapter.requestDevice();
      dev.lost.then(() => { devicePromise = null; });
      return dev;
    })();
    devicePromise.catch(() => { devicePromise = null; });
  }
  return devicePromise;
}

/**
 * Render the heatmap with the WGSL shader into an offscreen texture, read it back and put it on
 * `canvas` (a 2-D canvas of the picture's size). Presenting to a WebGPU canvas is avoided on
 * purpose: headless Chromium's SwiftShader loses the device on present, and a 2-D canvas can be
 * saved as PNG. Resolves to '' on success or to why it could not.
 */
export async function drawHeatmapWebGpu(canvas, code, values, n, lo, hi, logScale, contours) {
  try {
    const dev = await device();
    const format = 'rgba8unorm';
    const { width, height } = canvas;
    let pipeline = pipelines.get(dev);
    if (!pipeline) {
      const module = dev.createShaderModule({ code });
      const info = await module.getCompilationInfo();
      const errors = info.messages.filter((m) => m.type === 'error');
      if (errors.length) return `shader: ${errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('; ')}`;
      pipeline = await dev.createRenderPipelineAsync({
        layout: 'auto',
        vertex: { module, entryPoint: 'vs' },
        fragment: { module, entryPoint: 'fs', targets: [{ format }] },
        primitive: { topology: 'triangle-list' },
      });
      pipelines.set(dev, pipeline);
    }
    const params = new ArrayBuffer(32);
    const view = new DataView(params);
    view.setUint32(0, n, true);
    view.setUint32(4, logScale ? 1 : 0, true);
    view.setFloat32(8, lo, true);
    view.setFloat32(12, hi, true);
    view.setFloat32(16, contours, true);
    const uniforms = dev.createBuffer({ size: 32, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    dev.queue.writeBuffer(uniforms, 0, params);
    const storage = dev.createBuffer({ size: Math.max(16, values.byteLength), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
    dev.queue.writeBuffer(storage, 0, values);
    const target = dev.createTexture({ size: [width, height], format, usage: GPUTextureUsage.RENDER_ATTACHMENT | GPUTextureUsage.COPY_SRC });
    // Rows of a texture-to-buffer copy are padded to 256 bytes.
    const rowBytes = Math.ceil((width * 4) / 256) * 256;
    const readback = dev.createBuffer({ size: rowBytes * height, usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ });
    const bindGroup = dev.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [{ binding: 0, resource: { buffer: uniforms } }, { binding: 1, resource: { buffer: storage } }],
    });
    const encoder = dev.createCommandEncoder();
    const pass = encoder.beginRenderPass({
      colorAttachments: [{ view: target.createView(), loadOp: 'clear', storeOp: 'store', clearValue: { r: 0, g: 0, b: 0, a: 1 } }],
    });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.draw(3);
    pass.end();
    encoder.copyTextureToBuffer({ texture: target }, { buffer: readback, bytesPerRow: rowBytes }, [width, height]);
    dev.queue.submit([encoder.finish()]);
    await readback.mapAsync(GPUMapMode.READ);
    const padded = new Uint8Array(readback.getMappedRange());
    const pixels = new Uint8ClampedArray(width * height * 4);
    for (let y = 0; y < height; y++) pixels.set(padded.subarray(y * rowBytes, y * rowBytes + width * 4), y * width * 4);
    readback.unmap();
    for (const b of [uniforms, storage, readback, target]) b.destroy();
    canvas.getContext('2d').putImageData(new ImageData(pixels, width, height), 0, 0);
    return '';
  } catch (e) {
    return String(e?.message || e);
  }
}
