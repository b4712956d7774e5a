import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Vec3 } from '../../src/io/volume.js';
import { Rng } from '../../src/util/rng.js';
import { MisfmError } from '../../src/util/errors.js';
import { compose, T, type Sample } from '../../src/transforms/compose.js';
import { pasteBack, type Box } from '../../src/transforms/box.js';
import { unpad, type PadInfo } from '../../src/transforms/pad-crop.js';
import { undoReorient, orientationOf, type AxisMap } from '../../src/transforms/orientation.js';
import type { Geometry } from '../../src/transforms/grid.js';
import { at, makeVolume, RAS_DIR } from './helpers.js';

function sample(): Sample {
  const image = makeVolume((n) => new Int16Array(n), [24, 20, 9], (i, j, k) => {
    const body = i >= 4 && i < 20 && j >= 3 && j < 17;
    return body ? -100 + 10 * i + j + 50 * k : -1000;
  }, { spacing: [1, 1, 2.5], origin: [50, 60, -20], direction: RAS_DIR });
  const label = makeVolume((n) => new Uint8Array(n), [24, 20, 9], (i, j, k) => (i >= 8 && i < 11 && j >= 6 && j < 9 && k >= 2 && k < 4 ? 2 : 0), image);
  return { image, label };
}

const train = compose(
  T.reorient('LPS'),
  T.bodyCrop(),
  T.clipAndScale(),
  T.padToMinSize([16, 16, 12], { mode: 'reflect' }),
  T.randomCrop([12, 12, 8], { fgProb: 0.5 }),
  T.randomFlip(),
);

test('a pipeline is deterministic under a seed, records every step, and keeps image and label aligned', () => {
  const a = train.apply(sample(), new Rng(3));
  const b = train.apply(sample(), new Rng(3));
  assert.deepEqual(a, b);
  assert.deepEqual(a.trace!.map((t) => t.name), ['reorient', 'bodyCrop', 'clipAndScale', 'padToMinSize', 'randomCrop', 'randomFlip']);
  assert.deepEqual(a.image.size, [12, 12, 8]);
  assert.deepEqual(a.label!.size, [12, 12, 8]);
  assert.ok(a.image.data instanceof Float32Array && a.label!.data instanceof Uint8Array);
  assert.deepEqual(a.trace![1]!.params.box, { start: [4, 3, 0], end: [20, 17, 9] });
  const seen = new Set<string>();
  for (let s = 0; s < 20; s++) seen.add(JSON.stringify(train.apply(sample(), new Rng(s)).trace!.slice(4)));
  assert.ok(seen.size > 10, 'different seeds give different crops/flips');
  // Per-sample streams: sample i's result does not depend on the order samples are processed in.
  const base = new Rng(77);
  const forward = [0, 1, 2].map((i) => train.apply(sample(), base.fork(i)));
  const backward = [2, 1, 0].map((i) => train.apply(sample(), base.fork(i))).reverse();
  assert.deepEqual(forward, backward);
});

test('the trace maps a result on the patch back to the original grid', () => {
  const s = sample();
  const eval_ = compose(T.reorient('LPS'), T.padToMinSize([30, 24, 9]), T.centerCrop([20, 20, 9]));
  const out = eval_.apply(s, new Rng(0));
  assert.equal(orientationOf(out.image), 'LPS');
  // Treat the label patch as a prediction and undo the steps in reverse order.
  const [re, pad, crop] = out.trace!;
  const original = re!.params.original as Geometry;
  const p = pad!.params.pad as PadInfo;
  const paddedSize = [0, 1, 2].map((a) => original.size[a]! + p.before[a]! + p.after[a]!) as Vec3;
  assert.deepEqual(paddedSize, [30, 24, 9]);
  const uncropped = pasteBack(out.label!, crop!.params.box as Box, paddedSize, 0);
  const back = undoReorient(unpad(uncropped, p), { map: re!.params.map as AxisMap, original });
  // The centre crop keeps x 5..24 of the padded grid (original x 2..21), which holds every labelled voxel.
  assert.deepEqual(back.data, s.label!.data);
  assert.deepEqual(back.origin, s.label!.origin);
  assert.equal(at(back, 9, 7, 3), 2);
});

test('errors name the failing step', () => {
  const bad = compose(T.clipAndScale(), T.randomCrop([30, 4, 4]));
  assert.throws(() => bad.apply(sample(), new Rng(1)), (e: unknown) => e instanceof MisfmError && /^transform randomCrop: randomCropBox: crop size 30x4x4 is larger than the volume 24x20x9/.test(e.message));
  const mismatched: Sample = { image: sample().image, label: makeVolume((n) => new Uint8Array(n), [3, 3, 3], () => 0) };
  assert.throws(() => compose(T.randomFlip()).apply(mismatched, new Rng(1)), (e: unknown) => e instanceof MisfmError && e.code === 'GEOMETRY' && /transform randomFlip/.test(e.message));
});
