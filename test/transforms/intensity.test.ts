import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Volume } from '../../src/io/volume.js';
import { Rng } from '../../src/util/rng.js';
import { MisfmError } from '../../src/util/errors.js';
import {
  adaptiveContrastAdjust, clipAndScale, clipAndScaleTensor, ctNormalize, foregroundStats, gammaCorrection, invertIntensity,
  meanStd, normalizeMeanStd, percentiles, percentileZScore, randomVolfIntensity,
} from '../../src/transforms/intensity.js';
import { volumeToTensor } from '../../src/transforms/volume-tensor.js';
import { assertClose } from '../helpers.js';
import { lcg, makeVolume, TILTED } from './helpers.js';

const vol = (vals: number[], alloc: (n: number) => Float32Array | Int16Array | Int32Array = (n) => new Float32Array(n)): Volume =>
  makeVolume(alloc, [vals.length, 1, 1], (i) => vals[i]!, { spacing: [2, 3, 4], origin: [1, 2, 3], direction: TILTED });

/** numpy.percentile(linear) by full sort: the reference the selection must match. */
function refPercentile(values: number[], q: number): number {
  const a = [...values].sort((x, y) => x - y);
  const pos = (q / 100) * (a.length - 1);
  const k = Math.floor(pos), t = pos - k;
  const lo = a[k]!, hi = a[Math.min(k + 1, a.length - 1)]!;
  return t >= 0.5 ? hi - (hi - lo) * (1 - t) : lo + (hi - lo) * t;
}

test('clipAndScale: [-1000, 1000] -> [-1, 1] by default, custom windows, engine form agrees', () => {
  const v = vol([-2000, -1000, -500, 0, 500, 1000, 3000], (n) => new Int16Array(n));
  const o = clipAndScale(v);
  assert.ok(o.data instanceof Float32Array);
  assert.deepEqual(Array.from(o.data), [-1, -1, -0.5, 0, 0.5, 1, 1]);
  assert.deepEqual([o.size, o.spacing, o.origin, o.direction], [v.size, v.spacing, v.origin, v.direction]);
  assert.deepEqual(Array.from(clipAndScale(v, { lo: -500, hi: 500, outLo: 0, outHi: 1 }).data), [0, 0, 0, 0.5, 1, 1, 1]);
  const t = clipAndScaleTensor(volumeToTensor(v));
  assertClose(t.data() as Float32Array, o.data, 0, 2e-7, 'engine (float32 arithmetic) vs JS');
  assert.throws(() => clipAndScale(v, { lo: 5, hi: 5 }), (e: unknown) => e instanceof MisfmError && /lo < hi/.test(e.message));
});

test('normalizeMeanStd: (x - mean)/(std + 1e-5) with population std; mask threshold; random background', () => {
  const v = vol([1, 2, 3, 4]);
  const s = Math.sqrt(1.25);
  assertClose(normalizeMeanStd(v).data, [-1.5, -0.5, 0.5, 1.5].map((x) => x / (s + 1e-5)), 1e-6, 1e-7);
  assertClose(normalizeMeanStd(v, { mean: 2, std: 1, eps: 0 }).data, [-1, 0, 1, 2], 0, 0);
  // Statistics over x > 1.5 only: {2,3,4} mean 3, std sqrt(2/3).
  const m = normalizeMeanStd(v, { maskThreshold: 1.5 });
  const sm = Math.sqrt(2 / 3) + 1e-5;
  assertClose(m.data, [(1 - 3) / sm, (2 - 3) / sm, 0, 1 / sm], 1e-6, 1e-7);
  const a = normalizeMeanStd(v, { maskThreshold: 1.5, randomBackground: new Rng(9) });
  const b = normalizeMeanStd(v, { maskThreshold: 1.5, randomBackground: new Rng(9) });
  assert.deepEqual(a.data, b.data);
  assert.equal(a.data[0], Math.fround(new Rng(9).normal()));
  assert.deepEqual(Array.from(a.data.slice(1)), Array.from(m.data.slice(1)));
  // Empty mask falls back to mean 0, std 1 (PyMIC).
  assertClose(normalizeMeanStd(v, { maskThreshold: 10 }).data, [1, 2, 3, 4].map((x) => x / (1 + 1e-5)), 1e-6, 0);
  assert.deepEqual(meanStd([1, 2, 3, 4], [0, 1, 1, 0]), { mean: 2.5, std: 0.5, count: 2 });
});

test('percentiles match numpy linear interpolation (known values, ties, masks, random data)', () => {
  assertClose(percentiles(Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), [0.5, 50, 99.5]), [1.045, 5.5, 9.955], 1e-12, 1e-12);
  // numpy.percentile([5,1,1,1,9,3,3,7], [0,10,33,50,90,100]) = [1, 1, 1.62, 3, 7.6, 9]
  assertClose(percentiles(Float32Array.from([5, 1, 1, 1, 9, 3, 3, 7]), [0, 10, 33, 50, 90, 100]), [1, 1, 1.62, 3, 7.6, 9], 1e-9, 1e-9);
  assert.deepEqual(percentiles([4, 8, 15], [50], [0, 1, 1]), [11.5]);
  const r = lcg(11);
  for (const n of [1, 2, 17, 1000, 4099]) {
    // Many exact ties, like CT air at -1024.
    const vals = Array.from({ length: n }, () => (r() < 0.4 ? -1024 : Math.round(r() * 3000 - 1000)));
    const qs = [0, 0.5, 2, 25, 50, 98.3, 99.5, 100];
    assertClose(percentiles(Float64Array.from(vals), qs), qs.map((q) => refPercentile(vals, q)), 1e-12, 1e-9, `n=${n}`);
  }
  assert.throws(() => percentiles([1, 2], [101]), (e: unknown) => e instanceof MisfmError && /q must be in \[0, 100\]/.test(e.message));
  assert.throws(() => percentiles([1, 2], [50], [0, 0]), (e: unknown) => e instanceof MisfmError && /empty mask/.test(e.message));
});

test('nnU-Net CT normalisation: foreground percentiles and z-score', () => {
  // Foreground = voxels 1..10 (values 1..10); background huge values that must not count.
  const vals = [-3000, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 5000];
  const v = vol(vals);
  const mask = Uint8Array.from(vals.map((_, i) => (i >= 1 && i <= 10 ? 1 : 0)));
  const st = foregroundStats(v, mask);
  assertClose([st.lo, st.hi, st.mean, st.std], [1.045, 9.955, 5.5, Math.sqrt(8.25)], 1e-12, 1e-12);
  const out = ctNormalize(v, st);
  const expect = vals.map((x) => (Math.min(Math.max(x, 1.045), 9.955) - 5.5) / Math.sqrt(8.25));
  assertClose(out.data, expect, 1e-6, 1e-6);
  const lab = makeVolume((n) => new Uint8Array(n), [12, 1, 1], (i) => mask[i]! * 3);
  const z = percentileZScore(v, { mask: lab });
  assert.deepEqual(z.volume.data, out.data);
  assert.throws(() => foregroundStats(v, new Uint8Array(3)), (e: unknown) => e instanceof MisfmError && /mask has 3 voxels, the image 12/.test(e.message));
});

test('adaptive contrast: [min,v0]->[0,.1], [v0,v1]->[.1,.9], [v1,max]->[.9,1]; gamma; inversion', () => {
  const vals = Array.from({ length: 101 }, (_, i) => i); // percentiles are exact: p10 = 10, p90 = 90
  const v = vol(vals);
  const a = adaptiveContrastAdjust(v, 10, 90);
  assertClose([a.data[0]!, a.data[5]!, a.data[10]!, a.data[50]!, a.data[90]!, a.data[95]!, a.data[100]!], [0, 0.05, 0.1, 0.5, 0.9, 0.95, 1], 1e-6, 1e-7);
  // Flat middle segment (v0 == v1) maps to 0.1 instead of dividing by zero.
  const flat = adaptiveContrastAdjust(vol([0, 5, 5, 5, 5, 5, 5, 5, 5, 10]), 30, 60);
  assertClose(flat.data, [0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 1], 1e-6, 1e-7);
  assertClose(gammaCorrection(vol([2, 3, 6]), 2).data, [2, 2.25, 6], 1e-7, 1e-7);
  assert.deepEqual(Array.from(gammaCorrection(vol([4, 4]), 0.5).data), [4, 4]);
  assertClose(invertIntensity(vol([0, 0.25, 1])).data, [1, 0.75, 0], 0, 0);
  assert.throws(() => gammaCorrection(v, 0), (e: unknown) => e instanceof MisfmError && /gamma must be > 0/.test(e.message));
});

test('randomVolfIntensity: PyMIC draw ranges, both patches inverted together (~25%), deterministic under a seed', () => {
  const r = lcg(5);
  const p1 = makeVolume((n) => new Float32Array(n), [6, 5, 4], () => r() * 2 - 1);
  const p2 = makeVolume((n) => new Float32Array(n), [6, 5, 4], () => r() * 2 - 1);
  const a = randomVolfIntensity([p1, p2], new Rng(123));
  const b = randomVolfIntensity([p1, p2], new Rng(123));
  assert.deepEqual(a, b);
  let inverted = 0;
  const rng = new Rng(2024);
  const N = 400;
  for (let i = 0; i < N; i++) {
    const { volumes, params } = randomVolfIntensity([p1, p2], rng);
    for (const p of params.patches) {
      assert.ok(p.p0 >= 0.1 && p.p0 < 2 && p.p1 >= 98 && p.p1 < 99.9 && p.gamma >= 0.7 && p.gamma < 1.5);
    }
    for (const v of volumes) {
      let mn = Infinity, mx = -Infinity;
      for (const x of v.data) { mn = Math.min(mn, x); mx = Math.max(mx, x); }
      assert.ok(Math.abs(mn) < 1e-6 && Math.abs(mx - 1) < 1e-6, 'output spans [0, 1]');
    }
    if (params.inverted) inverted++;
  }
  // Binomial(400, 0.25): mean 100, sd 8.7; 5 sd bounds.
  assert.ok(inverted > 56 && inverted < 144, `inverted ${inverted} of ${N}`);
  // Replaying the draws by hand gives the same first patch.
  const g = new Rng(77);
  const out = randomVolfIntensity([p1], g).volumes[0]!;
  const h = new Rng(77);
  const q0 = h.uniform(0.1, 2), q1 = h.uniform(98, 99.9), gm = h.uniform(0.7, 1.5);
  let manual = gammaCorrection(adaptiveContrastAdjust(p1, q0, q1), gm);
  if (h.uniform() < 0.25) manual = invertIntensity(manual);
  assert.deepEqual(out.data, manual.data);
});
