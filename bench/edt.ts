/**
 * Benchmark of the metrics code on a CT-sized grid: 300 x 512 x 512 voxels (D,H,W), spacing
 * (2.5, 0.8, 0.8) mm. Prints absolute times (one core). When /usr/bin/python3 has scipy, the same
 * full-array EDT is timed with scipy.ndimage.distance_transform_edt in the same run and the ratio is
 * printed.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/edt.js [--repeat N]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { binaryMetrics } from '../src/metrics/binary.js';
import { squaredEdt } from '../src/metrics/edt.js';
import { evaluateCase, resolveSettings } from '../src/metrics/evaluate.js';
import { countNonzero, surfaceOf } from '../src/metrics/surface.js';
import type { Shape3, Spacing3 } from '../src/metrics/types.js';

const SHAPE: Shape3 = [300, 512, 512];
const SPACING: Spacing3 = [2.5, 0.8, 0.8];
const repeatArg = process.argv.indexOf('--repeat');
const REPEAT = repeatArg >= 0 ? Math.max(1, Number(process.argv[repeatArg + 1])) : 3;

/** Fill `value` into `m` inside an ellipsoid given in mm (centre and radii, z,y,x). */
function ellipsoid(m: Uint8Array | Int16Array, centre: Spacing3, radii: Spacing3, value = 1): void {
  const [D, H, W] = SHAPE;
  for (let z = 0; z < D; z++) {
    const qz = ((z * SPACING[0] - centre[0]) / radii[0]) ** 2;
    if (qz > 1) continue;
    for (let y = 0; y < H; y++) {
      const qy = qz + ((y * SPACING[1] - centre[1]) / radii[1]) ** 2;
      if (qy > 1) continue;
      const row = (z * H + y) * W;
      for (let x = 0; x < W; x++) {
        if (qy + ((x * SPACING[2] - centre[2]) / radii[2]) ** 2 <= 1) m[row + x] = value;
      }
    }
  }
}

/** Best-of-`n` wall time and the CPU time (user+system) of that run, in seconds, and the last result. */
function time<T>(n: number, f: () => T): { s: number; cpu: number; out: T } {
  let best = Infinity, cpu = Infinity;
  let out: T | undefined;
  for (let i = 0; i < n; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    out = f();
    const wall = (performance.now() - t0) / 1000;
    const c = process.cpuUsage(c0);
    if (wall < best) { best = wall; cpu = (c.user + c.system) / 1e6; }
  }
  return { s: best, cpu, out: out as T };
}

/** "1.234 s (cpu 1.200 s)": wall time can exceed CPU time on a busy machine. */
function fmtT(t: { s: number; cpu: number }): string {
  return `${t.s.toFixed(3)} s (cpu ${t.cpu.toFixed(3)} s)`.padEnd(28);
}

function scipyAvailable(): boolean {
  return spawnSync('/usr/bin/python3', ['-c', 'import scipy.ndimage'], { stdio: 'ignore' }).status === 0;
}

/** Time scipy's EDT of (1 - edge) on the same mask; returns best-of-n seconds, or undefined on failure. */
function timeScipy(edge: Uint8Array, n: number): number | undefined {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'misfm-bench-'));
  try {
    const file = path.join(dir, 'edge.u8');
    writeFileSync(file, edge);
    const script = [
      'import sys, time, numpy as np, scipy.ndimage as nd',
      `e = np.fromfile(sys.argv[1], dtype=np.uint8).reshape(${SHAPE.join(',')})`,
      'best = 1e9',
      `for _ in range(${n}):`,
      '    t = time.perf_counter()',
      `    d = nd.distance_transform_edt(1 - e, sampling=[${SPACING.join(',')}])`,
      '    best = min(best, time.perf_counter() - t)',
      'print(best)',
    ].join('\n');
    const r = spawnSync('/usr/bin/python3', ['-c', script, file], { encoding: 'utf8', maxBuffer: 1 << 20 });
    if (r.status !== 0) { process.stdout.write(`scipy run failed: ${r.stderr}\n`); return undefined; }
    return Number(r.stdout.trim());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function main(): void {
  const [D, H, W] = SHAPE;
  const n = D * H * W;
  process.stdout.write(`grid ${D}x${H}x${W} (D,H,W) = ${(n / 1e6).toFixed(1)} M voxels, spacing ${SPACING.join('/')} mm, ` +
    `node ${process.version}, best of ${REPEAT}\n\n`);

  // A body-sized ellipsoid: its surface spans nearly the whole grid, so the EDT box is the full array.
  const body = new Uint8Array(n);
  ellipsoid(body, [375, 205, 205], [360, 195, 200]);
  const tSurf = time(REPEAT, () => surfaceOf(body, SHAPE));
  const edge = tSurf.out;
  process.stdout.write(`surface extraction (full grid)              ${fmtT(tSurf)}(${countNonzero(edge)} edge voxels)\n`);
  const full = new Float64Array(n);
  const tEdt = time(REPEAT, () => squaredEdt(edge, SHAPE, SPACING, undefined, full));
  process.stdout.write(`exact EDT, full grid (squared, float64)     ${fmtT(tEdt)}(${(n / tEdt.s / 1e6).toFixed(1)} M voxels/s)\n`);

  // Two organ-like ellipsoids (liver-sized, slightly shifted and scaled): the real use case.
  const a = new Uint8Array(n), b = new Uint8Array(n);
  ellipsoid(a, [380, 200, 230], [80, 85, 100]);
  ellipsoid(b, [383, 203, 228], [84, 88, 104]);
  const metrics = ['dice', 'assd', 'hd95', 'nsd'] as const;
  const tOrgan = time(REPEAT, () => binaryMetrics(a, b, SHAPE, SPACING, metrics, { clip: false }));
  const o = tOrgan.out;
  process.stdout.write(`organ pair: dice+ASSD+HD95+NSD, binary     ${fmtT(tOrgan)}` +
    `(dice ${o.dice.toFixed(4)}, ASSD ${o.assd.toFixed(3)} mm, HD95 ${o.hd95.toFixed(3)} mm, NSD@2mm ${o.nsd.toFixed(4)})\n`);

  // Same pair as label maps through the multi-class evaluator (crops each class first).
  const pa = new Int16Array(n), pb = new Int16Array(n);
  ellipsoid(pa, [380, 200, 230], [80, 85, 100], 1);
  ellipsoid(pb, [383, 203, 228], [84, 88, 104], 1);
  ellipsoid(pa, [300, 260, 120], [40, 30, 30], 2);
  ellipsoid(pb, [302, 262, 118], [42, 29, 31], 2);
  const settings = resolveSettings({ labels: [1, 2], metrics: [...metrics], mode: 'raw' });
  const tEval = time(REPEAT, () => evaluateCase('bench', pa, pb, SHAPE, SPACING, settings));
  process.stdout.write(`label maps, 2 classes, evaluateCase         ${fmtT(tEval)}\n`);

  // Worst case for surface metrics: two body-sized masks, EDT box = whole grid (twice).
  const body2 = new Uint8Array(n);
  ellipsoid(body2, [372, 207, 203], [355, 197, 198]);
  const tBody = time(1, () => binaryMetrics(body, body2, SHAPE, SPACING, ['assd', 'hd95'], { clip: false }));
  process.stdout.write(`body pair: ASSD+HD95, box = full grid        ${fmtT(tBody)}` +
    `(ASSD ${tBody.out.assd.toFixed(3)} mm, HD95 ${tBody.out.hd95.toFixed(3)} mm)\n`);

  if (scipyAvailable()) {
    const ts = timeScipy(edge, REPEAT);
    if (ts !== undefined) {
      process.stdout.write(`\nscipy distance_transform_edt, same mask     ${ts.toFixed(3)} s wall   -> misfm/scipy wall-time ratio ${(tEdt.s / ts).toFixed(2)}\n`);
    }
  } else {
    process.stdout.write('\nscipy not available in /usr/bin/python3: absolute figures only\n');
  }
}

main();
