import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Volume } from '../../src/io/volume.js';
import { Rng } from '../../src/util/rng.js';
import { MisfmError } from '../../src/util/errors.js';
import { flipAxes, randomFlip, randomResizedCrop, type AxisFlags } from '../../src/transforms/spatial-aug.js';
import { cropToBox } from '../../src/transforms/box.js';
import { zoom } from '../../src/transforms/resample.js';
import { at, assertSamePoint, makeVolume, TILTED, world } from './helpers.js';

const SIZE: [number, number, number] = [5, 4, 3];
const img = makeVolume((n) => new Float32Array(n), SIZE, (i, j, k) => i + 10 * j + 100 * k, { spacing: [0.5, 1, 2], origin: [3, -4, 5], direction: TILTED });
const lab = makeVolume((n) => new Uint8Array(n), SIZE, (i, j, k) => (i + 2 * j + 3 * k) % 5);

/** Check out(i,j,k) == in(flipped index) for every voxel, and that world points follow. */
function checkFlip(out: Volume, src: Volume, f: AxisFlags, geometry: boolean): void {
  for (let k = 0; k < SIZE[2]; k++) for (let j = 0; j < SIZE[1]; j++) for (let i = 0; i < SIZE[0]; i++) {
    const s: [number, number, number] = [f[0] ? SIZE[0] - 1 - i : i, f[1] ? SIZE[1] - 1 - j : j, f[2] ? SIZE[2] - 1 - k : k];
    assert.equal(at(out, i, j, k), at(src, ...s), `flip ${f} voxel ${i},${j},${k}`);
    if (geometry) assertSamePoint(world(out, i, j, k), world(src, ...s), 1e-9, 'flipped voxel keeps its world point');
  }
}

test('flipAxes flips each axis exactly (x, y and z, the depth axis PyMIC >= 2024-09 never flips)', () => {
  for (const f of [[true, false, false], [false, true, false], [false, false, true], [true, true, true]] as AxisFlags[]) {
    const out = flipAxes(img, f);
    checkFlip(out, img, f, true);
    assert.deepEqual(flipAxes(out, f).data, img.data, 'flipping twice restores');
  }
  // Depth flip, spelled out: slice k=0 now holds the old k=2 values.
  const z = flipAxes(img, [false, false, true]);
  assert.equal(at(z, 0, 0, 0), 200);
  assert.equal(at(z, 4, 3, 2), 34);
});

test('randomFlip: same flips for image and label, each axis ~p, deterministic under a seed', () => {
  const rng = new Rng(31);
  const counts = [0, 0, 0];
  const N = 600;
  for (let t = 0; t < N; t++) {
    const r = randomFlip(img, lab, rng);
    r.flipped.forEach((f, a) => { if (f) counts[a]!++; });
    checkFlip(r.image, img, r.flipped, false);
    checkFlip(r.label!, lab, r.flipped, false);
    assert.ok(r.label!.data instanceof Uint8Array);
  }
  // Binomial(600, 0.5): sd 12.2, 5 sd.
  for (let a = 0; a < 3; a++) assert.ok(Math.abs(counts[a]! - 300) < 62, `axis ${a} flipped ${counts[a]} of ${N}`);
  const a = randomFlip(img, lab, new Rng(8)), b = randomFlip(img, lab, new Rng(8));
  assert.deepEqual(a, b);
  // Draw order x, y, z: the flags are the first three uniforms < p.
  const g = new Rng(99);
  const expected = [g.uniform() < 0.3, g.uniform() < 0.3, g.uniform() < 0.3];
  assert.deepEqual(randomFlip(img, undefined, new Rng(99), { p: 0.3 }).flipped, expected);
  // Disabled axes never flip and draw nothing.
  const only = randomFlip(img, undefined, new Rng(99), { p: 1, axes: [false, false, true] });
  assert.deepEqual(only.flipped, [false, false, true]);
  const none = randomFlip(img, lab, new Rng(1), { p: 0 });
  assert.deepEqual(none.image.data, img.data);
  assert.notEqual(none.image.data, img.data, 'a copy, not the input array');
  assert.throws(() => randomFlip(img, lab, new Rng(1), { p: 2 }), (e: unknown) => e instanceof MisfmError && /p must be in \[0, 1\]/.test(e.message));
  const wrong = makeVolume((n) => new Uint8Array(n), [5, 4, 2], () => 0);
  assert.throws(() => randomFlip(img, wrong, new Rng(1)), (e: unknown) => e instanceof MisfmError && e.code === 'GEOMETRY' && /label size 5x4x2 differs from image size 5x4x3/.test(e.message));
});

test('randomResizedCrop: PyMIC draws (scales then starts), crop then zoom; labels stay labels', () => {
  const big = makeVolume((n) => new Float32Array(n), [20, 16, 12], (i, j, k) => i + 2 * j + 3 * k);
  const bigLab = makeVolume((n) => new Uint8Array(n), [20, 16, 12], (i, j) => (i < 10 ? 1 : 4) + (j < 8 ? 0 : 2));
  const r = randomResizedCrop(big, bigLab, [8, 8, 6], new Rng(17));
  assert.deepEqual(r.image.size, [8, 8, 6]);
  assert.deepEqual(r.label!.size, [8, 8, 6]);
  // Replay: three uniforms in [0.7, 1.5), crop = min(trunc(out*scale), n), three starts.
  const g = new Rng(17);
  const scale = [g.uniform(0.7, 1.5), g.uniform(0.7, 1.5), g.uniform(0.7, 1.5)];
  const crop = [8, 8, 6].map((o, a) => Math.min(Math.trunc(o * scale[a]!), [20, 16, 12][a]!));
  const start = crop.map((c, a) => g.randint(0, [20, 16, 12][a]! - c));
  assert.deepEqual(r.choice.scale, scale);
  assert.deepEqual(r.choice.box, { start, end: start.map((s, a) => s + crop[a]!) });
  const expected = zoom(cropToBox(big, r.choice.box), [8, 8, 6]);
  assert.deepEqual(r.image.data, expected.data);
  // A linear field stays linear under crop + linear zoom: corners hold the crop's corner values.
  assert.ok(Math.abs(at(r.image, 0, 0, 0) - (start[0]! + 2 * start[1]! + 3 * start[2]!)) < 1e-4);
  const e = [start[0]! + crop[0]! - 1, start[1]! + crop[1]! - 1, start[2]! + crop[2]! - 1];
  assert.ok(Math.abs(at(r.image, 7, 7, 5) - (e[0]! + 2 * e[1]! + 3 * e[2]!)) < 1e-4);
  assert.ok(r.label!.data instanceof Uint8Array);
  assert.ok(Array.from(r.label!.data).every((x) => [1, 3, 4, 6].includes(x)), 'nearest zoom invents no classes');
  // Scale 1 everywhere: a plain random crop.
  const one = randomResizedCrop(big, bigLab, [8, 8, 6], new Rng(3), { scaleLower: [1, 1, 1], scaleUpper: [1, 1, 1] });
  assert.deepEqual(one.image.data, cropToBox(big, one.choice.box).data);
  assert.deepEqual(one.label!.data, cropToBox(bigLab, one.choice.box).data);
  assert.deepEqual(randomResizedCrop(big, bigLab, [8, 8, 6], new Rng(17)), r);
  // Larger than the input on an axis: the whole axis is used and zoomed up.
  const up = randomResizedCrop(big, undefined, [30, 8, 6], new Rng(4));
  assert.equal(up.choice.box.end[0] - up.choice.box.start[0], 20);
  assert.throws(() => randomResizedCrop(big, undefined, [8, 8, 6], new Rng(1), { scaleLower: [1, 1, 1], scaleUpper: [0.5, 1, 1] }),
    (err: unknown) => err instanceof MisfmError && /scaleLower <= scaleUpper/.test(err.message));
});
