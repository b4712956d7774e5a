import { test } from 'node:test';
import assert from 'node:assert/strict';
import { boundingBox } from '../../src/metrics/box.js';
import { distanceTransform, squaredEdt } from '../../src/metrics/edt.js';
import type { Box3, Shape3, Spacing3 } from '../../src/metrics/types.js';
import { MisfmError } from '../../src/util/errors.js';
import { bruteForceEdt, rng } from './helpers.js';

const SHAPES: Shape3[] = [[1, 1, 1], [1, 1, 9], [1, 6, 1], [7, 1, 1], [1, 5, 7], [4, 1, 6], [3, 4, 1], [5, 6, 7], [7, 3, 9], [9, 8, 4]];
const SPACINGS: Spacing3[] = [[1, 1, 1], [2.5, 0.8, 0.9], [0.3, 1.7, 1.1]];

function randomMask(shape: Shape3, density: number, r: () => number): Uint8Array {
  const m = new Uint8Array(shape[0] * shape[1] * shape[2]);
  for (let i = 0; i < m.length; i++) m[i] = r() < density ? 1 : 0;
  return m;
}

function maxRel(a: Float64Array, b: Float64Array): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!, y = b[i]!;
    if (x === y) continue;
    worst = Math.max(worst, Math.abs(x - y) / Math.max(Math.abs(y), 1e-300));
  }
  return worst;
}

test('EDT equals brute force on random masks, shapes with 1-voxel axes, anisotropic spacing', () => {
  const r = rng(42);
  let checked = 0;
  for (const shape of SHAPES) {
    for (const spacing of SPACINGS) {
      for (const density of [0.01, 0.05, 0.3, 0.9]) {
        const m = randomMask(shape, density, r);
        if (!m.some((v) => v !== 0)) m[Math.floor(r() * m.length)] = 1;
        const got = distanceTransform(m, shape, spacing);
        const want = bruteForceEdt(m, shape, spacing);
        const e = maxRel(got, want);
        assert.ok(e < 1e-12, `shape ${shape} spacing ${spacing} density ${density}: rel error ${e}`);
        checked++;
      }
    }
  }
  assert.equal(checked, SHAPES.length * SPACINGS.length * 4);
});

test('EDT of a single feature voxel is the anisotropic Euclidean norm', () => {
  const shape: Shape3 = [4, 5, 6];
  const m = new Uint8Array(120);
  m[(1 * 5 + 2) * 6 + 3] = 1;
  const d = distanceTransform(m, shape, [2.5, 0.8, 0.9]);
  // voxel (3,0,5): dz=2, dy=-2, dx=2
  assert.ok(Math.abs(d[(3 * 5 + 0) * 6 + 5]! - Math.hypot(2 * 2.5, 2 * 0.8, 2 * 0.9)) < 1e-12);
  assert.equal(d[(1 * 5 + 2) * 6 + 3], 0);
});

test('empty mask gives Infinity everywhere, full mask gives zero', () => {
  const shape: Shape3 = [3, 4, 5];
  const empty = distanceTransform(new Uint8Array(60), shape, [1, 2, 3]);
  assert.ok(empty.every((v) => v === Infinity));
  const full = distanceTransform(new Uint8Array(60).fill(1), shape, [1, 2, 3]);
  assert.ok(full.every((v) => v === 0));
});

test('box-restricted EDT equals the full EDT inside a box that holds every feature', () => {
  const r = rng(7);
  for (const spacing of SPACINGS) {
    const shape: Shape3 = [12, 14, 16];
    const m = new Uint8Array(12 * 14 * 16);
    // features only in a sub-block
    for (let z = 3; z < 8; z++) for (let y = 5; y < 11; y++) for (let x = 2; x < 9; x++) if (r() < 0.08) m[(z * 14 + y) * 16 + x] = 1;
    m[(4 * 14 + 6) * 16 + 3] = 1;
    const full = squaredEdt(m, shape, spacing);
    const tight = boundingBox(shape, m)!;
    const grown: Box3 = { z0: tight.z0 - 2, z1: tight.z1 + 3, y0: tight.y0 - 1, y1: tight.y1 + 2, x0: 0, x1: 16 };
    for (const box of [tight, grown]) {
      const bd = box.z1 - box.z0, bh = box.y1 - box.y0, bw = box.x1 - box.x0;
      const sub = squaredEdt(m, shape, spacing, box, new Float64Array(bd * bh * bw + 17));
      let worst = 0, same = 0;
      for (let z = 0; z < bd; z++) for (let y = 0; y < bh; y++) for (let x = 0; x < bw; x++) {
        const a = sub[(z * bh + y) * bw + x]!, b = full[((z + box.z0) * 14 + y + box.y0) * 16 + x + box.x0]!;
        if (a === b) same++;
        else worst = Math.max(worst, Math.abs(a - b) / b);
      }
      // Same 1D problems on the same relative offsets: the values come out bit-identical.
      assert.equal(same, bd * bh * bw, `${bd * bh * bw - same} voxels differ (worst rel ${worst})`);
    }
  }
});

test('boundingBox is tight and spans several masks', () => {
  const shape: Shape3 = [4, 5, 6];
  const a = new Uint8Array(120), b = new Uint8Array(120);
  a[(1 * 5 + 2) * 6 + 3] = 1;
  b[(3 * 5 + 0) * 6 + 5] = 1;
  assert.deepEqual(boundingBox(shape, a), { z0: 1, z1: 2, y0: 2, y1: 3, x0: 3, x1: 4 });
  assert.deepEqual(boundingBox(shape, a, b), { z0: 1, z1: 4, y0: 0, y1: 3, x0: 3, x1: 6 });
  assert.equal(boundingBox(shape, new Uint8Array(120)), undefined);
  // width a multiple of 4 (word-wise row scan), aligned and unaligned views
  const backing = new Uint8Array(1 + 3 * 4 * 8);
  for (const off of [0, 1]) {
    backing.fill(0);
    const m = backing.subarray(off, off + 96);
    m[(1 * 4 + 3) * 8 + 7] = 1;
    m[(2 * 4 + 1) * 8 + 2] = 1;
    assert.deepEqual(boundingBox([3, 4, 8], m), { z0: 1, z1: 3, y0: 1, y1: 4, x0: 2, x1: 8 });
  }
});

test('bad input: wrong length, bad spacing, box outside, small output buffer', () => {
  const isErr = (code: string, re: RegExp) => (e: unknown): boolean => e instanceof MisfmError && e.code === code && re.test(e.message);
  assert.throws(() => squaredEdt(new Uint8Array(10), [2, 2, 2], [1, 1, 1]), isErr('SHAPE', /10 elements.*needs 8/));
  assert.throws(() => squaredEdt(new Uint8Array(8), [2, 2, 2], [1, 0, 1]), isErr('ARGUMENT', /spacing/));
  assert.throws(() => squaredEdt(new Uint8Array(8), [2, 2, 2], [1, 1, 1], { z0: 0, z1: 3, y0: 0, y1: 2, x0: 0, x1: 2 }), isErr('SHAPE', /outside/));
  assert.throws(() => squaredEdt(new Uint8Array(8), [2, 2, 2], [1, 1, 1], undefined, new Float64Array(4)), isErr('SHAPE', /buffer/));
});
