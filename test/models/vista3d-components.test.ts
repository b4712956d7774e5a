/**
 * Algorithm 1's component search: `keepMergeComponentsWithPoints` labels only the components near
 * the clicks, and `labelStack` fills with precomputed neighbour offsets. Both are compared with
 * straightforward references (label everything by a plain flood fill, then pick the largest id near
 * each click, as MONAI does) on random blobby masks and salt noise, in both modes and with 1-3 objects.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { keepMergeComponentsWithPoints, labelStack } from '../../src/models/vista3d/merge.js';
import { Rng } from '../../src/util/rng.js';

type Shape = [number, number, number];

/** Plain reference labelling: raster-order seeds, bounds-checked offsets, no shortcuts. */
function refLabel(mask: Uint8Array, count: number, [H, W, D]: Shape, perObject: boolean): Int32Array {
  const vol = H * W * D;
  const ids = new Int32Array(mask.length);
  let next = 0;
  for (let seed = 0; seed < mask.length; seed++) {
    if (mask[seed] === 0 || ids[seed] !== 0) continue;
    ids[seed] = ++next;
    const todo = [seed];
    while (todo.length > 0) {
      const p = todo.pop()!;
      const b = Math.floor(p / vol), x = Math.floor((p % vol) / (W * D)), y = Math.floor((p % (W * D)) / D), z = p % D;
      for (let db = -1; db <= 1; db++) for (let dx = -1; dx <= 1; dx++) for (let dy = -1; dy <= 1; dy++) for (let dz = -1; dz <= 1; dz++) {
        const nz = +(db !== 0) + +(dx !== 0) + +(dy !== 0) + +(dz !== 0);
        if (nz === 0 || nz > 3 || (perObject && db !== 0)) continue;
        const c = [b + db, x + dx, y + dy, z + dz];
        if (c[0]! < 0 || c[0]! >= count || c[1]! < 0 || c[1]! >= H || c[2]! < 0 || c[2]! >= W || c[3]! < 0 || c[3]! >= D) continue;
        const q = c[0]! * vol + (c[1]! * W + c[2]!) * D + c[3]!;
        if (mask[q] === 1 && ids[q] === 0) { ids[q] = next; todo.push(q); }
      }
    }
  }
  return ids;
}

/** MONAI's keep_merge_components_with_points on fully labelled candidates. */
function refKeep(pos: Uint8Array, neg: Uint8Array, count: number, shape: Shape, coords: number[][][], labels: number[][], perObject: boolean): Uint8Array {
  const [H, W, D] = shape;
  const vol = H * W * D;
  const lp = refLabel(pos, count, shape, perObject), ln = refLabel(neg, count, shape, perObject);
  const out = new Uint8Array(count * vol);
  coords.forEach((pts, b) => pts.forEach(([px, py, pz], i) => {
    const l = labels[b]![i]!;
    const lab = l === 1 || l === 3 ? lp : l === 0 || l === 2 ? ln : null;
    if (lab === null) return;
    for (let m = 0; m < 3; m++) {
      let best = 0;
      for (let x = Math.max(px! - m, 0); x < Math.min(px! + m + 1, H); x++) for (let y = Math.max(py! - m, 0); y < Math.min(py! + m + 1, W); y++) {
        for (let z = Math.max(pz! - m, 0); z < Math.min(pz! + m + 1, D); z++) best = Math.max(best, lab[b * vol + (x * W + y) * D + z]!);
      }
      if (best > 0) { for (let j = 0; j < vol; j++) if (lab[b * vol + j] === best) out[b * vol + j] = 1; break; }
    }
  }));
  return out;
}

/** Random blobs: a thresholded sum of a few Gaussian bumps plus salt noise. */
function blobs(rng: Rng, count: number, [H, W, D]: Shape, fill: number): Uint8Array {
  const m = new Uint8Array(count * H * W * D);
  for (let b = 0; b < count; b++) {
    const c = Array.from({ length: 6 }, () => [rng.uniform(0, H), rng.uniform(0, W), rng.uniform(0, D), rng.uniform(1.5, 5)]);
    for (let x = 0; x < H; x++) for (let y = 0; y < W; y++) for (let z = 0; z < D; z++) {
      let v = 0;
      for (const [cx, cy, cz, r] of c) v += Math.exp(-((x - cx!) ** 2 + (y - cy!) ** 2 + (z - cz!) ** 2) / (2 * r! * r!));
      m[b * H * W * D + (x * W + y) * D + z] = v > fill || rng.uniform() < 0.03 ? 1 : 0;
    }
  }
  return m;
}

test('labelStack equals a plain flood fill (ids in raster order), both modes, 1-3 objects', () => {
  const rng = new Rng(7);
  for (const count of [1, 2, 3]) for (const mode of ['stacked', 'per-object'] as const) {
    const shape: Shape = [9, 11, 13];
    const mask = blobs(rng, count, shape, 0.4);
    assert.deepEqual(labelStack(mask, count, shape, mode), refLabel(mask, count, shape, mode === 'per-object'), `${mode}, ${count} objects`);
  }
  // Salt noise near the percolation threshold: many components, often joined only through diagonal neighbours.
  for (const count of [1, 2, 3]) for (const mode of ['stacked', 'per-object'] as const) {
    const shape: Shape = [12, 13, 15];
    const mask = Uint8Array.from({ length: count * 12 * 13 * 15 }, () => (rng.uniform() < 0.3 ? 1 : 0));
    assert.deepEqual(labelStack(mask, count, shape, mode), refLabel(mask, count, shape, mode === 'per-object'), `noise, ${mode}, ${count} objects`);
  }
  // One component larger than the fill's initial buffer (16384 voxels): the buffer grows.
  const big = new Uint8Array(30 * 30 * 30).fill(1);
  big[0] = 0;
  const ids = labelStack(big, 1, [30, 30, 30], 'per-object');
  assert.equal(ids[0], 0);
  assert.ok(ids.subarray(1).every((v) => v === 1));
});

test('keepMergeComponentsWithPoints labels only the clicked components, with the result of labelling everything', () => {
  const rng = new Rng(11);
  let kept = 0;
  for (let trial = 0; trial < 24; trial++) {
    const count = 1 + (trial % 3);
    const shape: Shape = [10, 12, 14];
    const pos = blobs(rng, count, shape, 0.5), neg = blobs(rng, count, shape, 0.6);
    const coords = Array.from({ length: count }, () => Array.from({ length: 4 }, () => [Math.floor(rng.uniform(0, 10)), Math.floor(rng.uniform(0, 12)), Math.floor(rng.uniform(0, 14))]));
    const labels = Array.from({ length: count }, () => Array.from({ length: 4 }, () => Math.floor(rng.uniform(-1, 4))));
    for (const mode of ['monai', 'corrected'] as const) {
      const got = keepMergeComponentsWithPoints(pos, neg, count, shape, coords, labels, mode);
      const want = refKeep(pos, neg, count, shape, coords, labels, mode === 'corrected');
      assert.deepEqual(got, want, `trial ${trial}, ${mode}`);
      kept += want.reduce((a, v) => a + v, 0);
    }
  }
  assert.ok(kept > 0, 'the clicks keep some components');
  assert.throws(() => keepMergeComponentsWithPoints(new Uint8Array(5), new Uint8Array(5), 1, [2, 2, 2], [], []), /do not fill 1x2x2x2/);
});
