// Real-browser test of the prefscope playground.
//
//   node tests/browser/playground.test.mjs <dist-dir> <out-dir>
//
// Serves <dist-dir> (the output of `trunk build`) on 127.0.0.1, drives the system Chromium
// (/usr/bin/chromium, never a downloaded browser) through playwright-core, and writes screenshots
// to <out-dir>. Prints `ok - name` / `not ok - name: reason` per case and `N passed, M failed`;
// exits non-zero on any failure. Page console errors are forwarded to stdout.
// PREFSCOPE_ONLY=<regex> runs only the cases whose names match. The cases are in cases/*.mjs,
// the server and the helpers they share in harness.mjs.
//
// The page's test hooks: data-testid attributes, and `window.__prefscope`
// ({ backend, adapter, status, steps, losses, evals, accuracy }), see crates/prefscope-web/src/app.rs;
// in the compute worker, `self.__gpuDevices` (crates/prefscope-web/src/worker.rs).

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { CHROMIUM, serve, results } from './harness.mjs';
import training from './cases/training.mjs';
import policy from './cases/policy.mjs';
import views from './cases/views.mjs';
import interaction from './cases/interaction.mjs';


const [distArg, outArg] = process.argv.slice(2);
if (!distArg || !outArg) {
  console.error('usage: node tests/browser/playground.test.mjs <dist-dir> <out-dir>');
  process.exit(2);
}
const distDir = path.resolve(distArg);
const outDir = path.resolve(outArg);
if (!fs.existsSync(path.join(distDir, 'index.html'))) {
  console.error(`${distDir}/index.html not found: run \`trunk build\` first`);
  process.exit(2);
}
fs.mkdirSync(outDir, { recursive: true });

const server = await serve(distDir);
const base = `http://127.0.0.1:${server.address().port}`;
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'prefscope-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--enable-unsafe-webgpu',
    ],
    // Playwright adds this by default; it is not needed for WebGPU's SwiftShader adapter here.
    ignoreDefaultArgs: ['--enable-unsafe-swiftshader'],
    viewport: { width: 1280, height: 900 },
  });
  for (const cases of [training, policy, views, interaction]) await cases({ context, base, outDir });
} catch (err) {
  results.push(false);
  console.log(`not ok - browser session: ${String(err?.message || err).split('\n')[0]}`);
} finally {
  await context?.close().catch(() => {});
  server.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}

const passed = results.filter(Boolean).length;
const failed = results.length - passed;
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
