import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import type { Vec3, Volume } from '../../src/io/volume.js';
import { worldToVoxel } from '../../src/io/volume.js';
import { MisfmError } from '../../src/util/errors.js';
import { readImage } from '../../src/io/image/index.js';
import { gridForSpacing, resampleToReference, resampleToSpacing, zoom, type ResampleOptions } from '../../src/transforms/resample.js';
import { allAxisMaps, permuteFlip, permuteFlipGeometry } from '../../src/transforms/orientation.js';
import { geometryOf } from '../../src/transforms/grid.js';
import { liveTensors } from '../../src/engine/creation.js';
import { assertClose } from '../helpers.js';
import { at, CT01_LABELS, lcg, makeVolume, TILTED, world } from './helpers.js';

const BACKENDS: ResampleOptions['backend'][] = ['js', 'engine'];
const row = (vals: number[]): Volume => makeVolume((n) => new Float32Array(n), [vals.length, 1, 1], (i) => vals[i]!);

test('gridForSpacing keeps origin/direction and uses size = round(size*spacing/new)', () => {
  const g = { size: [10, 7, 3] as Vec3, spacing: [1, 1.5, 5] as Vec3, origin: [1, 2, 3] as Vec3, direction: TILTED };
  const t = gridForSpacing(g, [0.7, 2, 2]);
  assert.deepEqual(t.size, [14, 5, 8]); // 14.28 -> 14, 5.25 -> 5, 7.5 -> 8
  assert.deepEqual(t.spacing, [0.7, 2, 2]);
  assert.deepEqual(t.origin, g.origin);
  assert.deepEqual(t.direction, g.direction);
  assert.deepEqual(gridForSpacing(g, [100, 100, 100]).size, [1, 1, 1]);
  assert.throws(() => gridForSpacing(g, [1, 0, 1]), (e: unknown) => e instanceof MisfmError && /target spacing must be three positive numbers/.test(e.message));
});

test('1-D exact values: linear and nearest, up and down, border and constant outside', () => {
  const v = row([0, 10, 20, 30]);
  for (const backend of BACKENDS) {
    const up = resampleToSpacing(v, [0.5, 1, 1], { backend });
    assert.deepEqual(up.size, [8, 1, 1]);
    assert.ok(up.data instanceof Float32Array);
    assert.deepEqual(Array.from(up.data), [0, 5, 10, 15, 20, 25, 30, 30], `${backend} linear border`);
    const c = resampleToSpacing(v, [0.5, 1, 1], { backend, outside: -10 });
    assert.deepEqual(Array.from(c.data), [0, 5, 10, 15, 20, 25, 30, 10], `${backend} linear constant`);
    const nn = resampleToSpacing(v, [0.5, 1, 1], { backend, interpolation: 'nearest' });
    assert.deepEqual(Array.from(nn.data), [0, 10, 10, 20, 20, 30, 30, 30], `${backend} nearest (halves up)`);
    const nc = resampleToSpacing(v, [0.5, 1, 1], { backend, interpolation: 'nearest', outside: -7 });
    assert.deepEqual(Array.from(nc.data), [0, 10, 10, 20, 20, 30, 30, -7], `${backend} nearest constant`);
    const down = resampleToSpacing(v, [2, 1, 1], { backend });
    assert.deepEqual(Array.from(down.data), [0, 20]);
    const third = resampleToSpacing(row([0, 3, 6, 9, 12, 15, 18]), [0.75, 1, 1], { backend });
    assert.deepEqual(third.size, [9, 1, 1]); // 7 / 0.75 = 9.33
    assertClose(third.data, [0, 2.25, 4.5, 6.75, 9, 11.25, 13.5, 15.75, 18], 0, 1e-5, `${backend} 0.75`);
  }
});

test('trilinear is exact on a linear field; voxels sit at their world points; engine == JS', () => {
  const f = (p: Vec3): number => 3 + 0.5 * p[0] - 0.25 * p[1] + 0.125 * p[2];
  const src = makeVolume((n) => new Float32Array(n), [9, 7, 6], () => 0, { spacing: [1.2, 0.9, 2.5], origin: [5, -3, 10], direction: TILTED });
  for (let k = 0; k < 6; k++) for (let j = 0; j < 7; j++) for (let i = 0; i < 9; i++) src.data[i + 9 * (j + 7 * k)] = f(world(src, i, j, k));
  // A reference grid inside the source, shifted by a fraction of a voxel, same direction.
  const ref = { size: [11, 8, 9] as Vec3, spacing: [0.8, 0.7, 1.5] as Vec3, origin: world(src, 0.37, 0.8, 0.25), direction: TILTED };
  const outs = BACKENDS.map((backend) => resampleToReference(src, ref, { backend }));
  assert.deepEqual(geometryOf(outs[0]!), geometryOf(ref));
  let checked = 0;
  for (let k = 0; k < 9; k++) for (let j = 0; j < 8; j++) for (let i = 0; i < 11; i++) {
    const p = world(outs[0]!, i, j, k);
    const q = worldToVoxel(src, p);
    if (q.some((x, a) => x > src.size[a]! - 1)) continue; // beyond the last centre: border clamps
    checked++;
    assert.ok(Math.abs(at(outs[0]!, i, j, k) - f(p)) < 1e-4, `voxel ${i},${j},${k}: ${at(outs[0]!, i, j, k)} vs ${f(p)}`);
  }
  assert.ok(checked > 400, `checked ${checked}`);
  assertClose(outs[1]!.data, outs[0]!.data, 1e-6, 1e-5, 'engine vs js');
});

test('integer-factor resampling of labels is exactly invertible (nearest, both backends)', () => {
  const r = lcg(7);
  const lab = makeVolume((n) => new Uint8Array(n), [7, 5, 6], () => Math.floor(r() * 61), { spacing: [1.5, 0.8, 3], origin: [-20, 30, 5], direction: TILTED });
  for (const f of [[2, 3, 2], [4, 1, 3], [1, 1, 5]] as Vec3[]) {
    for (const backend of BACKENDS) {
      const fine = resampleToSpacing(lab, [1.5 / f[0], 0.8 / f[1], 3 / f[2]], { interpolation: 'nearest', backend });
      assert.deepEqual(fine.size, [7 * f[0], 5 * f[1], 6 * f[2]]);
      assert.ok(fine.data instanceof Uint8Array);
      const back = resampleToReference(fine, lab, { interpolation: 'nearest', backend });
      assert.deepEqual(back.data, lab.data, `factor ${f} ${backend}`);
      assert.deepEqual(geometryOf(back), geometryOf(lab));
    }
  }
});

test('a reference grid in another axis order goes through grid_sampler_3d and equals the exact re-indexing', () => {
  const r = lcg(3);
  const lab = makeVolume((n) => new Int16Array(n), [5, 4, 3], () => Math.floor(r() * 200) - 100, { spacing: [1, 2, 3], origin: [1, 2, 3], direction: TILTED });
  for (const m of allAxisMaps().filter((_, i) => i % 7 === 3)) {
    const ref = permuteFlipGeometry(lab, m);
    const expected = permuteFlip(lab, m);
    const nn = resampleToReference(lab, ref, { interpolation: 'nearest' });
    assert.ok(nn.data instanceof Int16Array);
    assert.deepEqual(Array.from(nn.data), Array.from(expected.data), JSON.stringify(m));
    const lin = resampleToReference(lab, ref);
    assertClose(lin.data, Float32Array.from(expected.data), 0, 2e-4, `linear ${JSON.stringify(m)}`);
  }
  // Rotated reference: values follow the world mapping of a linear field.
  const f = (p: Vec3): number => 1 + p[0] - 2 * p[1] + 0.5 * p[2];
  const src = makeVolume((n) => new Float32Array(n), [12, 12, 12], () => 0, { origin: [-6, -6, -6] });
  for (let k = 0; k < 12; k++) for (let j = 0; j < 12; j++) for (let i = 0; i < 12; i++) src.data[i + 12 * (j + 12 * k)] = f(world(src, i, j, k));
  // Centred in the source: origin = centre - D * (2.5, 2.5, 2.5).
  const d = TILTED;
  const centre = [-0.5, -0.5, -0.5];
  const origin = [0, 1, 2].map((r) => centre[r]! - 2.5 * (d[r * 3]! + d[r * 3 + 1]! + d[r * 3 + 2]!)) as Vec3;
  const rotRef = { size: [6, 6, 6] as Vec3, spacing: [1, 1, 1] as Vec3, origin, direction: TILTED };
  const out = resampleToReference(src, rotRef);
  for (let k = 0; k < 6; k++) for (let j = 0; j < 6; j++) for (let i = 0; i < 6; i++) {
    const got = at(out, i, j, k), want = f(world(out, i, j, k));
    assert.ok(Math.abs(got - want) < 1e-3, `rotated voxel ${i},${j},${k}: ${got} vs ${want}`);
  }
  const c = resampleToReference(src, { ...rotRef, origin: [100, 100, 100] }, { outside: -5 });
  assert.ok(Array.from(c.data).every((x) => x === -5), 'far outside gives the constant');
});

test('zoom follows scipy.ndimage.zoom (corners aligned) and keeps the geometry truthful', () => {
  for (const backend of BACKENDS) {
    const z = zoom(row([0, 10, 20]), [5, 1, 1], { backend });
    assert.deepEqual(Array.from(z.data), [0, 5, 10, 15, 20]);
    assert.deepEqual(z.spacing, [0.5, 1, 1]);
    const zn = zoom(row([0, 10, 20]), [5, 1, 1], { backend, interpolation: 'nearest' });
    assert.deepEqual(Array.from(zn.data), [0, 10, 10, 20, 20]);
    const d = zoom(row([0, 1, 2, 3, 4, 5, 6]), [3, 1, 1], { backend });
    assert.deepEqual(Array.from(d.data), [0, 3, 6]);
  }
  const v = makeVolume((n) => new Float32Array(n), [5, 4, 3], (i, j, k) => i + j + k, { spacing: [1, 2, 3], origin: [4, 5, 6], direction: TILTED });
  const z = zoom(v, [9, 7, 5]);
  // First and last voxel centres of each axis stay where they were.
  for (const [i, j, k, a, b, c] of [[0, 0, 0, 0, 0, 0], [8, 6, 4, 4, 3, 2]] as const) {
    const p = world(z, i, j, k), q = world(v, a, b, c);
    assert.ok(Math.hypot(p[0] - q[0], p[1] - q[1], p[2] - q[2]) < 1e-9);
  }
  assert.throws(() => zoom(v, [0, 1, 1]), (e: unknown) => e instanceof MisfmError && /output size must be three positive integers/.test(e.message));
});

test('real labels (CT 01): 2x finer in-plane and back is identical', { skip: !existsSync(CT01_LABELS) && 'no shared data' }, async () => {
  const lab = await readImage(CT01_LABELS);
  const fine = resampleToSpacing(lab, [lab.spacing[0] / 2, lab.spacing[1] / 2, lab.spacing[2]], { interpolation: 'nearest' });
  assert.deepEqual(fine.size, [lab.size[0] * 2, lab.size[1] * 2, lab.size[2]]);
  const back = resampleToReference(fine, lab, { interpolation: 'nearest' });
  assert.deepEqual(back.data, lab.data);
});

test('engine paths free every tensor they create', () => {
  const v = makeVolume((n) => new Uint8Array(n), [6, 5, 4], (i, j, k) => (i + j + k) % 4, { direction: TILTED });
  const before = liveTensors();
  resampleToSpacing(v, [0.5, 0.7, 2], { backend: 'engine' });
  resampleToSpacing(v, [0.5, 0.7, 2], { backend: 'engine', interpolation: 'nearest', outside: 0 });
  resampleToReference(v, { ...geometryOf(v), direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] }, { outside: 3 });
  assert.equal(liveTensors(), before);
});
