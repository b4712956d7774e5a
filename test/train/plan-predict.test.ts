/**
 * From raw scans to a prediction through the dataset plan: `finetune` prepares raw images at the
 * planned spacing and records it; `predict` resamples an input of another spacing to it and back,
 * and says so before the windows run. Which config keys count as explicit for --init adoption.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { applyOverrides, presetConfig } from '../../src/config/index.js';
import { finetune } from '../../src/train/finetune.js';
import { loadModelForInference } from '../../src/infer/model.js';
import { predictCase } from '../../src/infer/predict.js';
import type { CasePlan } from '../../src/infer/case-plan.js';
import { readImage } from '../../src/io/image/index.js';
import { readPlan } from '../../src/data/plan.js';
import { explicitDataKeys } from '../../src/cli/run-config.js';
import type { Mat3, Vec3, Volume } from '../../src/io/volume.js';
import { tempDir, ThresholdNet, writeVolume } from '../infer/helpers.js';

const tmp = tempDir('plan-predict');
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const TINY = ['model.featureChns=[4,8,16,32,64]', 'model.inputSize=[16,32,32]', 'data.patchSize=[16,32,32]', 'inference.window=[16,32,32]'];

/** World position (LPS mm) of voxel (i, j, k). */
function world(v: Pick<Volume, 'origin' | 'spacing' | 'direction'>, i: number, j: number, k: number): Vec3 {
  const d = v.direction, s = v.spacing, o = v.origin;
  const x = [i * s[0], j * s[1], k * s[2]];
  return [0, 1, 2].map((r) => o[r]! + d[r * 3]! * x[0]! + d[r * 3 + 1]! * x[1]! + d[r * 3 + 2]! * x[2]!) as Vec3;
}

/** Centroid in world coordinates of the voxels equal to `value`. */
function centroid(v: Volume, value: number): { at: Vec3; n: number } {
  const sum = [0, 0, 0];
  let n = 0, t = 0;
  for (let k = 0; k < v.size[2]; k++) for (let j = 0; j < v.size[1]; j++) for (let i = 0; i < v.size[0]; i++, t++) {
    if (v.data[t] !== value) continue;
    const p = world(v, i, j, k);
    for (let a = 0; a < 3; a++) sum[a]! += p[a]!;
    n++;
  }
  return { at: sum.map((x) => x / n) as Vec3, n };
}

test('a checkpoint trained through the plan predicts on an input of another spacing: labels on the input grid, landmark in place', async () => {
  // Two labelled scans at (1.5, 1.5, 3) and (2.5, 2.5, 3) mm: the plan's median is (2, 2, 3) mm.
  const images = path.join(tmp, 'images'), labels = path.join(tmp, 'labels');
  fs.mkdirSync(images, { recursive: true });
  fs.mkdirSync(labels, { recursive: true });
  for (const [name, sp, n] of [['s1', 1.5, 32], ['s2', 2.5, 20]] as const) {
    const box = (i: number, j: number, k: number): boolean => i >= n / 4 && i < (3 * n) / 4 && j >= n / 4 && j < (3 * n) / 4 && k >= 3 && k < 9;
    await writeVolume(path.join(images, `${name}.nii.gz`), [n, n, 12], (i, j, k) => (box(i, j, k) ? 300 : -800), { spacing: [sp, sp, 3] });
    await writeVolume(path.join(labels, `${name}.nii.gz`), [n, n, 12], (i, j, k) => (box(i, j, k) ? 1 : 0), { spacing: [sp, sp, 3] });
  }
  const cfg = applyOverrides(presetConfig('small-finetune'), [...TINY, 'training.iterations=2', 'training.validEvery=2', 'training.saveEvery=2', 'data.numWorkers=1']);
  assert.equal(cfg.data.spacing, 'plan');
  const runDir = path.join(tmp, 'run');
  const lines: string[] = [];
  const r = await finetune({ config: cfg, data: [images], labelsDir: labels, runDir, quiet: true, validCases: ['s2'], log: (l) => lines.push(l) });
  assert.match(lines.join('\n'), /spacing: 2,2,3 mm \(median spacing of 2 case\(s\)\)/);
  // The plan is beside the cache and in the run, with the network part (PCT-Net: fixed input size).
  assert.deepEqual(readPlan(path.join(runDir, 'cache'))!.spacing.target, [2, 2, 3]);
  const runPlan = readPlan(runDir)!;
  assert.deepEqual(runPlan.network, { model: 'pctnet', inputSize: 'fixed', patchSize: [16, 32, 32], used: [16, 32, 32], divisor: [1, 1, 1], estimatedMiB: 0, budgetMiB: 4096 });

  const bundle = await loadModelForInference(r.checkpoints.latest);
  bundle.model.dispose();
  assert.deepEqual(bundle.preprocess.spacing, [2, 2, 3]);
  assert.deepEqual(bundle.trainingData, { spacing: [2, 2, 3], spacingRange: { min: [1.5, 1.5, 3], max: [2.5, 2.5, 3] }, modalities: { ct: 2, other: 0 } });
  // The trained weights of 2 iterations segment nothing reliably; a threshold network on the same
  // preprocessing (z-score: the bright block is > 0) makes the landmark exact.
  const threshold = { ...bundle, model: new ThresholdNet() };

  // The input: 1 mm voxels, flipped and shifted, a bright block (the landmark) off-centre.
  const dir: Mat3 = [-1, 0, 0, 0, 1, 0, 0, 0, -1];
  const input = path.join(tmp, 'input.nii.gz');
  const size: Vec3 = [40, 36, 30];
  const vol = await writeVolume(input, size, (i, j, k) => (i >= 8 && i < 20 && j >= 10 && j < 22 && k >= 9 && k < 21 ? 500 : -700), { spacing: [1, 1, 1], origin: [12, -30, 40], direction: dir });
  const output = path.join(tmp, 'pred.nii.gz');
  let planned: CasePlan | undefined;
  const res = await predictCase(threshold, input, output, { onPlan: (p) => { planned = p; } });
  const pred = await readImage(output), back = await readImage(input);
  // The input's grid as a reader sees it (NIfTI stores -0 for some direction entries).
  assert.deepEqual(pred.size, back.size);
  assert.deepEqual(pred.spacing, back.spacing);
  assert.deepEqual(pred.origin, back.origin);
  const z = (m: readonly number[]): number[] => m.map((x) => x + 0); // -0 and 0 are the same direction
  assert.deepEqual(z(pred.direction), z(back.direction));
  const want = centroid(vol, 500), got = centroid(pred, 1);
  for (let a = 0; a < 3; a++) assert.ok(Math.abs(got.at[a]! - want.at[a]!) <= 1, `landmark axis ${a}: ${got.at.join(',')} vs ${want.at.join(',')}`);
  assert.ok(Math.abs(got.n - want.n) / want.n < 0.35, `${got.n} vs ${want.n} voxels`);
  // What predict said before running: 1 mm -> the plan's (2, 2, 3) mm, the working size, windows, the z warning.
  assert.deepEqual(planned, res.plan);
  assert.deepEqual(planned!.inputSpacing, [1, 1, 1]);
  assert.deepEqual(planned!.modelSpacing, [2, 2, 3]);
  assert.deepEqual(planned!.workSize, [20, 18, 10]);
  assert.ok(planned!.windows >= 1);
  assert.equal(planned!.warnings.length, 2, planned!.warnings.join('\n'));
  assert.match(planned!.warnings[0]!, /more than 2x from the model's 2,2,3 mm on axis z/);
  assert.match(planned!.warnings[1]!, /smaller than one window \(16x32x32\) along D,H,W/);
  // Without the recorded spacing the same input is predicted at 1 mm, and the warning says so.
  const native = await predictCase({ ...threshold, preprocess: { ...threshold.preprocess, spacing: null } }, input, path.join(tmp, 'native.nii.gz'));
  assert.match(native.plan.warnings.join('\n'), /the model was trained at 2,2,3 mm but predicts at the input's own spacing 1,1,1 mm, more than 2x apart on axis z/);
  assert.ok(native.windowsComputed > res.windowsComputed, `${native.windowsComputed} native windows vs ${res.windowsComputed} at the model spacing`);
});

test('explicit keys for --init adoption: overrides of the key, a part of it or the data section, and JSON config files', () => {
  assert.deepEqual(explicitDataKeys({ set: ['training.lr=1e-4'] }), []);
  assert.deepEqual(explicitDataKeys({ set: ['data.intensity.window=[-500,500]'] }), ['intensity']);
  assert.deepEqual(explicitDataKeys({ set: ['data.spacing="native"'] }), ['spacing']);
  assert.deepEqual(explicitDataKeys({ set: ['data={"batchSize":1}'] }), ['intensity', 'spacing']);
  const file = path.join(tmp, 'cfg.json');
  fs.writeFileSync(file, JSON.stringify({ task: 'finetune', data: { intensity: { kind: 'zscore' } } }));
  assert.deepEqual(explicitDataKeys({ config: file }), ['intensity']);
  fs.writeFileSync(file, JSON.stringify({ task: 'finetune', training: { lr: 0.001 } }));
  assert.deepEqual(explicitDataKeys({ config: file }), []);
});
