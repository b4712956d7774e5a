import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  readImage, writeImage, writeLike, affineLPS, affineRAS, orientationCode, det3, sameGrid, castVoxels, type VoxelType,
} from '../../src/io/image/index.js';
import { voxelToWorld, type Volume } from '../../src/io/volume.js';
import { MisfmError } from '../../src/util/errors.js';
import {
  OBLIQUE, OBLIQUE_FLIPPED, assertGeometryClose, assertSameVoxels, dataPath, syntheticVolume, tempDir,
} from './image-helpers.js';

const FORMATS = ['.nii', '.nii.gz', '.nrrd', '.nhdr', '.mha', '.mhd'];
/** NIfTI stores the affine as float32; the text formats print doubles. */
const tolFor = (ext: string): number => (ext.startsWith('.nii') ? 2e-6 : 1e-9);

test('the synthetic geometry is oblique, flipped, anisotropic and off-origin', () => {
  assert.ok(Math.abs(det3(OBLIQUE_FLIPPED) + 1) < 1e-12 && Math.abs(det3(OBLIQUE) - 1) < 1e-12);
  // No axis is aligned with a world axis: every direction cosine is clearly non-zero.
  assert.ok(OBLIQUE_FLIPPED.every((d) => Math.abs(d) > 0.02), OBLIQUE_FLIPPED.join(','));
});

for (const ext of FORMATS) {
  test(`round trip ${ext}: int16/uint8/float32 voxels exact, oblique geometry kept (det +1 and -1)`, async () => {
    const dir = tempDir('rt');
    try {
      const cases = [['int16', 'flipped', OBLIQUE_FLIPPED], ['uint8', 'flipped', OBLIQUE_FLIPPED], ['float32', 'oblique', OBLIQUE]] as const;
      for (const [type, gname, dirm] of cases) {
        {
          const v = syntheticVolume(type, dirm);
          const file = path.join(dir, `${type}-${gname}${ext}`);
          await writeImage(file, v);
          const r = await readImage(file);
          assertSameVoxels(r.data, v.data, `${ext} ${type}`);
          assertGeometryClose(r, v, tolFor(ext), `${ext} ${type} ${gname}`);
          assert.equal(Math.sign(det3(r.direction)), Math.sign(det3(v.direction)), 'handedness survives');
          // A far corner lands at the same world point: the whole affine survived, not just its parts.
          const far = voxelToWorld(r, [6, 4, 3]), want = voxelToWorld(v, [6, 4, 3]);
          for (let i = 0; i < 3; i++) assert.ok(Math.abs(far[i]! - want[i]!) < 1e-4, `${ext} corner ${far} vs ${want}`);
        }
      }
      // Only the requested files (and detached data files) remain: no temp leftovers.
      const left = fs.readdirSync(dir).filter((n) => n.startsWith('.'));
      assert.deepEqual(left, []);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('round trip of the other voxel types (uint16, int8, int32, uint32, float64)', async () => {
  const dir = tempDir('rt2');
  try {
    const cases: Array<[VoxelType, string]> = [['uint16', '.nii.gz'], ['int8', '.nrrd'], ['int32', '.mha'], ['uint32', '.nii.gz'], ['float64', '.nrrd']];
    for (const [type, ext] of cases) {
      {
        const v = syntheticVolume(type);
        const file = path.join(dir, `${type}${ext}`);
        await writeImage(file, v);
        const r = await readImage(file);
        assertSameVoxels(r.data, v.data, `${ext} ${type}`);
        assertGeometryClose(r, v, tolFor(ext), `${ext} ${type}`);
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('real int32 CT (01/ct.nii.gz): README facts, then exact round trips through .nrrd and .nii.gz', async () => {
  const ct = await readImage(dataPath('01_totalseg_abdomen_ct', 'ct.nii.gz'));
  assert.ok(ct.data instanceof Int32Array, 'NIfTI datatype 8 stays int32');
  assert.deepEqual(ct.size, [122, 101, 112]);
  assert.deepEqual(ct.spacing, [3, 3, 3]);
  let lo = Infinity, hi = -Infinity;
  for (const x of ct.data) { if (x < lo) lo = x; if (x > hi) hi = x; }
  assert.deepEqual([lo, hi], [-1207, 3382]);
  // srow0 = [3, 0, 0, -177.956] in RAS: x origin is +177.956 in LPS, and the RAS affine gives it back.
  assert.ok(Math.abs(affineRAS(ct)[0]![3]! - -177.956) < 1e-3, String(affineRAS(ct)[0]));
  assert.ok(Math.abs(affineRAS(ct)[0]![0]! - 3) < 1e-9);
  const dir = tempDir('rt3');
  try {
    for (const ext of ['.nrrd', '.nii.gz']) {
      const file = path.join(dir, `ct${ext}`);
      await writeImage(file, ct);
      const r = await readImage(file);
      assertSameVoxels(r.data, ct.data, `01 ct ${ext}`);
      assertGeometryClose(r, ct, 1e-6, `01 ct ${ext}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('01/ct_sm.nii.gz holds exactly ct[:, :, 82:112] (its header keeps the parent affine unchanged)', async () => {
  const ct = await readImage(dataPath('01_totalseg_abdomen_ct', 'ct.nii.gz'));
  const sm = await readImage(dataPath('01_totalseg_abdomen_ct', 'ct_sm.nii.gz'));
  assert.ok(sm.data instanceof Int16Array);
  assert.deepEqual(sm.size, [122, 101, 30]);
  const plane = 122 * 101;
  for (let i = 0; i < sm.data.length; i++) {
    if (sm.data[i] !== ct.data[82 * plane + i]) assert.fail(`voxel ${i}: ${sm.data[i]} vs ${ct.data[82 * plane + i]}`);
  }
  // TotalSegmentator cropped the array but not the affine: both files claim the same origin.
  assert.deepEqual(sm.origin, ct.origin);
  assert.deepEqual(sm.direction, ct.direction);
  // srow0 = [3, 0, 0, ...] in RAS: index x runs to the patient's right (nibabel: RAS).
  assert.equal(orientationCode(ct), 'RAS');
});

test('writeLike gives a label map the grid of its image; affineLPS matches voxelToWorld', async () => {
  const img = syntheticVolume('float32');
  const labels = new Uint8Array(img.data.length).map((_, i) => i % 3);
  const dir = tempDir('like');
  try {
    const file = path.join(dir, 'seg.nii.gz');
    await writeLike(file, labels, img);
    const r = await readImage(file);
    assert.ok(r.data instanceof Uint8Array);
    assertSameVoxels(r.data, labels, 'labels');
    assert.ok(sameGrid(r, img), 'same grid as the reference');
    await assert.rejects(writeLike(path.join(dir, 'bad.nii.gz'), new Uint8Array(5), img), (e: unknown) =>
      e instanceof MisfmError && /5 voxels given/.test(e.message) && e.message.includes('bad.nii.gz'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const a = affineLPS(img);
  const p = voxelToWorld(img, [2, 3, 1]);
  for (let r = 0; r < 3; r++) assert.ok(Math.abs(a[r]![0]! * 2 + a[r]![1]! * 3 + a[r]![2]! + a[r]![3]! - p[r]!) < 1e-9);
});

test('atomic write: a failed write leaves the previous file intact and no temp files', async () => {
  const dir = tempDir('atomic');
  try {
    const file = path.join(dir, 'out.nrrd');
    const v = syntheticVolume('float32');
    await writeImage(file, v);
    const before = fs.readFileSync(file);
    // A float that does not fit uint8 aborts the write before anything is renamed.
    await assert.rejects(writeImage(file, v, { dtype: 'uint8' }), (e: unknown) => e instanceof MisfmError && e.code === 'DTYPE' && /does not fit uint8/.test(e.message));
    const broken: Volume = { ...v, data: new Float32Array(3) };
    await assert.rejects(writeImage(file, broken), (e: unknown) => e instanceof MisfmError && /voxel data holds 3 values/.test(e.message));
    assert.deepEqual(fs.readFileSync(file), before);
    assert.deepEqual(fs.readdirSync(dir), ['out.nrrd']);
    // Detached header + data: both land, the header names the data file beside it.
    await writeImage(path.join(dir, 'det.nhdr'), v, { compress: false });
    assert.deepEqual(fs.readdirSync(dir).sort(), ['det.nhdr', 'det.raw', 'out.nrrd']);
    assertSameVoxels((await readImage(path.join(dir, 'det.nhdr'))).data, v.data, 'nhdr');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('castVoxels rounds to integer types and refuses values that do not fit', () => {
  const f = new Float32Array([0.4, 1.6, 254.5, -0.4]);
  assert.deepEqual(Array.from(castVoxels(f, 'uint8')), [0, 2, 255, 0]);
  assert.throws(() => castVoxels(new Float32Array([256]), 'uint8'), /does not fit uint8/);
  assert.throws(() => castVoxels(new Float32Array([NaN]), 'int16'), /does not fit int16/);
  assert.ok(Number.isNaN(castVoxels(new Float64Array([NaN]), 'float32')[0]!));
});
