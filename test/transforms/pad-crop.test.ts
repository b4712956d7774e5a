import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Vec3 } from '../../src/io/volume.js';
import { Rng } from '../../src/util/rng.js';
import { MisfmError } from '../../src/util/errors.js';
import { extractBox, pasteBack, cropToBox, boxSize } from '../../src/transforms/box.js';
import {
  centerCrop, centerCropBox, classLocations, padForMinSize, padToMinSize, randomCrop, randomCropBox, unpad,
} from '../../src/transforms/pad-crop.js';
import { at, assertSamePoint, makeVolume, TILTED, world } from './helpers.js';

const row = (vals: number[]) => makeVolume((n) => new Int16Array(n), [vals.length, 1, 1], (i) => vals[i]!);

test('extractBox pads like numpy: reflect (also wider than the volume), edge, constant', () => {
  const v = row([1, 2, 3]);
  // numpy.pad([1,2,3], 5, 'reflect')
  assert.deepEqual(Array.from(extractBox(v, { start: [-5, 0, 0], end: [8, 1, 1] }, { mode: 'reflect' }).data), [2, 1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3, 2]);
  // numpy.pad([1,2,3], (2,4), 'edge')
  assert.deepEqual(Array.from(extractBox(v, { start: [-2, 0, 0], end: [7, 1, 1] }, { mode: 'edge' }).data), [1, 1, 1, 2, 3, 3, 3, 3, 3]);
  assert.deepEqual(Array.from(extractBox(v, { start: [-1, 0, 0], end: [5, 1, 1] }, { value: -9 }).data), [-9, 1, 2, 3, -9, -9]);
  assert.deepEqual(Array.from(extractBox(row([7]), { start: [-2, 0, 0], end: [3, 1, 1] }, { mode: 'reflect' }).data), [7, 7, 7, 7, 7]);
  assert.throws(() => extractBox(makeVolume((n) => new Uint8Array(n), [2, 1, 1], () => 0), { start: [-1, 0, 0], end: [2, 1, 1] }, { value: -1 }),
    (e: unknown) => e instanceof MisfmError && /fill value -1 cannot be stored in Uint8Array/.test(e.message));
  assert.throws(() => extractBox(v, { start: [2, 0, 0], end: [2, 1, 1] }), (e: unknown) => e instanceof MisfmError && /integer start < end/.test(e.message));
});

test('padToMinSize: symmetric (floor on the low side), 3-D reflect values, origin keeps voxels in place, unpad undoes', () => {
  const v = makeVolume((n) => new Float32Array(n), [3, 2, 1], (i, j) => 10 * j + i, { spacing: [0.5, 2, 3], origin: [1, 2, 3], direction: TILTED });
  assert.deepEqual(padForMinSize([3, 2, 1], [6, 2, 4]), { before: [1, 0, 1], after: [2, 0, 2] });
  const { volume: p, pad, box } = padToMinSize(v, [6, 4, 1], { mode: 'reflect' });
  assert.deepEqual(pad, { before: [1, 1, 0], after: [2, 1, 0] });
  assert.deepEqual(box, { start: [-1, -1, 0], end: [5, 3, 1] });
  assert.deepEqual(p.size, [6, 4, 1]);
  // Rows (y = -1..2 -> reflect 1,0,1,0) of x = -1..4 -> reflect 1,0,1,2,1,0.
  const xs = [1, 0, 1, 2, 1, 0], ys = [1, 0, 1, 0];
  assert.deepEqual(Array.from(p.data), ys.flatMap((y) => xs.map((x) => 10 * y + x)));
  assertSamePoint(world(p, 1, 1, 0), world(v, 0, 0, 0), 1e-12, 'padded origin');
  assert.deepEqual(unpad(p, pad), { ...v, origin: unpad(p, pad).origin });
  unpad(p, pad).origin.forEach((x, i) => assert.ok(Math.abs(x - v.origin[i]!) < 1e-12));
  // Constant pad default 0; no-op when already large enough.
  const c = padToMinSize(v, [4, 2, 1]);
  assert.deepEqual(Array.from(c.volume.data), [0, 1, 2, 0, 10, 11, 12, 0]);
  assert.deepEqual(padToMinSize(v, [2, 2, 1]).volume.data, v.data);
  assert.throws(() => unpad(v, { before: [2, 0, 0], after: [1, 0, 0] }), (e: unknown) => e instanceof MisfmError && /leaves nothing/.test(e.message));
});

test('centerCrop and pasteBack (with geometry or only a size)', () => {
  const v = makeVolume((n) => new Uint8Array(n), [7, 6, 5], (i, j, k) => 1 + i + 7 * j + 42 * k - 42 * 5 * Math.floor(k / 5), { spacing: [1, 2, 3], origin: [-5, 5, 0], direction: TILTED });
  assert.deepEqual(centerCropBox([7, 6, 5], [4, 4, 5]), { start: [1, 1, 0], end: [5, 5, 5] });
  const { volume, box } = centerCrop(v, [4, 4, 5]);
  assert.equal(at(volume, 0, 0, 0), at(v, 1, 1, 0));
  assert.equal(at(volume, 3, 3, 4), at(v, 4, 4, 4));
  const a = pasteBack(volume, box, v, 0);
  const b = pasteBack(volume, box, v.size as Vec3, 0);
  assert.deepEqual(a.data, b.data);
  b.origin.forEach((x, i) => assert.ok(Math.abs(x - v.origin[i]!) < 1e-9));
  for (let k = 0; k < 5; k++) for (let j = 0; j < 6; j++) for (let i = 0; i < 7; i++) {
    assert.equal(at(a, i, j, k), i >= 1 && i < 5 && j >= 1 && j < 5 ? at(v, i, j, k) : 0);
  }
  // A padded box pastes back only its inside part.
  const padded = extractBox(v, { start: [-2, -1, 0], end: [9, 6, 5] }, { mode: 'reflect' });
  assert.deepEqual(pasteBack(padded, { start: [-2, -1, 0], end: [9, 6, 5] }, v).data, v.data);
  assert.throws(() => centerCrop(v, [8, 1, 1]), (e: unknown) => e instanceof MisfmError && /crop size 8x1x1 is larger than the volume 7x6x5/.test(e.message));
  assert.throws(() => pasteBack(volume, { start: [0, 0, 0], end: [3, 3, 3] }, v), (e: unknown) => e instanceof MisfmError && /box size 3x3x3 differs/.test(e.message));
  assert.throws(() => cropToBox(v, { start: [0, 0, 0], end: [8, 1, 1] }), (e: unknown) => e instanceof MisfmError && /not inside/.test(e.message));
});

test('random crops: uniform starts cover [0, n-m], same box for image and label, deterministic under a seed', () => {
  const img = makeVolume((n) => new Float32Array(n), [10, 8, 6], (i, j, k) => i + 100 * j + 10000 * k);
  const lab = makeVolume((n) => new Uint8Array(n), [10, 8, 6], (i, j, k) => (i + j + k) % 3);
  const rng = new Rng(42);
  const starts = [new Set<number>(), new Set<number>(), new Set<number>()];
  for (let t = 0; t < 300; t++) {
    const r = randomCrop(img, lab, [4, 8, 3], rng);
    assert.deepEqual(boxSize(r.choice.box), [4, 8, 3]);
    r.choice.box.start.forEach((s, a) => starts[a]!.add(s));
    const [x, y, z] = r.choice.box.start;
    assert.equal(at(r.image, 0, 0, 0), x + 100 * y + 10000 * z);
    assert.equal(at(r.label!, 1, 2, 1), (x + 1 + y + 2 + z + 1) % 3);
  }
  assert.deepEqual([...starts[0]!].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6]);
  assert.deepEqual([...starts[1]!], [0]);
  assert.deepEqual([...starts[2]!].sort(), [0, 1, 2, 3]);
  const a = randomCrop(img, lab, [4, 4, 4], new Rng(5), { fgProb: 0.5 });
  const b = randomCrop(img, lab, [4, 4, 4], new Rng(5), { fgProb: 0.5 });
  assert.deepEqual(a, b);
  assert.throws(() => randomCropBox([4, 4, 4], [2, 2, 2], rng, { fgProb: 0.5 }), (e: unknown) => e instanceof MisfmError && /needs foreground/.test(e.message));
  assert.throws(() => randomCropBox([4, 4, 4], [2, 2, 2], rng, { fgProb: 1.5 }), (e: unknown) => e instanceof MisfmError && /fgProb must be in \[0, 1\]/.test(e.message));
});

test('foreground oversampling hits foreground at the requested rate (binomial bounds)', () => {
  // 40^3 volume, one 2x2x2 class-1 blob near a corner and one voxel of class 2 elsewhere; 8^3 crops.
  const size: Vec3 = [40, 40, 40];
  const lab = makeVolume((n) => new Uint8Array(n), size, (i, j, k) => (i >= 2 && i < 4 && j >= 30 && j < 32 && k >= 5 && k < 7 ? 1 : i === 25 && j === 25 && k === 37 ? 2 : 0));
  const locs = classLocations(lab);
  assert.deepEqual([...locs.keys()], [1, 2]);
  assert.equal(locs.get(1)!.length, 8);
  const contains = (b: { start: Vec3; end: Vec3 }): boolean => {
    for (let k = b.start[2]; k < b.end[2]; k++) for (let j = b.start[1]; j < b.end[1]; j++) for (let i = b.start[0]; i < b.end[0]; i++) if (at(lab, i, j, k) !== 0) return true;
    return false;
  };
  // Exact probability that a uniform crop contains foreground, by enumerating all starts.
  let hit = 0, all = 0;
  for (let z = 0; z <= 32; z++) for (let y = 0; y <= 32; y++) for (let x = 0; x <= 32; x++) { all++; if (contains({ start: [x, y, z], end: [x + 8, y + 8, z + 8] })) hit++; }
  const q = hit / all;
  for (const p of [0, 0.33, 1]) {
    const rng = new Rng(1000 + Math.round(p * 100));
    const N = 1500;
    let fgCrops = 0, withFg = 0;
    const classes = new Map<number, number>();
    for (let t = 0; t < N; t++) {
      const c = randomCropBox(size, [8, 8, 8], rng, { fgProb: p, foreground: locs });
      if (c.foreground) {
        fgCrops++;
        classes.set(c.cls!, (classes.get(c.cls!) ?? 0) + 1);
        assert.ok(contains(c.box), 'a foreground crop contains its class');
        assert.ok(c.box.start.every((s, a) => s >= 0 && c.box.end[a]! <= 40), 'clamped in bounds');
      }
      if (contains(c.box)) withFg++;
    }
    const expect = p + (1 - p) * q;
    const sd = Math.sqrt(N * expect * (1 - expect));
    assert.ok(Math.abs(withFg - N * expect) <= 5 * sd + 1e-9, `p=${p}: ${withFg}/${N} crops contain foreground, expected ${(N * expect).toFixed(1)} ± ${(5 * sd).toFixed(1)}`);
    const sdF = Math.sqrt(N * p * (1 - p));
    assert.ok(Math.abs(fgCrops - N * p) <= 5 * sdF + 1e-9, `p=${p}: ${fgCrops} forced crops`);
    if (p === 1) {
      // Classes are chosen uniformly, not by voxel count: the single class-2 voxel gets half.
      assert.ok(Math.abs(classes.get(2)! - N / 2) <= 5 * Math.sqrt(N / 4), `class 2 chosen ${classes.get(2)} times`);
    }
  }
  // With no foreground present the crop is uniform.
  const empty = classLocations(makeVolume((n) => new Uint8Array(n), [5, 5, 5], () => 0));
  assert.equal(randomCropBox([5, 5, 5], [2, 2, 2], new Rng(1), { fgProb: 1, foreground: empty }).foreground, false);
});

test('classLocations subsamples evenly and honours ignore', () => {
  const lab = makeVolume((n) => new Uint8Array(n), [100, 1, 1], (i) => (i < 90 ? 1 : 3));
  const l = classLocations(lab, { maxPerClass: 10 });
  assert.deepEqual(Array.from(l.get(1)!), [0, 9, 18, 27, 36, 45, 54, 63, 72, 81]);
  assert.deepEqual(Array.from(l.get(3)!), [90, 91, 92, 93, 94, 95, 96, 97, 98, 99]);
  assert.deepEqual([...classLocations(lab, { ignore: [0, 1] }).keys()], [3]);
});
