/**
 * The VISTA3D session (the interface `misfm serve` builds on): output on the image's grid,
 * independence from the image's stored orientation, clicks merged into a base only inside the
 * click windows, the feature cache used by a second click with results identical to an uncached
 * session, and one-line errors for bad clicks and classes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import type { Mat3, Volume } from '../../src/io/volume.js';
import { openVista3dSession, type Vista3dSession } from '../../src/infer/vista3d/session.js';
import { MisfmError } from '../../src/util/errors.js';
import { vistaDir, f32 } from '../models/vista3d-helpers.js';

const CKPT = path.join(vistaDir, 'state_dict.pt');
const ROI = [16, 24, 32] as const;

/** A CT-like volume (HU) from the fixture's random image, x-fastest, 1.5 mm. */
function ctVolume(direction: Mat3 = [1, 0, 0, 0, 1, 0, 0, 0, 1]): Volume {
  const src = f32('inferer/image'); // C-order [12,40,48] = (x, y, z), z fastest
  const [X, Y, Z] = [12, 40, 48];
  const data = new Float32Array(X * Y * Z);
  for (let x = 0; x < X; x++) for (let y = 0; y < Y; y++) for (let z = 0; z < Z; z++) data[x + X * (y + Y * z)] = src[(x * Y + y) * Z + z]! * 400;
  return { data, size: [X, Y, Z], spacing: [1.5, 1.5, 1.5], origin: [10, -20, 30], direction };
}

/** The same image stored with flipped x and y axes (RAS direction), voxels rearranged. */
function flippedXY(v: Volume): Volume {
  const [X, Y, Z] = v.size;
  const data = new Float32Array(v.data.length);
  for (let x = 0; x < X; x++) for (let y = 0; y < Y; y++) for (let z = 0; z < Z; z++) data[(X - 1 - x) + X * ((Y - 1 - y) + Y * z)] = v.data[x + X * (y + Y * z)]!;
  const origin: [number, number, number] = [v.origin[0] + (X - 1) * 1.5, v.origin[1] + (Y - 1) * 1.5, v.origin[2]];
  return { data, size: v.size, spacing: v.spacing, origin, direction: [-1, 0, 0, 0, -1, 0, 0, 0, 1] };
}

function sameGrid(a: Volume, b: Volume): void {
  assert.deepEqual([a.size, a.spacing, a.origin, a.direction], [b.size, b.spacing, b.origin, b.direction]);
}

test('automatic segmentation: label map on the image grid, class-table values, same result whatever the stored orientation', async () => {
  const img = ctVolume();
  const s = await openVista3dSession(CKPT, img, { roi: ROI });
  const f = await openVista3dSession(CKPT, flippedXY(img), { roi: ROI });
  try {
    assert.equal(s.classes.get(1), 'liver');
    let calls = 0;
    const a = await s.autoSegment(['liver', 'Spleen', 57], () => { calls++; });
    assert.ok(calls > 0, 'progress reported');
    sameGrid(a, img);
    const found = new Set(a.data);
    assert.ok([...found].every((v) => [0, 1, 3, 57].includes(v)), `values ${[...found]}`);
    assert.ok(found.size > 1, 'the random model labels something');
    const b = await f.autoSegment([1, 3, 57]);
    const back = flippedXY({ ...b, data: Float32Array.from(b.data) } as Volume);
    assert.deepEqual(Array.from(back.data), Array.from(a.data), 'orientation-independent');
  } finally { s.dispose(); f.dispose(); }
});

test('clicks: merged into the base only inside the click windows; the second click in a window uses the cache; identical without a cache', async () => {
  const img = ctVolume();
  const s = await openVista3dSession(CKPT, img, { roi: ROI });
  const plain = await openVista3dSession(CKPT, img, { roi: ROI, cacheBytes: 0 });
  try {
    const base = await s.autoSegment([1, 3]);
    const c1 = [{ label: 3, positive: true, ijk: [6, 10, 40] as [number, number, number] }];
    const r1 = await s.click(c1, base);
    // The click window is one of the automatic pass's windows: served from the cache.
    assert.equal(r1.windowsComputed + r1.cacheHits, 1);
    sameGrid(r1.labels, img);
    // Outside the click window (z < 16 here: the window spans z 16..47) nothing changes.
    for (let z = 0; z < 16; z++) for (let y = 0; y < 40; y++) for (let x = 0; x < 12; x++) {
      const i = x + 12 * (y + 40 * z);
      if (r1.labels.data[i] !== base.data[i]) assert.fail(`voxel (${x},${y},${z}) outside the window changed`);
    }
    const c2 = [...c1, { label: 3, positive: false, ijk: [7, 8, 38] as [number, number, number] }];
    const r2 = await s.click(c2, base);
    assert.equal(r2.windowsComputed, 0, 'no encoder run for clicks in a computed window');
    assert.ok(r2.cacheHits >= 1);
    const q2 = await plain.click(c2, base);
    assert.equal(q2.cacheHits, 0);
    assert.ok(q2.windowsComputed >= 1);
    assert.deepEqual(Array.from(r2.labels.data), Array.from(q2.labels.data), 'same labels with and without the cache');
    const empty = await s.click([{ label: 200, positive: true, ijk: [3, 30, 10] }], null);
    assert.ok([...new Set(empty.labels.data)].every((v) => v === 0 || v === 200), 'zero-shot label, from an empty base');
  } finally { s.dispose(); plain.dispose(); }
});

test('bad requests give one clear line', async () => {
  const s: Vista3dSession = await openVista3dSession(CKPT, ctVolume(), { roi: ROI });
  try {
    await assert.rejects(s.autoSegment(['livr']), (e: unknown) => e instanceof MisfmError && /unknown class 'livr' \(did you mean 'liver'\?\)/.test(e.message));
    await assert.rejects(s.autoSegment(['rectum']), (e: unknown) => e instanceof MisfmError && /not segmented automatically/.test(e.message));
    await assert.rejects(s.click([{ label: 1, positive: true, ijk: [12, 3, 3] }], null), (e: unknown) => e instanceof MisfmError && /click 1 \(liver\) at \(12,3,3\) is outside the image \(size 12x40x48\)/.test(e.message));
    await assert.rejects(s.click([{ label: 0, positive: true, ijk: [1, 3, 3] }], null), /label 0 is not a class value/);
  } finally { s.dispose(); }
});
