// Controls, settings URLs, exports and uploads.

import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import {
  LOSS_TOLERANCE, LONG_TASK_MS, sleep, statusText, hook, stepsDone, landscapeReady, renderer, openPage, waitDone,
  trainToEnd, embeddingFile, check, assert,
} from '../harness.mjs';

export default async function cases({ context, base, outDir }) {
  await check('interaction: sliders and a settings URL restore a run, Step, export model and PNG, uploads with line-numbered errors', async () => {
    const query = '?scenario=linear&model=bt&seed=3&steps=40&backend=cpu&lr=0.02&batch=64&noise=0.2&pairs=500';
    const page = await openPage(context, base, query);
    try {
      // The URL restored the settings into the controls.
      assert((await page.getByTestId('scenario-select').inputValue()) === 'linear', 'scenario');
      assert((await page.getByTestId('seed-input').inputValue()) === '3', 'seed');
      assert((await page.getByTestId('lr-slider').evaluate((el) => el.closest('label').textContent)).includes('0.02'), 'lr label');
      // A slider changes the run and the URL.
      await page.getByTestId('batch-slider').fill('2');
      await page.waitForFunction(() => location.search.includes('batch=32'), null, { timeout: 5000 });
      // Step: exactly one step, then paused; keyboard only.
      await page.getByTestId('step-button').focus();
      await page.keyboard.press('Enter');
      await page.waitForFunction(() => document.querySelector('[data-testid=status]')?.textContent === 'paused', null, { timeout: 60_000 });
      assert((await stepsDone(page)) === 1, `Step ran ${await stepsDone(page)} steps`);
      // Export the model and a panel as PNG.
      const [model] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-model').click()]);
      const modelPath = path.join(outDir, 'exported-model.safetensors');
      await model.saveAs(modelPath);
      assert(fs.statSync(modelPath).size > 1000 && model.suggestedFilename().endsWith('.safetensors'), `model file ${model.suggestedFilename()}`);
      await page.getByTestId('landscape-compute').click();
      const before = await landscapeReady(page, 'random');
      // The native binary's landscape of the exported checkpoint (same core code, plane and seed)
      // equals the page's, grid point by grid point.
      const bin = process.env.PREFSCOPE_BIN || path.resolve('target/release/prefscope');
      assert(fs.existsSync(bin), `${bin} not found: build the CLI first (cargo build --release -p prefscope-cli)`);
      const cliOut = path.join(outDir, 'cli-landscape');
      const meta = JSON.parse(execFileSync(bin, ['landscape', modelPath, '--grid', String(before.n), '--out', cliOut, '--json'], { encoding: 'utf8' }).trim().split('\n').at(-1));
      const npy = fs.readFileSync(path.join(cliOut, 'landscape.npy'));
      const headerLen = npy.readUInt16LE(8);
      const cli = new Float32Array(npy.buffer.slice(npy.byteOffset + 10 + headerLen, npy.byteOffset + npy.length));
      assert(cli.length === before.values.length && meta.grid === before.n, `${cli.length} native values vs ${before.values.length} in the page`);
      const worst = before.values.reduce((m, v, i) => Math.max(m, Math.abs(v - cli[i])), 0);
      console.log(`# landscape: page vs \`prefscope landscape\` on the exported checkpoint, ${before.n}×${before.n}: max |difference| ${worst.toExponential(2)}`);
      assert(worst <= 1e-6, `the page and the CLI differ by ${worst} on the same checkpoint and seed`);
      const [png] = await Promise.all([page.waitForEvent('download'), page.getByTestId('landscape-panel-png').click()]);
      const pngPath = path.join(outDir, 'exported-landscape-panel.png');
      await png.saveAs(pngPath);
      const head = fs.readFileSync(pngPath).subarray(0, 8).toString('hex');
      assert(head === '89504e470d0a1a0a' && fs.statSync(pngPath).size > 5000, `not a PNG (${head}, ${fs.statSync(pngPath).size} bytes)`);
      // Open the exported checkpoint (the native binary's format): the views evaluate the same model.
      await page.getByTestId('reset-button').click();
      await page.getByTestId('checkpoint-input').setInputFiles(modelPath);
      const opened = await page.getByTestId('checkpoint-status').textContent({ timeout: 10_000 });
      assert(/Opened .*step 1/.test(opened), `checkpoint status "${opened}"`);
      const reopened = await landscapeReady(page, 'random');
      assert(reopened.step === 1 && Math.abs(reopened.currentLoss - before.currentLoss) < 1e-6, `reopened loss ${reopened.currentLoss} at step ${reopened.step} vs ${before.currentLoss}`);
      // Train continues the opened model from its step 1 to the run's step 40.
      await page.getByTestId('train-button').click();
      assert((await waitDone(page)) === 'done', `continuing ended "${await statusText(page)}"`);
      const continued = await page.evaluate(() => JSON.parse(JSON.stringify(window.__prefscope.evals)));
      assert((await stepsDone(page)) === 39 && continued.at(-1).step === 40, `continued for ${await stepsDone(page)} steps to step ${continued.at(-1)?.step}`);
      await page.getByTestId('checkpoint-input').setInputFiles({ name: 'garbage.safetensors', mimeType: 'application/octet-stream', buffer: Buffer.from('not a checkpoint at all') });
      await page.waitForFunction(() => document.querySelector('[data-testid=checkpoint-status]')?.textContent.startsWith('error'), null, { timeout: 10_000 });
      const refused = await page.getByTestId('checkpoint-status').textContent();
      assert(/^error: garbage\.safetensors/.test(refused), `a garbage checkpoint says "${refused}"`);
      // A malformed upload: an error with its line number, and the page keeps working.
      const bad = '{"chosen": "a", "reject": "b"}\n{"chosen": "b", "rejekt": "c"}\n';
      await page.getByTestId('upload-input').setInputFiles({ name: 'broken.jsonl', mimeType: 'application/json', buffer: Buffer.from(bad) });
      const err = await page.getByTestId('upload-error').textContent({ timeout: 5000 });
      assert(/broken\.jsonl:2/.test(err), `upload error "${err}"`);
      // A good one (the GPM repository's cyclic example) trains.
      await page.getByTestId('upload-input').setInputFiles(path.resolve('static/data/gpm_custom_test_data.jsonl'));
      const status = await page.getByTestId('upload-status').textContent({ timeout: 5000 });
      assert(/responses/.test(status), `upload status "${status}"`);
      await page.getByTestId('model-select').selectOption('gpm');
      await page.getByTestId('train-button').click();
      assert((await waitDone(page)) === 'done', 'training on the upload did not finish');
      await page.screenshot({ path: path.join(outDir, 'interaction.png'), fullPage: true });
      // Phone width: nothing wider than the screen.
      await page.setViewportSize({ width: 390, height: 844 });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      await page.screenshot({ path: path.join(outDir, 'phone.png'), fullPage: true });
      assert(overflow <= 0, `the page is ${overflow}px wider than a phone screen`);
    } finally {
      await page.close();
    }
  });
  await check('embedding upload: a prefscope embed file trains Bradley–Terry in the tab; truncated or wrong-kind files say why', async () => {
    const page = await openPage(context, base, '?backend=cpu&scenario=linear&model=bt&seed=0&steps=150');
    try {
      const file = embeddingFile(200, 8);
      const upload = (name, buffer) => page.getByTestId('upload-input').setInputFiles({ name, mimeType: 'application/octet-stream', buffer });
      await upload('truncated.safetensors', file.subarray(0, file.length - 100));
      const truncated = await page.getByTestId('upload-error').textContent({ timeout: 5000 });
      assert(/^truncated\.safetensors: .*not a valid safetensors file/.test(truncated), `a truncated file says "${truncated}"`);
      await upload('checkpoint.safetensors', embeddingFile(20, 8, 'reward-model'));
      await page.waitForFunction(() => document.querySelector('[data-testid=upload-error]')?.textContent.startsWith('checkpoint'), null, { timeout: 5000 });
      const wrongKind = await page.getByTestId('upload-error').textContent();
      assert(/not `pair-embeddings`/.test(wrongKind), `a file of another kind says "${wrongKind}"`);
      await upload('pairs.safetensors', file);
      const status = await page.getByTestId('upload-status').textContent({ timeout: 5000 });
      assert(/pairs\.safetensors: 400 responses as 8-dimensional embeddings, 200 pairs \(160 train, 40 held out\)/.test(status), `upload status "${status}"`);
      assert(!(await page.getByTestId('upload-error').count()), 'the earlier error stays up');
      await page.getByTestId('train-button').click();
      assert((await waitDone(page)) === 'done', `training on the embeddings ended "${await statusText(page)}"`);
      const h = await hook(page);
      console.log(`# embedding upload: Bradley–Terry held-out accuracy ${h.accuracy} after ${h.losses.length} steps`);
      assert(h.losses.length === 150 && h.accuracy >= 0.9, `held-out accuracy ${h.accuracy} (chance is 0.5)`);
      // The split follows the seed, as in `prefscope train --embeddings`.
      await page.getByTestId('seed-input').fill('1');
      await page.getByTestId('seed-input').dispatchEvent('change');
      await page.waitForFunction(() => location.search.includes('seed=1'), null, { timeout: 5000 });
      assert(/160 train, 40 held out/.test(await page.getByTestId('upload-status').textContent()), 'still the upload after a seed change');
      // A model exported after an upload opens again on that upload (its items are the file's).
      await page.getByTestId('train-button').click();
      assert((await waitDone(page)) === 'done', 'training with seed 1');
      const [model] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-model').click()]);
      const modelPath = path.join(outDir, 'exported-embedding-model.safetensors');
      await model.saveAs(modelPath);
      await page.getByTestId('checkpoint-input').setInputFiles(modelPath);
      const opened = await page.getByTestId('checkpoint-status').textContent({ timeout: 10_000 });
      assert(/^Opened .* on pairs\.safetensors, seed 1, step 150/.test(opened), `checkpoint status "${opened}"`);
    } finally {
      await page.close();
    }
  });
}
