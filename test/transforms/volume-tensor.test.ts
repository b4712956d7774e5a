import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MisfmError } from '../../src/util/errors.js';
import {
  volumeToTensor, volumeToBatch, tensorToVolume, toTensorVolume, fromTensorVolume, tensorDTypeFor,
} from '../../src/transforms/volume-tensor.js';
import { tensor } from '../../src/engine/creation.js';
import type { VoxelArray } from '../../src/io/volume.js';
import { makeVolume, TILTED } from './helpers.js';

const geom = { spacing: [0.7, 1.1, 2.5] as [number, number, number], origin: [-10, 5.5, 3] as [number, number, number], direction: TILTED };

test('a volume becomes a (D,H,W) tensor with no reordering: t[k][j][i] is voxel (i,j,k)', () => {
  const v = makeVolume((n) => new Int16Array(n), [4, 3, 2], (i, j, k) => 100 * k + 10 * j + i - 50, geom);
  const t = volumeToTensor(v, 'label');
  assert.deepEqual(t.shape, [2, 3, 4]);
  assert.equal(t.dtype, 'int16');
  const nested = t.toArray() as number[][][];
  for (let k = 0; k < 2; k++) for (let j = 0; j < 3; j++) for (let i = 0; i < 4; i++) assert.equal(nested[k]![j]![i], 100 * k + 10 * j + i - 50);
  const f = volumeToTensor(v);
  assert.equal(f.dtype, 'float32');
  assert.deepEqual(Array.from(f.data() as Float32Array), Array.from(v.data));
  const b = volumeToBatch(v);
  assert.deepEqual(b.shape, [1, 1, 2, 3, 4]);
});

test('label dtypes: integer types kept, uint16 -> int32, uint32 -> int64, whole-number floats -> int32', () => {
  const n = 2;
  assert.equal(tensorDTypeFor(new Uint8Array(n), 'label'), 'uint8');
  assert.equal(tensorDTypeFor(new Int8Array(n), 'label'), 'int8');
  assert.equal(tensorDTypeFor(new Uint16Array(n), 'label'), 'int32');
  assert.equal(tensorDTypeFor(new Uint32Array(n), 'label'), 'int64');
  assert.equal(tensorDTypeFor(new Float32Array(n), 'label'), 'int32');
  assert.equal(tensorDTypeFor(new Uint8Array(n), 'image'), 'float32');
  assert.equal(tensorDTypeFor(new Uint8Array(n), 'float64'), 'float64');

  const u16 = makeVolume((k) => new Uint16Array(k), [3, 1, 1], (i) => [0, 40000, 65535][i]!);
  const t16 = volumeToTensor(u16, 'label');
  assert.equal(t16.dtype, 'int32');
  assert.deepEqual(Array.from(t16.data() as Int32Array), [0, 40000, 65535]);
  const back16 = tensorToVolume(t16, u16, 'uint16');
  assert.ok(back16.data instanceof Uint16Array);
  assert.deepEqual(Array.from(back16.data), [0, 40000, 65535]);

  const u32 = makeVolume((k) => new Uint32Array(k), [2, 1, 1], (i) => [7, 4294967295][i]!);
  const t32 = volumeToTensor(u32, 'label');
  assert.equal(t32.dtype, 'int64');
  const back32 = tensorToVolume(t32, u32, 'uint32');
  assert.deepEqual(Array.from(back32.data), [7, 4294967295]);

  const fl = makeVolume((k) => new Float32Array(k), [2, 1, 1], (i) => [3, 61][i]!);
  assert.deepEqual(Array.from(volumeToTensor(fl, 'label').data() as Int32Array), [3, 61]);
});

test('round trip keeps voxels, voxel type and geometry (fresh arrays)', () => {
  const types: ((n: number) => VoxelArray)[] = [
    (n: number) => new Float32Array(n), (n: number) => new Float64Array(n), (n: number) => new Int32Array(n),
    (n: number) => new Int16Array(n), (n: number) => new Int8Array(n), (n: number) => new Uint8Array(n),
  ];
  for (const alloc of types) {
    const v = makeVolume(alloc, [3, 2, 2], (i, j, k) => (i + 3 * j + 6 * k) % 100, geom);
    const d: VoxelArray = v.data;
    const kind = d instanceof Float64Array ? 'float64' : d instanceof Float32Array ? 'image' : 'label';
    const tv = toTensorVolume(v, kind, true);
    assert.deepEqual(tv.tensor.shape, [1, 1, 2, 2, 3]);
    const back = fromTensorVolume(tv);
    assert.equal(back.data.constructor, v.data.constructor, `type ${v.data.constructor.name}`);
    assert.deepEqual(Array.from(back.data), Array.from(v.data));
    assert.deepEqual([back.size, back.spacing, back.origin, back.direction], [v.size, v.spacing, v.origin, v.direction]);
    assert.notEqual(back.origin, v.origin);
  }
  // int64 tensors come back as int32 voxels, bool as uint8.
  const g = { size: [3, 1, 1] as [number, number, number], spacing: [1, 1, 1] as [number, number, number], origin: [0, 0, 0] as [number, number, number], direction: geom.direction };
  const i64 = tensor([[[1, -2, 3]]], { dtype: 'int64' });
  const v64 = tensorToVolume(i64, g);
  assert.ok(v64.data instanceof Int32Array);
  assert.deepEqual(Array.from(v64.data), [1, -2, 3]);
  const vb = tensorToVolume(tensor([[[1, 0, 2]]]).ne(0), g);
  assert.ok(vb.data instanceof Uint8Array);
  assert.deepEqual(Array.from(vb.data), [1, 0, 1]);
});

test('bad input: non-integer labels, wrong shapes, out-of-range int64, inconsistent volumes', () => {
  const fl = makeVolume((k) => new Float32Array(k), [2, 1, 1], (i) => [1, 2.5][i]!);
  assert.throws(() => volumeToTensor(fl, 'label'), (e: unknown) => e instanceof MisfmError && e.code === 'DTYPE' && /label voxel 1 is 2\.5/.test(e.message));
  const g = { size: [4, 3, 2] as [number, number, number], spacing: [1, 1, 1] as [number, number, number], origin: [0, 0, 0] as [number, number, number], direction: geom.direction };
  assert.throws(() => tensorToVolume(tensor([[[1, 2, 3]]]), g), (e: unknown) => e instanceof MisfmError && e.code === 'SHAPE' && /\[1,1,3\].*4x3x2/.test(e.message));
  assert.throws(() => tensorToVolume(tensor([[[[1, 2, 3, 4]]]]).expand([2, 2, 3, 4]).contiguous(), g), (e: unknown) => e instanceof MisfmError && e.code === 'SHAPE');
  const big = tensor([[[3e9]]], { dtype: 'int64' });
  assert.throws(() => tensorToVolume(big, { ...g, size: [1, 1, 1] }), (e: unknown) => e instanceof MisfmError && e.code === 'DTYPE' && /do not fit int32/.test(e.message));
  const broken = { ...makeVolume((k) => new Uint8Array(k), [2, 2, 2], () => 0), size: [3, 2, 2] as [number, number, number] };
  assert.throws(() => volumeToTensor(broken), (e: unknown) => e instanceof MisfmError && e.code === 'ARGUMENT' && /8 voxels but its size 3x2x2 needs 12/.test(e.message));
});
