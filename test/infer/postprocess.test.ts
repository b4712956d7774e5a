import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectedComponents, keepLargestComponent } from '../../src/infer/postprocess.js';
import { MisfmError } from '../../src/util/errors.js';
import type { Triple3 } from '../../src/infer/windows.js';

const SHAPE: Triple3 = [4, 5, 6];
const idx = (z: number, y: number, x: number): number => (z * SHAPE[1] + y) * SHAPE[2] + x;

/** A: 2x2x2 cube of class 1 at the origin (8 voxels); B: one class-2 voxel touching A only by a corner;
 *  C: a 3-voxel class-1 bar far away, D: a class-2 voxel far away. */
function scene(): Uint8Array {
  const l = new Uint8Array(SHAPE[0] * SHAPE[1] * SHAPE[2]);
  for (let z = 0; z < 2; z++) for (let y = 0; y < 2; y++) for (let x = 0; x < 2; x++) l[idx(z, y, x)] = 1;
  l[idx(2, 2, 2)] = 2;                   // corner contact with A at (1,1,1)
  for (let x = 3; x < 6; x++) l[idx(3, 4, x)] = 1;
  l[idx(0, 4, 5)] = 2;
  return l;
}

test('connected components: 26 joins corner contacts, 6 does not; classes separate unless merged', () => {
  const l = scene();
  const c26 = connectedComponents(l, SHAPE, 26, true);
  assert.deepEqual(c26.sizes.slice(1), [9, 1, 3]);          // A+B, D, C in scan order
  const c6 = connectedComponents(l, SHAPE, 6, true);
  assert.deepEqual(c6.sizes.slice(1), [8, 1, 1, 3]);        // A, D, B, C
  const perClass = connectedComponents(l, SHAPE, 26, false);
  assert.deepEqual(perClass.sizes.slice(1), [8, 1, 1, 3]);
  assert.deepEqual(perClass.values.slice(1), [1, 2, 2, 1]);
  assert.equal(c26.ids[idx(2, 2, 2)], c26.ids[idx(0, 0, 0)]);
  assert.notEqual(c6.ids[idx(2, 2, 2)], c6.ids[idx(0, 0, 0)]);
  // 18-connectivity: edges join, corners do not.
  const e = new Uint8Array(SHAPE[0] * SHAPE[1] * SHAPE[2]);
  e[idx(0, 0, 0)] = 1; e[idx(0, 1, 1)] = 1; e[idx(1, 2, 2)] = 1;
  assert.deepEqual(connectedComponents(e, SHAPE, 18).sizes.slice(1), [2, 1]);
  assert.deepEqual(connectedComponents(e, SHAPE, 6).sizes.slice(1), [1, 1, 1]);
  assert.deepEqual(connectedComponents(e, SHAPE, 26).sizes.slice(1), [3]);
});

test('keepLargestComponent: union keeps every class inside the largest foreground component', () => {
  const l = scene();
  const u26 = keepLargestComponent(l, SHAPE, 'union', 26);
  const want = new Uint8Array(l.length);
  for (let z = 0; z < 2; z++) for (let y = 0; y < 2; y++) for (let x = 0; x < 2; x++) want[idx(z, y, x)] = 1;
  want[idx(2, 2, 2)] = 2;
  assert.deepEqual(u26, want);
  want[idx(2, 2, 2)] = 0;
  assert.deepEqual(keepLargestComponent(l, SHAPE, 'union', 6), want);
  assert.deepEqual(l, scene(), 'input untouched');
});

test('keepLargestComponent: per class keeps the largest component of each class', () => {
  const l = scene();
  const p = keepLargestComponent(l, SHAPE, 'per-class', 26);
  const want = new Uint8Array(l.length);
  for (let z = 0; z < 2; z++) for (let y = 0; y < 2; y++) for (let x = 0; x < 2; x++) want[idx(z, y, x)] = 1;
  // Class 2 has two single-voxel components: the first in C order, (0,4,5), wins the tie.
  want[idx(0, 4, 5)] = 2;
  assert.deepEqual(p, want);
  // uint16 labels keep their type and values above 255.
  const big = Uint16Array.from(l, (v) => (v === 2 ? 300 : v));
  const pb = keepLargestComponent(big, SHAPE, 'per-class');
  assert.ok(pb instanceof Uint16Array);
  assert.equal(pb[idx(0, 4, 5)], 300);
  assert.equal(pb[idx(2, 2, 2)], 0);
});

test('a large single component does not overflow the stack; empty maps stay empty', () => {
  const shape: Triple3 = [40, 60, 60];
  const l = new Uint8Array(shape[0] * shape[1] * shape[2]).fill(3);
  l[0] = 0;
  const c = connectedComponents(l, shape, 6);
  assert.deepEqual(c.sizes.slice(1), [l.length - 1]);
  const empty = new Uint8Array(10);
  assert.deepEqual(keepLargestComponent(empty, [1, 2, 5], 'union'), empty);
});

test('bad arguments are MisfmErrors naming the problem', () => {
  assert.throws(() => connectedComponents(new Uint8Array(5), [1, 2, 3]), (e: unknown) => e instanceof MisfmError && /5 labels do not fill shape \[1,2,3\]/.test(e.message));
  assert.throws(() => connectedComponents(new Uint8Array(6), [1, 2, 3], 8 as never), /connectivity must be 6, 18 or 26/);
  assert.throws(() => keepLargestComponent(new Uint8Array(6), [1, 2, 3], 'largest' as never), /mode must be 'union' or 'per-class'/);
});
