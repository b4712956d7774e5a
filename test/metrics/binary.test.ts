import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  assd, binaryMetrics, dice, hd95, indexPercentile, iou, nsd, parseMetricName, RAW_OPTIONS, REFERENCE_OPTIONS,
  relativeVolumeError, surfaceDistances, surfaceOptions,
} from '../../src/metrics/binary.js';
import type { Shape3 } from '../../src/metrics/types.js';
import { MisfmError } from '../../src/util/errors.js';
import { rng } from './helpers.js';

/** A 1x1xN line with foreground at the given x positions (every voxel of a line is border). */
function line(n: number, xs: number[]): Uint8Array {
  const m = new Uint8Array(n);
  for (const x of xs) m[x] = 1;
  return m;
}
const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);

test('HD95 takes sorted[int(0.95 n)], not an interpolated percentile', () => {
  // S = x 0..9, G = x 0: S->G distances are 0..9, G->S is [0].
  const shape: Shape3 = [1, 1, 20];
  const d = surfaceDistances(line(20, range(0, 10)), line(20, [0]), shape, [1, 1, 1]);
  assert.deepEqual([...d.sToG], range(0, 10));
  assert.deepEqual([...d.gToS], [0]);
  // numpy.percentile(range(10), 95) would give 8.55; PyMIC's rule picks index int(9.5) = 9.
  assert.equal(hd95(d, RAW_OPTIONS), 9);
  assert.equal(indexPercentile(Float64Array.from([5, 1, 4, 2, 3, 9, 8, 7, 6, 0])), 9);
  // n = 20: int(19.0) = 19, the maximum (interpolation would give 18.05)
  assert.equal(indexPercentile(Float64Array.from(range(0, 20))), 19);
  // n = 30: 30*0.95 = 28.499999999999996 in floating point, so index 28, like Python
  assert.equal(indexPercentile(Float64Array.from(range(0, 30))), 28);
  // spacing scales the distances (x spacing is the third entry)
  assert.equal(hd95(surfaceDistances(line(20, range(0, 10)), line(20, [0]), shape, [7, 5, 0.5]), RAW_OPTIONS), 4.5);
});

test('ASSD pools both directed lists; NSD counts points within tolerance', () => {
  const d = surfaceDistances(line(20, range(0, 10)), line(20, [0]), [1, 1, 20], [1, 1, 1]);
  assert.equal(assd(d, RAW_OPTIONS), 45 / 11);
  assert.equal(nsd(d, 2), 4 / 11); // 0,1,2 from S and the single G point
  assert.equal(nsd(d, 0), 2 / 11);
  assert.equal(nsd(d, 100), 1);
});

test('empty-mask conventions: reference (PyMIC) vs raw', () => {
  const shape: Shape3 = [1, 1, 8];
  const none = line(8, []), some = line(8, [2, 3]);
  const both = surfaceDistances(none, none, shape, [1, 1, 1]);
  const one = surfaceDistances(some, none, shape, [1, 1, 1]);
  // reference: both empty -> 0 / 0, one empty -> 20 / min(100, 50)
  assert.equal(assd(both), 0);
  assert.equal(hd95(both), 0);
  assert.equal(assd(one), 20);
  assert.equal(hd95(one), 50);
  assert.equal(hd95(one, surfaceOptions('reference', false)), 100);
  assert.equal(nsd(both, 1), 1);
  assert.equal(nsd(one, 1), 0);
  // raw: undefined
  assert.ok(Number.isNaN(assd(both, RAW_OPTIONS)) && Number.isNaN(hd95(both, RAW_OPTIONS)));
  assert.ok(Number.isNaN(assd(one, RAW_OPTIONS)) && Number.isNaN(hd95(one, RAW_OPTIONS)));
  assert.ok(Number.isNaN(nsd(both, 1, RAW_OPTIONS)));
  assert.equal(nsd(one, 1, RAW_OPTIONS), 0);
  // overlap metrics
  assert.equal(dice(none, none), 1);
  assert.equal(iou(none, none), 1);
  assert.ok(Math.abs(dice(some, none) - 1e-5 / (2 + 1e-5)) < 1e-18);
  assert.ok(Number.isNaN(relativeVolumeError(some, none)));
  assert.equal(relativeVolumeError(none, some), 1);
  // the presets are what the docs say
  assert.deepEqual({ ...REFERENCE_OPTIONS }, { empty: 'pymic', clip: true });
  assert.deepEqual(surfaceOptions('raw'), { empty: 'nan', clip: false });
  assert.deepEqual(surfaceOptions('raw', true), { empty: 'nan', clip: true });
});

test('reference mode clips ASSD at 20 and HD95 at 50; raw does not', () => {
  const shape: Shape3 = [1, 1, 100];
  const d = surfaceDistances(line(100, [0]), line(100, [90]), shape, [1, 1, 1]);
  assert.equal(assd(d, RAW_OPTIONS), 90);
  assert.equal(hd95(d, RAW_OPTIONS), 90);
  assert.equal(assd(d), 20);
  assert.equal(hd95(d), 50);
  const m = binaryMetrics(line(100, [0]), line(100, [90]), shape, [1, 1, 1], ['assd', 'hd95'], { clip: false });
  assert.deepEqual(m, { assd: 90, hd95: 90 });
});

test('dice, iou, rve, volume on a hand count', () => {
  const s = line(10, [0, 1, 2, 3]), g = line(10, [2, 3, 4, 5, 6, 7]);
  // |S|=4, |G|=6, |S∩G|=2, |S∪G|=8
  const m = binaryMetrics(s, g, [1, 2, 5], [2, 0.5, 3], ['dice', 'iou', 'rve', 'volume']);
  assert.ok(Math.abs(m.dice - (4 + 1e-5) / (10 + 1e-5)) < 1e-15);
  assert.ok(Math.abs(m.iou - (2 + 1e-5) / (8 + 1e-5)) < 1e-15);
  assert.ok(Math.abs(m.rve - 2 / 6) < 1e-15);
  assert.ok(Math.abs(m.volume - 6 * 3) < 1e-12); // ground-truth volume in mm^3, as PyMIC
  assert.deepEqual(Object.keys(m), ['dice', 'iou', 'rve', 'volume']);
});

test('bad input is a MisfmError naming the problem', () => {
  const isErr = (code: string, re: RegExp) => (e: unknown): boolean => e instanceof MisfmError && e.code === code && re.test(e.message);
  assert.throws(() => dice(new Uint8Array(3), new Uint8Array(4)), isErr('SHAPE', /3 voxels.*4/));
  assert.throws(() => surfaceDistances(new Uint8Array(8), new Uint8Array(8), [2, 2, 3], [1, 1, 1]), isErr('SHAPE', /needs 12/));
  assert.throws(() => nsd({ sToG: new Float64Array(1), gToS: new Float64Array(1) }, -1), isErr('ARGUMENT', /tolerance/));
  assert.throws(() => parseMetricName('hd99'), isErr('ARGUMENT', /unknown metric 'hd99'/));
  assert.equal(parseMetricName('Hausdorff95'), 'hd95');
});

/** Independent reference: edges by explicit 6-neighbour erosion, distances by all-pairs search. */
function bruteDirected(a: Uint8Array, b: Uint8Array, [D, H, W]: Shape3, sp: readonly number[]): number[] {
  const at = (m: Uint8Array, z: number, y: number, x: number): number => (z < 0 || y < 0 || x < 0 || z >= D || y >= H || x >= W ? 0 : m[(z * H + y) * W + x]!);
  const edges = (m: Uint8Array): number[][] => {
    const out: number[][] = [];
    for (let z = 0; z < D; z++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
      if (at(m, z, y, x) && !(at(m, z - 1, y, x) && at(m, z + 1, y, x) && at(m, z, y - 1, x) && at(m, z, y + 1, x) && at(m, z, y, x - 1) && at(m, z, y, x + 1))) out.push([z, y, x]);
    }
    return out;
  };
  const eb = edges(b);
  return edges(a).map(([z, y, x]) => Math.min(...eb.map(([p, q, r]) => Math.hypot((z! - p!) * sp[0]!, (y! - q!) * sp[1]!, (x! - r!) * sp[2]!))));
}

test('surface distances equal an all-pairs reference (masks inside and touching the border)', () => {
  const r = rng(11);
  const shape: Shape3 = [9, 10, 12];
  const spacing = [2.5, 0.8, 0.9] as const;
  for (let t = 0; t < 12; t++) {
    const a = new Uint8Array(9 * 10 * 12), b = new Uint8Array(9 * 10 * 12);
    // random boxes, some reaching the array border, plus salt
    for (const m of [a, b]) {
      const z0 = Math.floor(r() * 5), y0 = Math.floor(r() * 5), x0 = Math.floor(r() * 6);
      const z1 = z0 + 1 + Math.floor(r() * (9 - z0)), y1 = y0 + 1 + Math.floor(r() * (10 - y0)), x1 = x0 + 1 + Math.floor(r() * (12 - x0));
      for (let z = z0; z < z1; z++) for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m[(z * 10 + y) * 12 + x] = 1;
      for (let i = 0; i < 6; i++) m[Math.floor(r() * m.length)] = 1;
    }
    const d = surfaceDistances(a, b, shape, spacing);
    const wantS = bruteDirected(a, b, shape, spacing), wantG = bruteDirected(b, a, shape, spacing);
    assert.equal(d.sToG.length, wantS.length);
    assert.equal(d.gToS.length, wantG.length);
    wantS.forEach((w, i) => assert.ok(Math.abs(d.sToG[i]! - w) <= 1e-12 * Math.max(1, w), `case ${t} sToG[${i}] ${d.sToG[i]} vs ${w}`));
    wantG.forEach((w, i) => assert.ok(Math.abs(d.gToS[i]! - w) <= 1e-12 * Math.max(1, w), `case ${t} gToS[${i}] ${d.gToS[i]} vs ${w}`));
  }
});
