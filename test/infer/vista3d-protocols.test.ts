/**
 * The VISTA3D evaluation protocols of experiments/vista3d-real.sh on a tiny random network: Dice
 * values in range and consistent with the logits, the corrective click from the larger error
 * region (positive on misses, negative on false alarms, never a voxel clicked before), and the
 * zero-shot curve's length.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { manualSeed } from '../../src/engine/creation.js';
import { VISTA3D } from '../../src/models/vista3d/model.js';
import { correctiveClick, diceOf, padVolumeToWindow, windowProtocols, zeroShotClicks } from '../../src/infer/vista3d/protocols.js';

const at = (x: number, y: number, z: number, s = 12): number => (x * s + y) * s + z;

test('corrective click: the larger error region decides the sign; clicked voxels are excluded; Dice of logits', () => {
  const sh = [12, 12, 12] as const;
  const lab = new Uint8Array(12 ** 3), pred = new Float32Array(12 ** 3).fill(-1);
  for (let x = 2; x < 8; x++) for (let y = 2; y < 8; y++) for (let z = 2; z < 8; z++) lab[at(x, y, z)] = 5;
  // Predicted: a third of the object (x 2..3): misses dominate -> a positive click inside the miss.
  for (let x = 2; x < 4; x++) for (let y = 2; y < 8; y++) for (let z = 2; z < 8; z++) pred[at(x, y, z)] = 1;
  const c = correctiveClick(pred, 0, lab, 5, sh)!;
  assert.equal(c.positive, true);
  assert.equal(lab[at(c.coord[0]!, c.coord[1]!, c.coord[2]!)], 5);
  assert.ok(pred[at(c.coord[0]!, c.coord[1]!, c.coord[2]!)]! < 0);
  const again = correctiveClick(pred, 0, lab, 5, sh, [c.coord])!;
  assert.notDeepEqual(again.coord, c.coord, 'a voxel clicked before is not clicked again');
  assert.ok(Math.abs(diceOf(pred, lab, 5) - (2 * 72) / (72 + 216)) < 1e-12);
  // A large false alarm instead: a negative click outside the object.
  const fa = new Float32Array(12 ** 3).fill(1);
  const n = correctiveClick(fa, 0, lab, 5, sh)!;
  assert.equal(n.positive, false);
  assert.equal(lab[at(n.coord[0]!, n.coord[1]!, n.coord[2]!)], 0);
  assert.equal(correctiveClick(Float32Array.from(lab, (v) => (v === 5 ? 1 : -1)), 0, lab, 5, sh), null, 'perfect: no click');
});

test('window protocols and zero-shot clicks run on a tiny network and give Dice in [0, 1]', () => {
  manualSeed(0);
  const net = new VISTA3D({ initFilters: 4, featureSize: 8, blocksDown: [1, 1, 1], mlpDim: 16 });
  net.eval();
  const s = 20, img = new Float32Array(s * 12 * 12), lab = new Uint8Array(img.length);
  for (let x = 3; x < 10; x++) for (let y = 3; y < 9; y++) for (let z = 2; z < 9; z++) { img[(x * 12 + y) * 12 + z] = 1; lab[(x * 12 + y) * 12 + z] = 1; }
  for (let x = 12; x < 18; x++) for (let y = 2; y < 6; y++) for (let z = 3; z < 7; z++) { img[(x * 12 + y) * 12 + z] = 0.5; lab[(x * 12 + y) * 12 + z] = 3; }
  const p = padVolumeToWindow(img, lab, [s, 12, 12], [16, 16, 16]);
  try {
    assert.deepEqual(p.size, [20, 16, 16]);
    assert.equal(p.labels.reduce((a, v) => a + (v === 1 ? 1 : 0), 0), 7 * 6 * 7, 'labels survive the padding');
    const r = windowProtocols(net, p.image, p.labels, [1], { roi: [16, 16, 16], overlap: 0.25 });
    assert.equal(r.windows, 2);
    for (const v of [r.auto[1]!, r.point[1]!, r.autoClick[1]!]) assert.ok(v >= 0 && v <= 1, String(v));
    assert.equal(r.clicks.positive + r.clicks.negative <= 2, true, 'at most one click per window and class');
    const z = zeroShotClicks(net, p.image, p.labels, 3, 3, { roi: [16, 16, 16] });
    assert.equal(z.dice.length, 3);
    assert.ok(z.dice.every((d) => d >= 0 && d <= 1));
    assert.equal(p.labels[(z.clicks[0]!.coord[0]! * 16 + z.clicks[0]!.coord[1]!) * 16 + z.clicks[0]!.coord[2]!], 3, 'the first click is on the target');
  } finally { p.image.dispose(); net.dispose(); }
});
