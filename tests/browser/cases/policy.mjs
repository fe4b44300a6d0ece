// The Policy tab: offline losses on the bandit, online RLHF against a proxy RM, two objectives.

import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import {
  LOSS_TOLERANCE, LONG_TASK_MS, sleep, statusText, hook, stepsDone, landscapeReady, renderer, openPage, waitDone,
  trainToEnd, embeddingFile, check, assert,
} from '../harness.mjs';

export default async function cases({ context, base, outDir }) {
  await check('policy tab: DPO and MODPO reach their optima, the menu lists the bandit\'s losses, the URL keeps the tab, the slider replays training', async () => {
    const page = await openPage(context, base, '?backend=cpu&tab=policy');
    try {
      await page.getByTestId('policy-loss-select').selectOption('dpo');
      await page.getByTestId('policy-train').click();
      await page.getByTestId('policy-kl-optimum').waitFor({ timeout: 60_000 });
      const kl = Number((await page.getByTestId('policy-kl-optimum').textContent()).trim());
      console.log(`# policy tab: DPO KL(π_θ ‖ optimum) = ${kl}`);
      assert(kl < 1e-2, `KL to DPO's optimum ${kl}`);
      assert(await page.getByTestId('policy-frontier').isVisible(), 'the KL–reward frontier is drawn');
      const bars = page.getByTestId('policy-bars');
      const atEnd = await bars.innerHTML();
      await page.getByTestId('policy-frame').fill('0');
      const atStart = await bars.innerHTML();
      assert(atStart !== atEnd, 'moving the step slider redraws the policy');
      assert(page.url().includes('tab=policy'), `URL ${page.url()}`);
      // β lives in the URL too.
      await page.getByTestId('policy-beta').fill('0');
      await page.waitForFunction(() => location.search.includes('beta=1'), null, { timeout: 5000 });
      // The menu is the core's loss table, less what the bandit refuses (the two AOTs); MODPO
      // (with its drawn second reward) reaches its closed-form optimum here too.
      const names = await page.getByTestId('policy-loss-select').locator('option').evaluateAll((os) => os.map((o) => o.value));
      assert(names.length === 30 && names.includes('modpo') && names.includes('kto') && !names.includes('aot'), `menu: ${names}`);
      const before = await page.evaluate(() => ['policy-kl-optimum', 'policy-expected-reward'].map((t) => document.querySelector(`[data-testid=${t}]`)?.textContent.trim()).join(' '));
      await page.getByTestId('policy-loss-select').selectOption('modpo');
      await page.getByTestId('policy-train').click();
      await page.waitForFunction((b) => ['policy-kl-optimum', 'policy-expected-reward'].map((t) => document.querySelector(`[data-testid=${t}]`)?.textContent.trim()).join(' ') !== b, before, { timeout: 60_000 });
      const modpo = Number((await page.getByTestId('policy-kl-optimum').textContent()).trim());
      console.log(`# policy tab: MODPO KL(π_θ ‖ optimum) = ${modpo}`);
      assert(modpo < 1e-2, `KL to MODPO's optimum ${modpo}`);
      // MODPO's chart is its Pareto front over the two rewards: the trained policy sits on the
      // front at its weighting, and more weight on the preference reward moves it along the front.
      const pareto = async () => page.getByTestId('policy-pareto').evaluate((e) => ['trained-r1', 'trained-r2', 'optimum-r1', 'optimum-r2'].map((k) => Number(e.dataset[k.replace(/-(.)/g, (_, c) => c.toUpperCase())])));
      const [a1, a2, o1, o2] = await pareto();
      console.log(`# policy tab: MODPO at w = (0.5, 0.5): E[r1] ${a1.toFixed(4)}, E[r2] ${a2.toFixed(4)}; the front's point ${o1.toFixed(4)}, ${o2.toFixed(4)}`);
      assert(Math.abs(a1 - o1) < 1e-2 && Math.abs(a2 - o2) < 1e-2, `MODPO's policy (${a1}, ${a2}) is off its front point (${o1}, ${o2})`);
      assert(!(await page.getByTestId('policy-frontier').isVisible()), 'MODPO shows the Pareto front instead of DPO\'s frontier');
      await page.getByTestId('policy-modpo-weight').fill('18');
      await page.getByTestId('policy-train').click();
      await page.waitForFunction((b) => Number(document.querySelector('[data-testid=policy-pareto]')?.dataset.trainedR1) !== b, a1, { timeout: 60_000 });
      const [b1, b2, p1, p2] = await pareto();
      console.log(`# policy tab: MODPO at w = (0.9, 0.1): E[r1] ${b1.toFixed(4)}, E[r2] ${b2.toFixed(4)}; the front's point ${p1.toFixed(4)}, ${p2.toFixed(4)}`);
      assert(Math.abs(b1 - p1) < 1e-2 && Math.abs(b2 - p2) < 1e-2, `MODPO's policy (${b1}, ${b2}) is off its front point (${p1}, ${p2})`);
      // Along the front E[r1] − E[r2] rises with w₁ (its derivative is Var(r1 − r2)/β).
      assert(b1 - b2 > a1 - a2, `more weight on r1 should raise E[r1] − E[r2]: (${a1}, ${a2}) → (${b1}, ${b2})`);
      await page.getByTestId('policy-pareto').screenshot({ path: path.join(outDir, 'policy-modpo.png') });
      await page.getByTestId('policy-frame').fill(String(1e6));
      await page.screenshot({ path: path.join(outDir, 'policy-tab.png'), fullPage: true });
      // Back to the reward tab: its controls are there again.
      await page.getByTestId('reward-tab').click();
      await page.getByTestId('train-button').waitFor({ timeout: 5000 });
    } finally {
      await page.close();
    }
  });

  await check('policy tab, online: a proxy RM trains in the tab, gold peaks and falls against √KL while the proxy rises', async () => {
    const page = await openPage(context, base, '?backend=cpu&tab=policy&labels=30&online=best-of-n&seed=0');
    try {
      assert((await page.getByTestId('online-labels').inputValue()) === '30', 'N comes from the URL');
      await page.getByTestId('online-run').click();
      // The chart grows while the policy optimises: seen part-way, then complete.
      await page.waitForFunction(() => Number(document.querySelector('[data-testid=online-chart]')?.dataset.points ?? 0) >= 3, null, { timeout: 120_000 });
      await page.waitForSelector('[data-testid=online-status][data-done=true]', { timeout: 120_000 });
      const pts = await page.getByTestId('online-chart').locator('circle[data-d]').evaluateAll((cs) => cs.map((c) => ({ d: Number(c.dataset.d), gold: Number(c.dataset.gold), proxy: Number(c.dataset.proxy) })));
      const peakD = Number(await page.getByTestId('online-peak').getAttribute('data-d'));
      const peak = pts.reduce((a, b) => (b.gold > a.gold ? b : a));
      console.log(`# online: ${pts.length} best-of-n points, gold peak ${peak.gold.toFixed(3)} at d = ${peakD.toFixed(2)}, gold at the largest d ${pts[pts.length - 1].gold.toFixed(3)}`);
      assert(pts.length === 36, `${pts.length} points (n = 1 … 1024 in quarter-octaves)`);
      assert(pts.every((p, i) => i === 0 || p.proxy >= pts[i - 1].proxy - 1e-9), 'the proxy rises monotonically');
      assert(Math.abs(peak.d - peakD) < 1e-9, 'the marked peak is the highest gold point');
      assert(pts[pts.length - 1].gold < peak.gold, 'with 30 labels gold falls after its peak (seed 0)');
      assert(await page.getByTestId('online-parting').count(), 'the parting point is marked');
      await page.getByTestId('online-method').selectOption('rl');
      await page.waitForFunction(() => location.search.includes('online=rl') && location.search.includes('labels=30'), null, { timeout: 5000 });
      await page.getByTestId('online-panel').screenshot({ path: path.join(outDir, 'policy-online.png') });
    } finally {
      await page.close();
    }
    // RLOO live: one point per iteration. Seed 1's trajectory overshoots the gold peak; the native
    // core gives peak 1.049 and end -1.093 for the same seed and N (overopt::tests, f32 on both).
    const live = await openPage(context, base, '?backend=cpu&tab=policy&labels=30&online=rloo&seed=1');
    try {
      await live.getByTestId('online-run').click();
      await live.waitForSelector('[data-testid=online-status][data-done=true]', { timeout: 120_000 });
      const pts = await live.getByTestId('online-chart').locator('circle[data-d]').evaluateAll((cs) => cs.map((c) => ({ d: Number(c.dataset.d), gold: Number(c.dataset.gold), proxy: Number(c.dataset.proxy) })));
      const peak = pts.reduce((a, b) => (b.gold > a.gold ? b : a));
      const last = pts[pts.length - 1];
      console.log(`# online RLOO live: ${pts.length} points, gold peak ${peak.gold.toFixed(3)} at d = ${peak.d.toFixed(2)}, end ${last.gold.toFixed(3)} at d = ${last.d.toFixed(2)}, proxy gain ${last.proxy.toFixed(2)}`);
      assert(pts.length === 301, `${pts.length} points (iterations 0 … 300)`);
      assert(last.proxy > 1 && last.d > 1, 'the policy moved and the proxy rose');
      assert(Math.abs(peak.gold - 1.049) < 0.01 && Math.abs(last.gold + 1.093) < 0.02, 'the page retraces the native trajectory');
      await live.getByTestId('online-panel').screenshot({ path: path.join(outDir, 'policy-online-rloo.png') });
    } finally {
      await live.close();
    }
  });

  await check('policy tab, two objectives: at 0° and 90° the trained policy favours each objective\'s best response', async () => {
    const page = await openPage(context, base, '?backend=cpu&tab=policy&dir=0&beta=0.1');
    try {
      await page.getByTestId('policy-objectives').check();
      const favourite = async (deg) => {
        await page.getByTestId('policy-direction').fill(String(deg));
        await page.waitForFunction((d) => new URLSearchParams(location.search).get('dir') === String(d) || (d === 0 && !location.search.includes('dir=')), deg, { timeout: 5000 });
        await page.getByTestId('policy-train').click();
        // The worker trains (the button is disabled meanwhile); the run it sends is for this direction.
        await page.waitForFunction(() => !document.querySelector('[data-testid=policy-train]').disabled && document.querySelector('[data-testid=policy-bars]')
          && !document.querySelector('[data-testid=policy-stale]'), null, { timeout: 60_000 });
        const bars = page.getByTestId('policy-bars');
        const best = Number(await bars.getAttribute('data-best'));
        const cands = await bars.locator('g[data-candidate]').evaluateAll((gs) => gs.map((g) => ({ i: Number(g.dataset.candidate), p: Number(g.dataset.p), r: [Number(g.dataset.r1), Number(g.dataset.r2)] })));
        const top = cands.reduce((a, b) => (b.p > a.p ? b : a));
        assert(top.i === best, `data-best ${best}, most probable ${top.i}`);
        const k = deg === 0 ? 0 : 1;
        const argmax = cands.reduce((a, b) => (b.r[k] > a.r[k] ? b : a)).i;
        console.log(`# policy at ${deg}°: π_θ favours candidate ${best} (p = ${top.p.toFixed(3)}, r = (${top.r})), objective ${k + 1} is largest for ${argmax}`);
        assert(best === argmax, `at ${deg}° the policy favours ${best}, objective ${k + 1} is largest for ${argmax}`);
        return best;
      };
      const at0 = await favourite(0);
      // Turning the direction marks the run stale until it is trained again.
      await page.getByTestId('policy-direction').fill('90');
      await page.getByTestId('policy-stale').waitFor({ timeout: 5000 });
      const at90 = await favourite(90);
      assert(at0 !== at90, `the favourite is ${at0} at both directions`);
      await page.getByTestId('policy-panel').screenshot({ path: path.join(outDir, 'policy-objectives.png') });
    } finally {
      await page.close();
    }
  });

}
