/**
 * Several windows per network call (--sw-batch) give the same labels as one at a time, with the
 * slab accumulation unchanged; --precision and --sw-batch reach predict and its sidecar.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { manualSeed, randn } from '../../src/engine/creation.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { UNet3D } from '../../src/models/unet3d.js';
import { slidingWindowSegment, type Predictor } from '../../src/infer/sliding-window.js';
import { runPredict } from '../../src/cli/commands/predict.js';
import { assertClose } from '../helpers.js';
import { tempDir, writeTinyCheckpoint, writeVolume } from './helpers.js';

test('sw-batch 3 gives the labels of sw-batch 1 (a conv net, ragged last batch)', () => {
  manualSeed(5);
  const net = new UNet3D({ inChannels: 1, classNum: 4, featureChns: [4, 8, 8, 16], dropout: [0, 0, 0, 0] });
  net.eval();
  const image = randn([1, 1, 24, 30, 28]);
  try {
    const calls: number[] = [];
    const predictor: Predictor = (b: Tensor) => { calls.push(b.shape[0]!); return net.forward(b) as Tensor; };
    const opts = { window: [16, 16, 16] as [number, number, number], overlap: 0.5, probabilities: [1, 2] };
    const one = slidingWindowSegment(predictor, image, { ...opts, batchSize: 1 });
    const n = calls.length;
    calls.length = 0;
    const three = slidingWindowSegment(predictor, image, { ...opts, batchSize: 3 });
    assert.equal(one.windowsComputed, n);
    assert.equal(calls.length, Math.ceil(n / 3), 'one network call per 3 windows');
    assert.ok(calls.every((b, i) => b === (i < calls.length - 1 ? 3 : n - 3 * (calls.length - 1))), `batch sizes ${calls.join(',')}`);
    assert.deepEqual(Array.from(three.labels), Array.from(one.labels));
    for (const c of [1, 2]) assertClose(three.probabilities.get(c)!, one.probabilities.get(c)!, 1e-5, 1e-6, `probability ${c}`);
  } finally {
    image.dispose();
    net.dispose();
  }
});

test('predict --sw-batch and --precision reach the sidecar; bad values are one clear error', async () => {
  const dir = tempDir('sw-batch');
  const silent = { out: (): void => {}, err: { write: (): boolean => true } };
  try {
    const ckpt = path.join(dir, 'model.pt');
    writeTinyCheckpoint(ckpt);
    const img = path.join(dir, 'a.nii.gz');
    await writeVolume(img, [20, 18, 19], (i, j, k) => i * 3 - j + k);
    const side = (f: string): { inference: { batchSize: number; precision: string } } => JSON.parse(fs.readFileSync(f, 'utf8'));
    const o1 = path.join(dir, 'o1', 'a.nii.gz'), o2 = path.join(dir, 'o2', 'a.nii.gz');
    assert.equal(await runPredict(['--model', ckpt, '--input', img, '--output', o1, '--sw-batch', '1'], silent), 0);
    assert.equal(await runPredict(['--model', ckpt, '--input', img, '--output', o2, '--sw-batch', '4', '--precision', 'bf16'], silent), 0);
    assert.deepEqual(side(path.join(dir, 'o1', 'a.json')).inference.batchSize, 1);
    assert.equal(side(path.join(dir, 'o1', 'a.json')).inference.precision, 'fp32');
    assert.equal(side(path.join(dir, 'o2', 'a.json')).inference.batchSize, 4);
    assert.equal(side(path.join(dir, 'o2', 'a.json')).inference.precision, 'bf16');
    // auto on a CPU without native bf16 (simulated) falls back to fp32.
    const o3 = path.join(dir, 'o3', 'a.nii.gz');
    const prev = process.env['MISFM_CPU_BF16'];
    process.env['MISFM_CPU_BF16'] = '0';
    try {
      assert.equal(await runPredict(['--model', ckpt, '--input', img, '--output', o3, '--precision', 'auto'], silent), 0);
    } finally {
      if (prev === undefined) delete process.env['MISFM_CPU_BF16']; else process.env['MISFM_CPU_BF16'] = prev;
    }
    assert.equal(side(path.join(dir, 'o3', 'a.json')).inference.precision, 'fp32');
    await assert.rejects(runPredict(['--model', ckpt, '--input', img, '--output', o1, '--precision', 'fp16'], silent), /--precision must be fp32, bf16 or auto, got 'fp16'/);
    await assert.rejects(runPredict(['--model', ckpt, '--input', img, '--output', o1, '--sw-batch', '0'], silent), /--sw-batch must be a positive integer/);
    await assert.rejects(runPredict(['--model', ckpt, '--input', img, '--output', o1, '--sw-batch', '2', '--batch', '2'], silent), /same option/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
