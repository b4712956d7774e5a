import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fromTypedArray } from '../../src/engine/creation.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { applyOverrides, presetConfig } from '../../src/config/index.js';
import { fusionDice, pretrain } from '../../src/ssl/pretrain.js';
import type { FusedArrays } from '../../src/ssl/volume-fusion.js';
import type { TrainableModel } from '../../src/train/trainer.js';
import { MisfmError } from '../../src/util/errors.js';
import { buildCache, patternCT, tempDir, vol } from '../data/helpers.js';

const tmp = tempDir('pretrain');
after(() => rmSync(tmp, { recursive: true, force: true }));

/** One fused sample [1,1,2,2,4] whose levels are 0,1,1,2,2,2,3,4 repeated (K = 4). */
function sample(): FusedArrays {
  const levels = Uint8Array.from([0, 1, 1, 2, 2, 2, 3, 4, 0, 1, 1, 2, 2, 2, 3, 4]);
  return { shape: [1, 1, 2, 2, 4], image: new Float32Array(16), levels, pairs: [['a', 'b']] };
}

/** A stand-in network whose logits put all mass on the given per-voxel classes. */
function fixedModel(classes: Uint8Array): TrainableModel {
  const logits = new Float32Array(5 * classes.length);
  classes.forEach((c, i) => { logits[c * classes.length + i] = 10; });
  return { forward: (): Tensor => fromTypedArray(logits, [1, 5, 2, 2, 4]) } as unknown as TrainableModel;
}

test('pseudo-segmentation Dice: perfect, all-background, and the chance level from the level frequencies', async () => {
  const s = sample();
  const perfect = await fusionDice(fixedModel(s.levels), [s], 4);
  assert.equal(perfect.score, 1);
  const background = await fusionDice(fixedModel(new Uint8Array(16)), [s], 4);
  assert.ok(background.score < 1e-5, `all background scores ${background.score}`);
  // Level frequencies 4/16, 6/16, 2/16, 2/16: chance = mean = 14/64.
  assert.ok(Math.abs(perfect.metrics['chance']! - 14 / 64) < 1e-12);
  assert.equal(background.metrics['chance'], perfect.metrics['chance']);
  // Levels 1 and 2 swapped: Dice 0 for both, 1 for levels 3 and 4.
  const swapped = await fusionDice(fixedModel(s.levels.map((v) => (v === 1 ? 2 : v === 2 ? 1 : v))), [s], 4);
  assert.ok(Math.abs(swapped.score - 0.5) < 1e-5, `swapped ${swapped.score}`);
});

test('pretrain holds out the named scans, logs validation against chance, and rejects unknown or all-held-out scans', async () => {
  const cache = path.join(tmp, 'cache');
  const dhw: [number, number, number] = [20, 36, 36];
  buildCache(cache, ['a', 'b', 'c'].map((id, i) => ({ id, image: vol(patternCT(dhw).map((v) => v + 100 * i), dhw) })));
  const config = applyOverrides(presetConfig('small'), [
    'model.featureChns=[4,8,16,32,64]', 'model.inputSize=[16,32,32]', 'data.patchSize=[16,32,32]',
    'ssl.blocks.sizeMax=[10,20,20]', 'training.iterations=2', 'training.validEvery=2', 'training.saveEvery=2',
  ]);
  const runDir = path.join(tmp, 'run');
  const r = await pretrain({ config, data: [cache], runDir, quiet: true, validCases: ['c'], validSamples: 2, log: () => {} });
  assert.deepEqual(r.validCases, ['c']);
  assert.equal(r.trainCases, 2);
  const events = readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number | string>);
  const valid = events.find((e) => e['event'] === 'valid')!;
  assert.ok(Number(valid['chance']) > 0 && Number(valid['chance']) < 1, `chance ${valid['chance']}`);
  const step = events.find((e) => e['event'] === 'train')!;
  assert.ok(Number(step['rssMb']) > 0 && Number(step['liveTensors']) > 0);
  const isArg = (re: RegExp) => (e: unknown): boolean => e instanceof MisfmError && e.code === 'ARGUMENT' && re.test(e.message);
  await assert.rejects(pretrain({ config, data: [cache], runDir: path.join(tmp, 'x'), quiet: true, validCases: ['nope'], log: () => {} }),
    isArg(/held-out scan\(s\) not in the data: nope \(scans: a, b, c\)/));
  await assert.rejects(pretrain({ config, data: [cache], runDir: path.join(tmp, 'y'), quiet: true, validCases: ['a', 'b', 'c'], log: () => {} }),
    isArg(/every scan is held-out: no scan left to train on/));
});
