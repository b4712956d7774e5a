import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import os from 'node:os';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import * as E from '../../src/engine/index.js';
import {
  softDiceLoss, softCrossEntropy, diceCeLoss, deepSupervisedLoss, deepSupervisionWeights, oneHotTarget, poolTarget,
} from '../../src/train/losses.js';
import { MisfmError } from '../../src/util/errors.js';
import { fixturesDir, readFixtureF32, hasPythonTorch, runPython, assertClose } from '../helpers.js';

interface TensorsJson { meta: Record<string, unknown>; tensors: Record<string, { file: string; shape: number[]; dtype: string }> }
const readJson = (f: string): TensorsJson => JSON.parse(readFileSync(f, 'utf8')) as TensorsJson;

const lossDir = path.join(fixturesDir, 'loss_small');
const pctDir = path.join(fixturesDir, 'pctnet_small');

function relClose(got: number, want: number, rtol: number, what: string): void {
  assert.ok(Math.abs(got - want) <= rtol * Math.abs(want), `${what}: got ${got}, want ${want} (rel err ${Math.abs(got - want) / Math.abs(want)})`);
}

test('losses match the PyMIC reference values on the loss_small fixture', () => {
  const lossMeta = readJson(path.join(lossDir, 'tensors.json'));
  const pctMeta = readJson(path.join(pctDir, 'tensors.json'));
  const expected = lossMeta.meta['loss_values'] as Record<string, number>;
  const summary = (JSON.parse(readFileSync(path.join(fixturesDir, 'summary.json'), 'utf8')) as Record<string, Record<string, number>>)['loss_small']!;
  // The two copies of the reference numbers must agree, or the test would check the wrong thing.
  assert.deepEqual(summary, expected);
  const before = E.liveTensors();
  E.tidy(() => {
    const lab = lossMeta.tensors['label']!;
    const b = readFileSync(path.join(lossDir, lab.file));
    const labels = E.fromTypedArray(new BigInt64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)), lab.shape);
    const target = oneHotTarget(labels, 5);
    assert.deepEqual(target.shape, [1, 5, 32, 64, 64]);
    const outs = [0, 1, 2, 3].map((i) => {
      const d = pctMeta.tensors[`out${i}`]!;
      return E.fromTypedArray(readFixtureF32(path.join(pctDir, d.file)), d.shape);
    });
    const o0 = outs[0]!;
    relClose(softDiceLoss(o0, target).item(), expected['dice_loss_out0']!, 1e-6, 'Dice');
    relClose(softCrossEntropy(o0, target).item(), expected['ce_loss_out0']!, 1e-6, 'CE');
    relClose(diceCeLoss(o0, target).item(), expected['combined_out0']!, 1e-6, 'Dice+CE');
    relClose(deepSupervisedLoss(outs, target).item(), expected['deep_supervise_total']!, 1e-6, 'deep supervision');
    // The stable log_softmax form agrees with the reference's log(softmax) on this fixture.
    const ceRef = target.mul(o0.softmax(1).log()).sum(1).mean().neg().item();
    relClose(softCrossEntropy(o0, target).item(), ceRef, 1e-6, 'CE vs log(softmax)');
  });
  assert.equal(E.liveTensors(), before, 'no native tensor leaked');
});

/** Random case: logits at 3 scales (float64), one-hot target at full size. */
function randomCase(seed: number): { outs: E.Tensor[]; target: E.Tensor; labels: E.Tensor } {
  E.manualSeed(seed);
  const labels = E.randint(0, 3, [2, 1, 4, 8, 8]);
  const target = oneHotTarget(labels, 3).to('float64');
  const outs = [[4, 8, 8], [4, 4, 4], [2, 2, 2]].map((s) => E.randn([2, 3, ...s], { dtype: 'float64' }).mul(2));
  return { outs, target, labels };
}

test('gradients agree with central finite differences (float64)', () => {
  E.tidy(() => {
    const { outs, target } = randomCase(7);
    const opts = { classWeights: [0.5, 1, 2] };
    const params = outs.map((o) => o.clone().requiresGrad_());
    deepSupervisedLoss(params, target, opts).backward();
    const eps = 1e-6;
    for (let k = 0; k < params.length; k++) {
      const g = params[k]!.grad!.data() as Float64Array;
      const base = outs[k]!.data() as Float64Array;
      // Probe a spread of about 16 elements per level (each probe is two full loss evaluations).
      const stride = Math.max(1, Math.floor(base.length / 16));
      const idx = Array.from({ length: base.length }, (_, i) => i).filter((i) => i % stride === 3 % stride);
      const numeric: number[] = [], analytic: number[] = [];
      for (const i of idx) {
        const f = (delta: number): number => E.noGrad(() => E.tidy(() => {
          const v = base.slice(); v[i]! += delta;
          const moved = outs.map((o, j) => (j === k ? E.fromTypedArray(v, o.shape) : o));
          return deepSupervisedLoss(moved, target, opts).item();
        }));
        numeric.push((f(eps) - f(-eps)) / (2 * eps));
        analytic.push(g[i]!);
      }
      assertClose(analytic, numeric, 1e-4, 1e-8, `output ${k} gradient`);
    }
  });
});

test('losses and gradients agree with a PyTorch oracle', { skip: !hasPythonTorch() && 'python3 torch not available' }, () => {
  E.tidy(() => {
    const { outs, target, labels } = randomCase(11);
    const params = outs.map((o) => o.clone().requiresGrad_());
    const cw = [0.2, 1, 3];
    const loss = deepSupervisedLoss(params, target, { weights: { dice: 0.3, ce: 0.7 }, classWeights: cw });
    loss.backward();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'misfm-loss-'));
    try {
      const file = path.join(dir, 'case.json');
      writeFileSync(file, JSON.stringify({
        labels: Array.from(labels.data() as BigInt64Array, Number), lshape: labels.shape,
        outs: outs.map((o) => ({ data: Array.from(o.data() as Float64Array), shape: o.shape })), cw,
      }));
      const ref = runPython(`
import json, sys, torch
import torch.nn.functional as F
c = json.load(open(sys.argv[1]))
lab = torch.tensor(c['labels']).reshape(c['lshape'])
y = F.one_hot(lab[:, 0], 3).permute(0, 4, 1, 2, 3).double()
cw = torch.tensor(c['cw'], dtype=torch.float64)
outs = [torch.tensor(o['data'], dtype=torch.float64).reshape(o['shape']).requires_grad_() for o in c['outs']]
def to2d(t): return t.permute(0, 2, 3, 4, 1).reshape(-1, t.shape[1])
def dice(p, y):
    p, y = to2d(torch.softmax(p, 1)), to2d(y)
    d = (2 * (p * y).sum(0) + 1e-5) / (y.sum(0) + p.sum(0) + 1e-5)
    return 1 - (d * cw).sum() / cw.sum()
def ce(p, y):
    return torch.mean(torch.sum(-y * torch.log(torch.softmax(p, 1)) * cw.reshape(1, -1, 1, 1, 1), 1))
tot, ws = 0, 0
for i, o in enumerate(outs):
    yy = y if i == 0 else F.adaptive_avg_pool3d(y, o.shape[2:])
    w = 1 / 2 ** i
    tot = tot + w * (0.3 * dice(o, yy) + 0.7 * ce(o, yy)); ws += w
loss = tot / ws
loss.backward()
print(json.dumps({'loss': loss.item(), 'grads': [o.grad.flatten().tolist() for o in outs]}))
`, [file]) as { loss: number; grads: number[][] };
      relClose(loss.item(), ref.loss, 1e-12, 'oracle loss');
      params.forEach((p, i) => assertClose(p.grad!.data() as Float64Array, ref.grads[i]!, 1e-9, 1e-14, `oracle gradient ${i}`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('deep supervision weights levels 1, 1/2, 1/4 and pools the target (hand-computed case)', () => {
  E.tidy(() => {
    // Target [1,2,4,4,4]: class 1 fills the first two depth slices (32 of 64 voxels); class 0 the rest.
    const lab = new BigInt64Array(64).map((_, i) => (i < 32 ? 1n : 0n));
    const target = oneHotTarget(E.fromTypedArray(lab, [1, 1, 4, 4, 4]), 2);
    // Constant per-voxel probabilities q per level, so every sum has a closed form.
    const qs = [[0.5, 0.5], [0.8, 0.2], [0.3, 0.7]];
    const sizes = [[4, 4, 4], [2, 2, 2], [1, 1, 1]];
    const outs = qs.map((q, i) => {
      const n = sizes[i]!.reduce((a, b) => a * b, 1);
      const data = new Float32Array(2 * n);
      data.fill(Math.log(q[0]!), 0, n); data.fill(Math.log(q[1]!), n);
      return E.fromTypedArray(data, [1, 2, ...sizes[i]!]);
    });
    // Pooled class-1 fractions per level: level 1 voxels cover depth 0-1 / 2-3 → fractions 1 and 0;
    // level 2 is one voxel with fraction 0.5.
    const level = (q: number[], n: number, y1: number[]): number => {
      const f1 = y1.reduce((a, b) => a + b, 0), f0 = n - f1; // Σy per class
      const dice = [f0, f1].map((s, c) => (2 * q[c]! * s + 1e-5) / (s + n * q[c]! + 1e-5));
      const d = 1 - (dice[0]! + dice[1]!) / 2;
      const ce = -(f0 * Math.log(q[0]!) + f1 * Math.log(q[1]!)) / n;
      return 0.5 * d + 0.5 * ce;
    };
    const L = [
      level(qs[0]!, 64, Array<number>(64).fill(0).map((_, i) => (i < 32 ? 1 : 0))),
      level(qs[1]!, 8, [1, 1, 1, 1, 0, 0, 0, 0]),
      level(qs[2]!, 1, [0.5]),
    ];
    const want = (L[0]! + 0.5 * L[1]! + 0.25 * L[2]!) / 1.75;
    assert.deepEqual(deepSupervisionWeights(4), [1, 0.5, 0.25, 0.125]);
    relClose(deepSupervisedLoss(outs, target).item(), want, 1e-6, 'weighted total');
    // Custom weights select levels: only level 2 counts.
    relClose(deepSupervisedLoss(outs, target, { outputWeights: [0, 0, 3] }).item(), L[2]!, 1e-6, 'level 2 only');
    // The pooled target holds class fractions.
    assertClose(poolTarget(target, [1, 1, 1]).data() as Float32Array, [0.5, 0.5], 0, 1e-7, 'pooled target');
    // Single output = diceCeLoss.
    relClose(deepSupervisedLoss(outs[0]!, target).item(), L[0]!, 1e-6, 'single output');
  });
});

test('class weights: uniform weights change nothing, Dice weighting is a weighted mean', () => {
  E.tidy(() => {
    const { outs, target } = randomCase(3);
    const o = outs[0]!;
    relClose(softDiceLoss(o, target, { classWeights: [2, 2, 2] }).item(), softDiceLoss(o, target).item(), 1e-12, 'uniform dice weights');
    relClose(softCrossEntropy(o, target, { classWeights: [1, 1, 1] }).item(), softCrossEntropy(o, target).item(), 1e-12, 'unit CE weights');
    // Weight only class 2: the loss is 1 - dice_2, found by masking the other channels out.
    const only2 = softDiceLoss(o, target, { classWeights: [0, 0, 1] }).item();
    const p = o.softmax(1).narrow(1, 2, 1), y = target.narrow(1, 2, 1);
    const d2 = (2 * p.mul(y).sum().item() + 1e-5) / (y.sum().item() + p.sum().item() + 1e-5);
    relClose(only2, 1 - d2, 1e-12, 'dice of class 2');
  });
});

test('bad inputs give clear errors', () => {
  E.tidy(() => {
    const logits = E.zeros([1, 3, 2, 2, 2]);
    const labels = E.zeros([1, 1, 2, 2, 2], { dtype: 'int64' });
    assert.throws(() => softDiceLoss(logits, E.zeros([1, 2, 2, 2, 2])), (e: unknown) => e instanceof MisfmError && e.code === 'SHAPE' && /\[1,2,2,2,2\].*\[1,3,2,2,2\]/.test(e.message));
    assert.throws(() => softCrossEntropy(logits, labels.expand([1, 3, 2, 2, 2])), (e: unknown) => e instanceof MisfmError && e.code === 'DTYPE' && /oneHotTarget/.test(e.message));
    assert.throws(() => oneHotTarget(labels.add(3), 3), (e: unknown) => e instanceof MisfmError && /0\.\.2, found 3/.test(e.message));
    assert.throws(() => oneHotTarget(E.zeros([1, 2]), 3), /integer tensor/);
    const target = oneHotTarget(labels, 3);
    assert.throws(() => softDiceLoss(logits, target, { classWeights: [1, 2] }), /classWeights must be 3/);
    assert.throws(() => softCrossEntropy(logits, target, { classWeights: [0, 0, 0] }), /not all 0/);
    assert.throws(() => diceCeLoss(logits, target, { weights: { dice: -1, ce: 1 } }), /dice must be/);
    assert.throws(() => deepSupervisedLoss([logits, logits], target, { outputWeights: [1] }), /outputWeights must be 2/);
    assert.throws(() => deepSupervisedLoss([logits, E.zeros([1, 4, 1, 1, 1])], target), /output 1 \[1,4,1,1,1\]/);
    assert.throws(() => deepSupervisedLoss([], target), /at least one/);
  });
});
