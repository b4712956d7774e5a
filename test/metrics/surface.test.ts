import { test } from 'node:test';
import assert from 'node:assert/strict';
import { countNonzero, surfaceOf } from '../../src/metrics/surface.js';
import type { Shape3 } from '../../src/metrics/types.js';
import { MisfmError } from '../../src/util/errors.js';
import { rng } from './helpers.js';

function cube(shape: Shape3, lo: number, hi: number): Uint8Array {
  const [D, H, W] = shape;
  const m = new Uint8Array(D * H * W);
  for (let z = lo; z < hi; z++) for (let y = lo; y < hi; y++) for (let x = lo; x < hi; x++) m[(z * H + y) * W + x] = 1;
  return m;
}

/** Reference: mask minus 6-connected erosion with a zero border, written the obvious way. */
function slowSurface(m: Uint8Array, [D, H, W]: Shape3): Uint8Array {
  const at = (z: number, y: number, x: number): number => (z < 0 || y < 0 || x < 0 || z >= D || y >= H || x >= W ? 0 : m[(z * H + y) * W + x]!);
  const e = new Uint8Array(m.length);
  for (let z = 0; z < D; z++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    if (!at(z, y, x)) continue;
    const eroded = at(z - 1, y, x) && at(z + 1, y, x) && at(z, y - 1, x) && at(z, y + 1, x) && at(z, y, x - 1) && at(z, y, x + 1);
    e[(z * H + y) * W + x] = eroded ? 0 : 1;
  }
  return e;
}

test('interior cube: 5^3 cube inside a 7^3 array has 125-27 edge voxels, centre is not edge', () => {
  const shape: Shape3 = [7, 7, 7];
  const e = surfaceOf(cube(shape, 1, 6), shape);
  assert.equal(countNonzero(e), 125 - 27);
  assert.equal(e[(3 * 7 + 3) * 7 + 3], 0);
  assert.equal(e[(1 * 7 + 3) * 7 + 3], 1);
  assert.equal(e[0], 0);
});

test('foreground on the array border is edge (zero border value)', () => {
  const full = new Uint8Array(64).fill(1);
  const e = surfaceOf(full, [4, 4, 4]);
  assert.equal(countNonzero(e), 64 - 8); // only the 2x2x2 core is eroded
  assert.equal(e[(1 * 4 + 1) * 4 + 1], 0);
  // a single slice (D=1): everything is border
  assert.equal(countNonzero(surfaceOf(new Uint8Array(20).fill(1), [1, 4, 5])), 20);
  // a cube touching one face only
  const shape: Shape3 = [6, 6, 6];
  const m = cube(shape, 0, 4);
  const ref = slowSurface(m, shape);
  assert.deepEqual(surfaceOf(m, shape), ref);
  assert.equal(countNonzero(ref), 64 - 8);
});

test('single voxel is its own surface; empty mask has none', () => {
  const m = new Uint8Array(27);
  m[13] = 1;
  assert.deepEqual([...surfaceOf(m, [3, 3, 3])], [...m]);
  assert.equal(countNonzero(surfaceOf(new Uint8Array(27), [3, 3, 3])), 0);
});

test('random masks agree with the slow erosion reference', () => {
  const r = rng(3);
  for (const shape of [[5, 6, 7], [1, 8, 8], [8, 1, 3], [6, 5, 1]] as Shape3[]) {
    for (const p of [0.3, 0.7, 0.95]) {
      const m = new Uint8Array(shape[0] * shape[1] * shape[2]);
      for (let i = 0; i < m.length; i++) m[i] = r() < p ? 1 : 0;
      assert.deepEqual(surfaceOf(m, shape), slowSurface(m, shape));
    }
  }
});

test('wrong length is a SHAPE error', () => {
  assert.throws(() => surfaceOf(new Uint8Array(5), [2, 2, 2]), (e: unknown) => e instanceof MisfmError && e.code === 'SHAPE');
});
