/**
 * The bf16 compute policy (src/engine/precision.ts): which ops run in bfloat16, that everything
 * comes back float32, that gradients reach float32 master weights, that `auto` falls back to fp32
 * on a CPU without native bf16, and that PCT-Net in bf16 agrees with the reference fixture within
 * the documented bf16 tolerance (ARCHITECTURE.md: "bf16 compute policy").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { manualSeed, noGrad, randn } from '../../src/engine/creation.js';
import { dispose, tidy } from '../../src/engine/scope.js';
import * as F from '../../src/engine/functional.js';
import {
  computePrecision, cpuBf16Support, parsePrecision, resolvePrecision, setComputePrecision, withPrecision,
} from '../../src/engine/precision.js';
import { MisfmError } from '../../src/util/errors.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { readSafetensors } from '../../src/io/checkpoint/index.js';
import { PCTNet } from '../../src/models/pctnet/index.js';
import { autoPrecision } from '../../src/cli/commands/doctor.js';
import { pctSmallDir, readJson, readF32, fixtureTensor, optionsFromFixture, type FixtureMeta } from '../models/helpers.js';

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
function maxAbs(a: Float32Array): number { let m = 0; for (const v of a) m = Math.max(m, Math.abs(v)); return m; }

test('auto picks bf16 only with native bf16 or CUDA; MISFM_CPU_BF16 simulates a CPU without it', () => {
  assert.equal(resolvePrecision('auto', 'cpu', { MISFM_CPU_BF16: '0' }).precision, 'fp32');
  assert.match(resolvePrecision('auto', 'cpu', { MISFM_CPU_BF16: '0' }).reason, /MISFM_CPU_BF16=0/);
  assert.equal(resolvePrecision('auto', 'cpu', { MISFM_CPU_BF16: '1' }).precision, 'bf16');
  assert.equal(resolvePrecision('auto', 'cuda', { MISFM_CPU_BF16: '0' }).precision, 'bf16');
  assert.equal(resolvePrecision('fp32', 'cuda').precision, 'fp32');
  assert.equal(resolvePrecision('bf16', 'cpu', { MISFM_CPU_BF16: '0' }).precision, 'bf16', 'an explicit choice is obeyed');
  // Without the override, the answer follows /proc/cpuinfo.
  const s = cpuBf16Support({});
  assert.equal(resolvePrecision('auto', 'cpu', {}).precision, s.native ? 'bf16' : 'fp32');
  assert.equal(s.native, s.flags.length > 0);
  // doctor says the same.
  assert.deepEqual(autoPrecision(false, { MISFM_CPU_BF16: '0' }), { auto: 'fp32', reason: 'auto: MISFM_CPU_BF16=0 overrides the CPU detection', cpuBf16: ['MISFM_CPU_BF16=0'] });
  assert.equal(parsePrecision('bf16'), 'bf16');
  assert.throws(() => parsePrecision('fp16'), (e: unknown) => e instanceof MisfmError && e.code === 'ARGUMENT' && /--precision must be fp32, bf16 or auto, got 'fp16'/.test(e.message));
});

test('withPrecision restores the policy after a throw and after an async function settles', async () => {
  assert.equal(computePrecision(), 'fp32');
  assert.throws(() => withPrecision('bf16', () => { throw new Error('boom'); }), /boom/);
  assert.equal(computePrecision(), 'fp32');
  const p = withPrecision('bf16', async () => { await new Promise((r) => setTimeout(r, 1)); return computePrecision(); });
  assert.equal(computePrecision(), 'bf16', 'still active while the async function runs');
  assert.equal(await p, 'bf16');
  assert.equal(computePrecision(), 'fp32');
  assert.throws(() => setComputePrecision('fp16' as never), /fp32 or bf16/);
});

test('under bf16, conv3d/linear/matmul/bmm compute in bfloat16 and return float32; other ops are untouched', () => {
  manualSeed(3);
  tidy(() => {
    const x = randn([1, 4, 6, 8, 8]), w = randn([5, 4, 3, 3, 3]), b = randn([5]);
    const a = randn([3, 7, 16]), m = randn([3, 16, 9]);
    const lw = randn([6, 16]), lb = randn([6]);
    const bf = (t: Tensor): Tensor => t.to('bfloat16');
    const ref = {
      conv: F.conv3d(bf(x), bf(w), bf(b), { padding: 1 }).float(),
      linear: F.linear(bf(a), bf(lw), bf(lb)).float(),
      matmul: bf(a).matmul(bf(m)).float(),
      bmm: bf(a).bmm(bf(m)).float(),
    };
    const fp = { conv: F.conv3d(x, w, b, { padding: 1 }), linear: F.linear(a, lw, lb), matmul: a.matmul(m), bmm: a.bmm(m) };
    const got = withPrecision('bf16', () => ({
      conv: F.conv3d(x, w, b, { padding: 1 }), linear: F.linear(a, lw, lb), matmul: a.matmul(m), bmm: a.bmm(m),
      softmax: F.softmax(a, -1), pool: F.maxPool3d(x, 2),
    }));
    for (const k of ['conv', 'linear', 'matmul', 'bmm'] as const) {
      assert.equal(got[k].dtype, 'float32', `${k} returns float32`);
      assert.deepEqual(got[k].dataF32(), ref[k].dataF32(), `${k} equals the op on bfloat16-cast operands`);
      assert.ok(maxAbsDiff(got[k].dataF32(), fp[k].dataF32()) > 0, `${k} did not run in float32`);
      assert.ok(maxAbsDiff(got[k].dataF32(), fp[k].dataF32()) <= 0.02 * maxAbs(fp[k].dataF32()), `${k} is close to float32`);
    }
    assert.deepEqual(got.softmax.dataF32(), F.softmax(a, -1).dataF32(), 'softmax stays float32');
    assert.deepEqual(got.pool.dataF32(), F.maxPool3d(x, 2).dataF32(), 'pooling stays float32');
  });
});

test('bf16 training: gradients reach the float32 weights and agree with fp32 gradients', () => {
  manualSeed(4);
  const w1 = randn([6, 2, 3, 3, 3]).mul(0.3).requiresGrad_(), w2 = randn([4, 6]).mul(0.3).requiresGrad_();
  const x = randn([2, 2, 6, 8, 8]);
  const grads = (p: 'fp32' | 'bf16'): Float32Array[] => withPrecision(p, () => tidy(() => {
    const h = F.relu(F.batchNorm(F.conv3d(x, w1, null, { padding: 1 }), null, null, { training: true }));
    const t = F.maxPool3d(h, 2).flatten(2).transpose(1, 2); // [2, 48, 6]
    const loss = F.linear(t, w2).square().mean();
    loss.backward();
    const g = [w1.grad!, w2.grad!];
    assert.ok(g.every((v) => v.dtype === 'float32'), 'master gradients are float32');
    const out = g.map((v) => v.dataF32());
    noGrad(() => { w1.grad!.zero_(); w2.grad!.zero_(); });
    return out;
  }));
  const f = grads('fp32'), b = grads('bf16');
  for (let i = 0; i < 2; i++) {
    let dot = 0, na = 0, nb = 0;
    for (let j = 0; j < f[i]!.length; j++) { dot += f[i]![j]! * b[i]![j]!; na += f[i]![j]! ** 2; nb += b[i]![j]! ** 2; }
    const cos = dot / Math.sqrt(na * nb);
    // Measured 0.984 for the conv weight (its gradient passes batch-norm's backward, which cancels
    // large common components and so amplifies bf16 rounding) and 0.99998 for the linear weight.
    assert.ok(cos > (i === 0 ? 0.97 : 0.999), `gradient ${i}: cosine ${cos} between bf16 and fp32 gradients`);
    assert.ok(maxAbsDiff(f[i]!, b[i]!) > 0, `gradient ${i} was computed in bf16`);
  }
  dispose([w1, w2, x]);
});

/**
 * Documented bf16 tolerance on the PCT-Net parity fixture (mode 1, 32x64x64, eval): every output's
 * max |bf16 - reference| <= 5% of the output's max |value|, and the arg-max class of >= 99% of
 * voxels unchanged. (fp32 itself is held to rtol 1e-4 / atol 1e-5 in pctnet-parity.test.)
 */
test('PCT-Net fixture in bf16 agrees with the reference within the bf16 tolerance', () => {
  const meta = readJson<FixtureMeta>(path.join(pctSmallDir, 'tensors.json'));
  const net = new PCTNet(optionsFromFixture(meta));
  try {
    net.loadStateDict(readSafetensors(path.join(pctSmallDir, 'weights.safetensors')).tensors, { mode: 'filter' });
    net.eval();
    const x = fixtureTensor(pctSmallDir, meta, 'input');
    const outs = withPrecision('bf16', () => noGrad(() => net.forwardAll(x)));
    outs.forEach((o, i) => {
      assert.equal(o.dtype, 'float32');
      const ref = readF32(path.join(pctSmallDir, meta.tensors[`out${i}`]!.file));
      const got = o.dataF32();
      const d = maxAbsDiff(got, ref), scale = maxAbs(ref);
      assert.ok(d <= 0.05 * scale, `out${i}: max |bf16 - ref| ${d} > 5% of max |ref| ${scale}`);
      assert.ok(d > 1e-5, `out${i}: bf16 result equals fp32 (${d}); the policy did not apply`);
      const c = o.shape[1]!, n = got.length / c;
      let same = 0;
      for (let v = 0; v < n; v++) {
        let ai = 0, bi = 0;
        for (let k = 1; k < c; k++) { if (ref[k * n + v]! > ref[ai * n + v]!) ai = k; if (got[k * n + v]! > got[bi * n + v]!) bi = k; }
        if (ai === bi) same++;
      }
      assert.ok(same / n >= 0.99, `out${i}: arg-max agrees on ${(100 * same / n).toFixed(2)}% of voxels`);
    });
    dispose([outs, x]);
  } finally {
    net.dispose();
  }
});
