import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fromTypedArray } from '../../src/engine/creation.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { reconstructionLoss, reconstructionMetrics, WEIGHT_EPS, type ReconArrays } from '../../src/ssl/reconstruction.js';
import type { TrainableModel } from '../../src/train/trainer.js';
import { ShapeError } from '../../src/util/errors.js';

const t = (v: number[]): Tensor => fromTypedArray(Float32Array.from(v), [1, 1, 1, 1, v.length]);

test('L1 reconstruction loss on hand-computed cases: plain, through tanh, and mask-weighted (SimMIM)', () => {
  const pred = t([0, 1, -1, 2]), target = t([0, 0.5, 0, 0]);
  assert.ok(Math.abs(reconstructionLoss(pred, target, 'none').item() - 0.875) < 1e-7, '(0 + 0.5 + 1 + 2) / 4');
  const th = [0, Math.tanh(1), Math.tanh(-1), Math.tanh(2)];
  const want = (Math.abs(th[0]!) + Math.abs(th[1]! - 0.5) + Math.abs(th[2]!) + Math.abs(th[3]!)) / 4;
  assert.ok(Math.abs(reconstructionLoss(pred, target, 'tanh').item() - want) < 1e-6);
  const w = t([1, 0, 1, 0]);
  assert.ok(Math.abs(reconstructionLoss(pred, target, 'none', w).item() - 1 / (2 + WEIGHT_EPS)) < 1e-7, 'masked voxels 0 and 2: (0 + 1) / 2');
  assert.throws(() => reconstructionLoss(pred, t([0, 0, 0]), 'none'), (e: unknown) => e instanceof ShapeError && /must have one shape/.test(e.message));
});

test('the loss reaches the prediction: its gradient is sign(pred - target) / n', () => {
  const pred = fromTypedArray(Float32Array.from([0.5, -2, 3, 1]), [1, 1, 1, 1, 4]).requiresGrad_();
  reconstructionLoss(pred, t([0, 0, 4, 0]), 'none').backward();
  assert.deepEqual(Array.from(pred.grad!.data() as Float32Array), [0.25, -0.25, -0.25, 0.25]);
});

test('validation: a network that copies its input scores the L1 of the corrupted input', () => {
  const s: ReconArrays = { shape: [1, 1, 1, 2, 2], image: Float32Array.from([0, 0.5, 0, 1]), target: Float32Array.from([0, 1, 1, 1]), weight: null };
  const copy = { forward: (x: Tensor): Tensor => x.mul(1) } as unknown as TrainableModel;
  const r = reconstructionMetrics(copy, [s], 'none');
  assert.ok(Math.abs(r.metrics['mae']! - 0.375) < 1e-7 && Math.abs(r.metrics['identityMae']! - 0.375) < 1e-7);
  assert.equal(r.score, -r.metrics['mae']!);
  const weighted = reconstructionMetrics(copy, [{ ...s, weight: Float32Array.from([0, 0, 1, 0]) }], 'none');
  assert.equal(weighted.metrics['mae'], 1, 'only the weighted voxel counts');
});
