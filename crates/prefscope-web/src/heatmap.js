// Runs shaders/landscape.wgsl on a WebGPU canvas (the loss-landscape heatmap).
//
// A GPUDevice of its own, separate from burn's: the page only hands it a few kilobytes of losses.
// Every failure resolves to a reason string instead of throwing, so the page can fall back to its
// 2-D canvas; a lost device is forgotten and requested again on the next draw.

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

/** Draw; resolves to '' on success or to why it could not. */
export async function drawHeatmapWebGpu(canvas, code, values, n, lo, hi, logScale, contours) {
  try {
    const dev = await device();
    const ctx = canvas.getContext('webgpu');
    if (!ctx) return 'the canvas has no webgpu context';
    const format = navigator.gpu.getPreferredCanvasFormat();
    ctx.configure({ device: dev, format, alphaMode: 'opaque' });
    let pipeline = pipelines.get(dev)?.[format];
    if (!pipeline) {
      dev.pushErrorScope('validation');
      const module = dev.createShaderModule({ code });
      pipeline = dev.createRenderPipeline({
        layout: 'auto',
        vertex: { module, entryPoint: 'vs' },
        fragment: { module, entryPoint: 'fs', targets: [{ format }] },
        primitive: { topology: 'triangle-list' },
      });
      const err = await dev.popErrorScope();
      if (err) return `shader: ${err.message}`;
      pipelines.set(dev, { ...(pipelines.get(dev) || {}), [format]: pipeline });
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
    const bindGroup = dev.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [{ binding: 0, resource: { buffer: uniforms } }, { binding: 1, resource: { buffer: storage } }],
    });
    dev.pushErrorScope('validation');
    const encoder = dev.createCommandEncoder();
    const pass = encoder.beginRenderPass({
      colorAttachments: [{ view: ctx.getCurrentTexture().createView(), loadOp: 'clear', storeOp: 'store', clearValue: { r: 0, g: 0, b: 0, a: 1 } }],
    });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.draw(3);
    pass.end();
    dev.queue.submit([encoder.finish()]);
    const err = await dev.popErrorScope();
    await dev.queue.onSubmittedWorkDone();
    uniforms.destroy();
    storage.destroy();
    return err ? `render: ${err.message}` : '';
  } catch (e) {
    return String(e?.message || e);
  }
}
