/**
 * Child process of trainer-signal.test.ts: trains a tiny PCT-Net on an always-ready batch source
 * (every batch resolves immediately, as a prefetched loader's does) until a signal stops it.
 */
import { applyOverrides, presetConfig } from '../../src/config/index.js';
import { fromTypedArray, manualSeed } from '../../src/engine/creation.js';
import { createModel } from '../../src/models/index.js';
import { train, type TrainableModel } from '../../src/train/trainer.js';

const runDir = process.argv[2]!;
const cfg = applyOverrides(presetConfig('small'), ['model.featureChns=[4,8,16,32,64]', 'model.inputSize=[16,32,32]', 'data.patchSize=[16,32,32]',
  'data.batchSize=1', 'training.iterations=100000', 'training.validEvery=100000', 'training.saveEvery=100000', 'training.scheduler.stepSize=100000', `output.dir=${JSON.stringify(runDir)}`]);
manualSeed(1);
const model = createModel(cfg.model) as TrainableModel;
const img = new Float32Array(16 * 32 * 32).map((_, i) => Math.sin(i)), tgt = new Float32Array(5 * 16 * 32 * 32);
for (let i = 0; i < 16 * 32 * 32; i++) tgt[(i % 5) * 16 * 32 * 32 + i] = 1;
const summary = await train({
  model, config: cfg, runDir, quiet: true,
  makeSource: async () => ({
    next: () => Promise.resolve({ image: fromTypedArray(img, [1, 1, 16, 32, 32]), target: fromTypedArray(tgt, [1, 5, 16, 32, 32]) }),
    position: () => null, close: async () => {},
  }),
});
process.stdout.write(`${JSON.stringify({ interrupted: summary.interrupted, iterations: summary.iterations })}\n`);
process.exit(summary.interrupted ? 130 : 0);
