/**
 * VISTA3D session timings on a real CT, in one run: an automatic pass, a first click (its window
 * encoded), a second click in the same window (served by the feature cache) and, for reference, the
 * same second click in a session without a cache. Random weights of --preset, or a trained --model
 * (Algorithm 1's share depends on the weights: vista3d-setup.ts); clicks at --click (default 10,10,10).
 * Reports ratios measured in the same run; the machine may be shared, so absolute times are noisy.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/vista3d.js [--preset vista3d-cpu | --model CKPT] [--roi 64] [--spacing 3]
 *     [--classes liver,spleen] [--threads 2] [--click X,Y,Z] [--reuse-windows N] [--input ../shared/data/01_totalseg_abdomen_ct/ct.nii.gz]
 */
import { rmSync } from 'node:fs';
import { benchClicks, parseVista3dBenchArgs, prepareVista3dBench } from './vista3d-setup.js';
import { openVista3dSession } from '../src/infer/vista3d/session.js';

const v = parseVista3dBenchArgs('2');
const roi = Number(v.roi), sp = Number(v.spacing);
const { dir, ckpt, image, opts } = await prepareVista3dBench(v, 'bench-vista3d');
try {
  const s = await openVista3dSession(ckpt, image, opts);
  const plain = await openVista3dSession(ckpt, image, { ...opts, cacheBytes: 0 });
  // CPU time (user + system) of this process: robust to a shared machine, unlike wall time.
  const t = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
  const w = (): number => performance.now();
  let windows = 0;
  const w0 = w(), t0 = t();
  const auto = await s.autoSegment(v.classes.split(','), (_d, n) => { windows = n; });
  const tAuto = t() - t0, wAuto = w() - w0;
  // Two clicks two voxels apart: near a corner both centred windows clamp to the same window; inside the
  // image MONAI centres a new window on the second click, and --reuse-windows answers it in the first.
  const { c1: c, c2 } = benchClicks(v, image.size);
  // A fresh window for the first click: the auto pass may have cached the click's window already, so clear by using a new session.
  const s2 = await openVista3dSession(ckpt, image, opts);
  const t1 = t();
  const r1 = await s2.click([{ label: 1, positive: true, ijk: c }], auto);
  const tFirst = t() - t1;
  const t2 = t();
  const r2 = await s2.click([{ label: 1, positive: true, ijk: c }, { label: 1, positive: false, ijk: c2 }], auto);
  const tSecond = t() - t2;
  const t3 = t();
  const r3 = await plain.click([{ label: 1, positive: true, ijk: c }, { label: 1, positive: false, ijk: c2 }], auto);
  const tUncached = t() - t3;
  s.dispose(); s2.dispose(); plain.dispose();
  const rss = process.resourceUsage().maxRSS / 1024;
  console.log(JSON.stringify({
    preset: v.model ?? v.preset, click: c, reuseWindows: opts.reuseWindows ?? null, roi, spacing: sp, threads: Number(v.threads), image: image.size, autoWindows: windows,
    cpuTime: true, autoWallMs: Math.round(wAuto), autoMs: Math.round(tAuto), firstClickMs: Math.round(tFirst), secondClickCachedMs: Math.round(tSecond), secondClickUncachedMs: Math.round(tUncached),
    firstClickWindows: r1.windowsComputed, secondClick: { windowsComputed: r2.windowsComputed, cacheHits: r2.cacheHits }, uncached: { windowsComputed: r3.windowsComputed },
    clickOverAuto: +(tFirst / tAuto).toFixed(3), secondOverFirst: +(tSecond / tFirst).toFixed(3), peakRssMB: Math.round(rss),
  }, null, 1));
} finally { rmSync(dir, { recursive: true, force: true }); }
