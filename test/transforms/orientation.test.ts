import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import type { Mat3, Vec3 } from '../../src/io/volume.js';
import { MisfmError } from '../../src/util/errors.js';
import { orientationCode } from '../../src/io/image/geometry.js';
import { readImage } from '../../src/io/image/index.js';
import {
  allAxisMaps, axisMapTo, invertAxisMap, orientationOf, parseOrientation, permuteFlip, reorient, undoReorient, DEFAULT_ORIENTATION,
} from '../../src/transforms/orientation.js';
import { assertSamePoint, at, CT01_LABELS, makeVolume, RAS_DIR, TILTED, world } from './helpers.js';

/** The 48 signed permutation matrices. */
function signedPermutations(): Mat3[] {
  const out: Mat3[] = [];
  for (const m of allAxisMaps()) {
    const d = [0, 0, 0, 0, 0, 0, 0, 0, 0] as Mat3;
    for (let c = 0; c < 3; c++) d[m.perm[c]! * 3 + c] = m.flip[c] ? -1 : 1;
    out.push(d);
  }
  return out;
}

const ALL_CODES = (() => {
  const codes: string[] = [];
  for (const a of 'LR') for (const b of 'PA') for (const c of 'SI') for (const p of [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]]) {
    const l = [a, b, c];
    codes.push(p.map((i) => l[i]).join(''));
  }
  return codes;
})();

test('orientation codes: identity is LPS, NIfTI-RAS is RAS, agree with io/image for all 48 axis-aligned matrices', () => {
  assert.equal(orientationOf([1, 0, 0, 0, 1, 0, 0, 0, 1]), 'LPS');
  assert.equal(orientationOf(RAS_DIR), 'RAS');
  assert.equal(orientationOf([-1, 0, 0, 0, 1, 0, 0, 0, 1]), 'RPS');
  // Coronal slices: voxel y runs towards S (column 1 = (0,0,1)), voxel z towards A (column 2 = (0,-1,0)).
  assert.equal(orientationOf([1, 0, 0, 0, 0, -1, 0, 1, 0]), 'LSA');
  assert.equal(DEFAULT_ORIENTATION, 'LPS');
  const seen = new Set<string>();
  for (const d of signedPermutations()) {
    const code = orientationOf(d);
    assert.equal(code, orientationCode({ direction: d }));
    seen.add(code);
  }
  assert.equal(seen.size, 48);
  assert.deepEqual([...seen].sort(), [...ALL_CODES].sort());
  // Tilted axes snap to the nearest letters; at a 45° tie the result still names three distinct world axes.
  assert.equal(orientationOf(TILTED), 'PRI');
  const c = Math.SQRT1_2;
  const diag: Mat3 = [c, -c, 0, c, c, 0, 0, 0, 1];
  assert.doesNotThrow(() => parseOrientation(orientationOf(diag)));
  assert.equal(orientationOf(diag)[2], 'S');
});

test('parseOrientation rejects bad codes with a clear message', () => {
  for (const bad of ['LPX', 'LLS', 'LP', 'LPSS', '']) {
    assert.throws(() => parseOrientation(bad), (e: unknown) => e instanceof MisfmError && e.code === 'ARGUMENT' && e.message.includes(`'${bad}'`));
  }
  assert.deepEqual(parseOrientation('ras'), { world: [0, 1, 2], sign: [-1, -1, 1] });
  assert.deepEqual(parseOrientation('SAL'), { world: [2, 1, 0], sign: [1, -1, 1] });
});

test('reorient RAS -> LPS flips x and y: exact voxels, identity direction, same world points', () => {
  const v = makeVolume((n) => new Uint8Array(n), [3, 2, 2], (i, j, k) => 1 + i + 3 * j + 6 * k, { spacing: [0.5, 2, 3], origin: [10, 20, 30], direction: RAS_DIR });
  const r = reorient(v);
  assert.deepEqual(r.map, { perm: [0, 1, 2], flip: [true, true, false] });
  const o = r.volume;
  assert.deepEqual(o.direction, [1, 0, 0, 0, 1, 0, 0, 0, 1]);
  assert.deepEqual(o.size, [3, 2, 2]);
  assert.deepEqual(o.spacing, [0.5, 2, 3]);
  // Old voxel (2,1,0) is the new origin: world (10 - 1, 20 - 2, 30).
  assert.deepEqual(o.origin, [9, 18, 30]);
  // k=0 slice: old rows [1,2,3],[4,5,6] -> reversed both ways.
  assert.deepEqual(Array.from(o.data), [6, 5, 4, 3, 2, 1, 12, 11, 10, 9, 8, 7]);
  assert.ok(o.data instanceof Uint8Array);
  for (let k = 0; k < 2; k++) for (let j = 0; j < 2; j++) for (let i = 0; i < 3; i++) {
    assertSamePoint(world(o, i, j, k), world(v, 2 - i, 1 - j, k), 1e-12, `voxel ${i},${j},${k}`);
  }
  const back = undoReorient(o, r);
  assert.deepEqual(back, v);
  assert.equal(orientationOf(reorient(v, 'ras').volume), 'RAS');
});

test('all 48 axis maps: inverse restores voxels exactly and every voxel keeps its world position', () => {
  const v = makeVolume((n) => new Int16Array(n), [4, 3, 5], (i, j, k) => i + 10 * j + 100 * k - 222, { spacing: [0.8, 1.3, 2.1], origin: [-3, 4.5, 7], direction: TILTED });
  for (const m of allAxisMaps()) {
    const p = permuteFlip(v, m);
    for (let c = 0; c < 3; c++) assert.equal(p.size[c], v.size[m.perm[c]!]);
    // Voxel-level check: new (i,j,k) holds old value at the mapped index, at the same world point.
    for (let k = 0; k < p.size[2]; k++) for (let j = 0; j < p.size[1]; j++) for (let i = 0; i < p.size[0]; i++) {
      const idx = [i, j, k];
      const old = [0, 0, 0] as Vec3;
      for (let c = 0; c < 3; c++) old[m.perm[c]!] = m.flip[c] ? v.size[m.perm[c]!]! - 1 - idx[c]! : idx[c]!;
      assert.equal(at(p, i, j, k), at(v, ...old));
      if ((i + j + k) % 5 === 0) assertSamePoint(world(p, i, j, k), world(v, ...old), 1e-9, `map ${JSON.stringify(m)}`);
    }
    const back = permuteFlip(p, invertAxisMap(m));
    assert.deepEqual(Array.from(back.data), Array.from(v.data));
    assert.deepEqual(back.size, v.size);
    back.origin.forEach((x, i) => assert.ok(Math.abs(x - v.origin[i]!) < 1e-9));
  }
});

test('reorient to each of the 48 codes and undo: labels identical, geometry exactly the original', () => {
  const v = makeVolume((n) => new Uint8Array(n), [5, 4, 3], (i, j, k) => (7 * i + 3 * j + 11 * k) % 61, { spacing: [1, 2, 3], origin: [100.25, -50.5, 12], direction: TILTED });
  for (const code of ALL_CODES) {
    const r = reorient(v, code);
    assert.equal(orientationOf(r.volume), code);
    const back = undoReorient(r.volume, r);
    assert.deepEqual(back, v, code);
    assert.deepEqual(axisMapTo(r.volume.direction, orientationOf(v)), invertAxisMap(r.map));
  }
});

test('undoReorient refuses a volume that is not on the reoriented grid', () => {
  const v = makeVolume((n) => new Uint8Array(n), [3, 2, 2], () => 1, { direction: RAS_DIR });
  const r = reorient(v, 'LPS');
  const shifted = { ...r.volume, origin: [r.volume.origin[0] + 1, r.volume.origin[1], r.volume.origin[2]] as Vec3 };
  assert.throws(() => undoReorient(shifted, r), (e: unknown) => e instanceof MisfmError && e.code === 'GEOMETRY' && /not on the reoriented grid/.test(e.message));
  assert.throws(() => permuteFlip(v, { perm: [0, 0, 2], flip: [false, false, false] }), (e: unknown) => e instanceof MisfmError && /permutation of 0,1,2/.test(e.message));
});

test('real label map (CT 01, RAS): reorient to LPS and back is identical', { skip: !existsSync(CT01_LABELS) && 'no shared data' }, async () => {
  const lab = await readImage(CT01_LABELS);
  assert.equal(orientationOf(lab), 'RAS');
  const r = reorient(lab, 'LPS');
  assert.equal(orientationOf(r.volume), 'LPS');
  // Same world point holds the same class: spot-check a labelled voxel.
  const idx = lab.data.findIndex((x) => x === 5);
  const i = idx % lab.size[0], j = Math.floor(idx / lab.size[0]) % lab.size[1], k = Math.floor(idx / (lab.size[0] * lab.size[1]));
  assert.equal(at(r.volume, lab.size[0] - 1 - i, lab.size[1] - 1 - j, k), 5);
  assertSamePoint(world(r.volume, lab.size[0] - 1 - i, lab.size[1] - 1 - j, k), world(lab, i, j, k), 1e-6, 'liver voxel');
  const back = undoReorient(r.volume, r);
  assert.deepEqual(back.data, lab.data);
  assert.deepEqual([back.size, back.spacing, back.origin, back.direction], [lab.size, lab.spacing, lab.origin, lab.direction]);
});
