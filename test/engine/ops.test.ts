import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import { MisfmError } from '../../src/util/errors.js';
import { assertClose } from '../helpers.js';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const { F } = E;
const arr = (t: E.Tensor): number[] => Array.from(t.data() as ArrayLike<number>, Number);

test('dtypes round-trip through typed arrays', () => {
  const cases: [E.DType, E.AnyTypedArray][] = [
    ['float32', new Float32Array([1.5, -2, 3])], ['float64', new Float64Array([1e-300, 2, 3])],
    ['int64', new BigInt64Array([1n, -(2n ** 40n), 3n])], ['int32', new Int32Array([1, -2, 2 ** 30])],
    ['int16', new Int16Array([1, -2, 300])], ['int8', new Int8Array([1, -2, 3])], ['uint8', new Uint8Array([1, 2, 255])],
  ];
  for (const [dt, a] of cases) {
    const t = E.fromTypedArray(a, [3]);
    assert.equal(t.dtype, dt);
    assert.deepEqual(Array.from(t.data() as ArrayLike<unknown>), Array.from(a as ArrayLike<unknown>));
  }
  const h = E.tensor([1, 0.5, -2]).to('float16');
  assert.equal(h.dtype, 'float16');
  assert.deepEqual(Array.from(h.data() as Uint16Array), [0x3c00, 0x3800, 0xc000]); // IEEE half bit patterns
  const b = E.tensor([1, 0.5, -2]).to('bfloat16');
  assert.deepEqual(Array.from(b.data() as Uint16Array), [0x3f80, 0x3f00, 0xc000]);
  const bo = E.tensor([1, 0, 2]).ne(0);
  assert.equal(bo.dtype, 'bool');
  assert.deepEqual(Array.from(bo.data() as Uint8Array), [1, 0, 1]);
});

test('creation, arange and reductions give known values', () => {
  assert.deepEqual(arr(E.arange(0, 5)), [0, 1, 2, 3, 4]);
  assert.equal(E.arange(0, 1, 0.25).dtype, 'float32');
  const x = E.arange(0, 24, 1, { dtype: 'float32' }).reshape([2, 3, 4]);
  assert.deepEqual(arr(x.sum([1])), [12, 15, 18, 21, 48, 51, 54, 57]);
  assert.deepEqual(x.sum(2, true).shape, [2, 3, 1]);
  assert.equal(x.mean().item(), 11.5);
  const [mx, idx] = x.max(2);
  assert.deepEqual(arr(mx), [3, 7, 11, 15, 19, 23]);
  assert.deepEqual(arr(idx), [3, 3, 3, 3, 3, 3]);
  assert.deepEqual(arr(x.argmax(1)), [2, 2, 2, 2, 2, 2, 2, 2]);
  assert.deepEqual(arr(x.neg().argmax(2)), [0, 0, 0, 0, 0, 0]);
  assert.equal(x.min().item(), 0);
  assertClose(arr(E.tensor([1, 2, 3, 4]).std()), [1.2909944], 1e-6);
  assertClose(arr(E.tensor([[1, 2], [3, 4]]).softmax(1)), [0.26894142, 0.73105858, 0.26894142, 0.73105858], 1e-6);
  assertClose(arr(E.tensor([[1, 2]]).logSoftmax(1)), [-1.3132616, -0.3132617], 1e-6);
});

test('shape ops: permute, transpose, narrow, slice, cat/stack/split/chunk, roll, flip, expand', () => {
  const x = E.arange(0, 6, 1, { dtype: 'float32' }).reshape([2, 3]);
  assert.deepEqual(x.transpose(0, 1).toArray(), [[0, 3], [1, 4], [2, 5]]);
  assert.deepEqual(x.permute([1, 0]).contiguous().shape, [3, 2]);
  assert.deepEqual(x.narrow(1, 1, 2).toArray(), [[1, 2], [4, 5]]);
  assert.deepEqual(x.slice(1, -2).toArray(), [[1, 2], [4, 5]]);
  assert.deepEqual(x.slice(1, 0, 3, 2).toArray(), [[0, 2], [3, 5]]);
  assert.deepEqual(E.cat([x, x], 0).shape, [4, 3]);
  assert.deepEqual(E.stack([x, x], 1).shape, [2, 2, 3]);
  assert.deepEqual(x.split(1, 1).map((t) => t.shape), [[2, 1], [2, 1], [2, 1]]);
  assert.deepEqual(x.split([1, 2], 1).map((t) => t.shape), [[2, 1], [2, 2]]);
  assert.deepEqual(x.chunk(2, 0).map((t) => t.toArray()), [[[0, 1, 2]], [[3, 4, 5]]]);
  assert.deepEqual(x.roll(1, 1).toArray(), [[2, 0, 1], [5, 3, 4]]);
  assert.deepEqual(x.flip([0, 1]).toArray(), [[5, 4, 3], [2, 1, 0]]);
  assert.deepEqual(E.tensor([1, 2]).reshape([2, 1]).expand([2, 3]).toArray(), [[1, 1, 1], [2, 2, 2]]);
  assert.deepEqual(x.flatten().shape, [6]);
  assert.deepEqual(x.unsqueeze(0).squeeze(0).shape, [2, 3]);
  assert.deepEqual(x.indexSelect(1, E.tensor([2, 0], { dtype: 'int64' })).toArray(), [[2, 0], [5, 3]]);
  assert.deepEqual(x.crop([[1, 2], [0, 2]]).toArray(), [[3, 4]]);
});

test('elementwise arithmetic broadcasts; comparisons, where, clamp, pow', () => {
  const a = E.tensor([[1, 2, 3]]);
  const b = E.tensor([[10], [20]]);
  assert.deepEqual(a.add(b).toArray(), [[11, 12, 13], [21, 22, 23]]);
  assert.deepEqual(a.sub(1).mul(2).div(4).toArray(), [[0, 0.5, 1]]);
  assert.deepEqual(a.pow(2).toArray(), [[1, 4, 9]]);
  assert.deepEqual(a.rsub(4).toArray(), [[3, 2, 1]]);
  assert.deepEqual(a.gt(1.5).toArray(), [[0, 1, 1]]);
  assert.deepEqual(E.where(a.gt(1.5), a, E.zerosLike(a)).toArray(), [[0, 2, 3]]);
  assert.deepEqual(a.clamp(1.5, 2.5).toArray(), [[1.5, 2, 2.5]]);
  assertClose(arr(a.exp().log()), [1, 2, 3], 1e-6);
  assertClose(arr(a.sqrt()), [1, Math.SQRT2, Math.sqrt(3)], 1e-6);
  assert.deepEqual(E.tensor([-1, 2]).abs().toArray(), [1, 2]);
});

test('matmul/bmm/linear and conv3d with anisotropic kernels agree with direct computation', () => {
  const a = E.tensor([[1, 2], [3, 4]]);
  assert.deepEqual(a.matmul(a).toArray(), [[7, 10], [15, 22]]);
  assert.deepEqual(E.stack([a, a]).bmm(E.stack([a, a])).shape, [2, 2, 2]);
  assert.deepEqual(F.linear(E.tensor([[1, 1]]), a, E.tensor([1, 1])).toArray(), [[4, 8]]);
  // conv3d [1,3,3] kernel of ones on a ones volume with in-plane padding: border voxels see fewer taps.
  const x = E.ones([1, 1, 2, 3, 3]);
  const w = E.ones([1, 1, 1, 3, 3]);
  const y = F.conv3d(x, w, null, { padding: [0, 1, 1] });
  assert.deepEqual(y.shape, [1, 1, 2, 3, 3]);
  assert.deepEqual((y.toArray() as number[][][][][])[0]![0]![0], [[4, 6, 4], [6, 9, 6], [4, 6, 4]]);
  // stride 2 and transpose conv give the PyTorch output sizes.
  assert.deepEqual(F.conv3d(E.ones([1, 2, 8, 8, 8]), E.ones([4, 2, 3, 3, 3]), null, { stride: 2, padding: 1 }).shape, [1, 4, 4, 4, 4]);
  const ct = F.convTranspose3d(E.ones([1, 4, 2, 3, 3]), E.ones([4, 2, 1, 2, 2]), null, { stride: [1, 2, 2] });
  assert.deepEqual(ct.shape, [1, 2, 2, 6, 6]);
  assert.equal(ct.max().item(), 4);
  assert.deepEqual(F.conv2d(E.ones([1, 1, 4, 4]), E.ones([1, 1, 3, 3])).shape, [1, 1, 2, 2]);
});

test('pooling, normalisation, activations, pad, interpolate, one-hot', () => {
  const x = E.arange(0, 16, 1, { dtype: 'float32' }).reshape([1, 1, 1, 4, 4]);
  assert.deepEqual((F.maxPool3d(x, [1, 2, 2]).toArray() as number[][][][][])[0]![0]![0], [[5, 7], [13, 15]]);
  assert.deepEqual((F.avgPool3d(x, [1, 2, 2]).toArray() as number[][][][][])[0]![0]![0], [[2.5, 4.5], [10.5, 12.5]]);
  assert.deepEqual(F.adaptiveAvgPool3d(x, [1, 1, 1]).item(), 7.5);
  const bnIn = E.tensor([1, 2, 3, 4]).reshape([4, 1, 1, 1, 1]);
  const rm = E.zeros([1]), rv = E.ones([1]);
  const y = F.batchNorm(bnIn, rm, rv, { training: true });
  assertClose(arr(y), [-1.3416408, -0.4472136, 0.4472136, 1.3416408], 1e-5);
  assertClose(arr(rm), [0.25], 1e-6);                 // 0.9*0 + 0.1*2.5
  assertClose(arr(rv), [0.9 + 0.1 * (5 / 3)], 1e-6);  // unbiased batch variance 1.6667
  const ev = F.batchNorm(bnIn, rm, rv, { training: false });
  assertClose(arr(ev).slice(0, 1), [(1 - 0.25) / Math.sqrt(0.9 + 0.1 * 5 / 3 + 1e-5)], 1e-5);
  assertClose(arr(F.layerNorm(E.tensor([[1, 2, 3]]), [3])), [-1.2247357, 0, 1.2247357], 1e-5);
  assertClose(arr(F.instanceNorm(E.tensor([1, 3]).reshape([1, 1, 1, 1, 2]))), [-1, 1], 1e-4);
  assertClose(arr(F.prelu(E.tensor([-2, 2]), E.tensor([0.25]))), [-0.5, 2]);
  assertClose(arr(F.leakyRelu(E.tensor([-2, 2]), 0.01)), [-0.02, 2]);
  // exact GELU: x * Phi(x); Phi(1) = 0.8413447
  assertClose(arr(F.gelu(E.tensor([1, -1]))), [0.8413447, -0.1586553], 1e-6);
  assert.notDeepEqual(arr(F.gelu(E.tensor([1]), 'tanh')), arr(F.gelu(E.tensor([1]))));
  const p = E.tensor([[1, 2, 3]]).reshape([1, 1, 3]);
  assert.deepEqual(F.pad(p, [2, 1], 'constant', 9).toArray(), [[[9, 9, 1, 2, 3, 9]]]);
  assert.deepEqual(F.pad(p, [2, 1], 'reflect').toArray(), [[[3, 2, 1, 2, 3, 2]]]);
  assert.deepEqual(F.pad(p, [2, 1], 'replicate').toArray(), [[[1, 1, 1, 2, 3, 3]]]);
  const iv = F.interpolate(E.tensor([0, 1]).reshape([1, 1, 1, 1, 2]), [1, 1, 3], 'trilinear', true);
  assertClose(arr(iv), [0, 0.5, 1], 1e-6);
  assert.deepEqual(arr(F.interpolate(E.tensor([0, 1]).reshape([1, 1, 1, 1, 2]), [1, 1, 4], 'nearest')), [0, 0, 1, 1]);
  assert.deepEqual(F.oneHot(E.tensor([[2, 0]], { dtype: 'int64' }), 3).toArray(), [[[0, 1], [0, 0], [1, 0]]]);
  const d = F.dropout(E.ones([1000]), 0.5, true);
  const kept = arr(d).filter((v) => v !== 0);
  assert.ok(kept.every((v) => v === 2) && kept.length > 400 && kept.length < 600, 'dropout scales kept values by 1/(1-p)');
  assert.deepEqual(arr(F.dropout(E.ones([3]), 0.5, false)), [1, 1, 1]);
});

test('seeded generator reproduces random draws and its state restores exactly', () => {
  E.manualSeed(7);
  const a = arr(E.randn([5]));
  E.manualSeed(7);
  assert.deepEqual(arr(E.randn([5])), a);
  const s = E.getRngState();
  const b = arr(E.rand([4]));
  E.setRngState(s);
  assert.deepEqual(arr(E.rand([4])), b);
});

test('shape errors name the op and the offending shapes', () => {
  const x = E.ones([1, 4, 8, 8, 8]);
  assert.throws(() => F.conv3d(x, E.ones([2, 3, 3, 3, 3])), (e: unknown) => e instanceof MisfmError && e.code === 'SHAPE' && /conv3d/.test(e.message) && /\[1,4,8,8,8\]/.test(e.message) && /\[2,3,3,3,3\]/.test(e.message));
  assert.throws(() => F.conv3d(E.ones([4, 8, 8]), E.ones([2, 4, 3, 3, 3])), /conv3d: input must be rank 5/);
  assert.throws(() => E.ones([2, 3]).add(E.ones([4, 5])), (e: unknown) => e instanceof MisfmError && /add\.Tensor/.test(e.message) && /\[2,3\]/.test(e.message) && /\[4,5\]/.test(e.message));
  assert.throws(() => E.ones([2, 3]).matmul(E.ones([4, 5])), /matmul.*\[2,3\].*\[4,5\]/s);
  assert.throws(() => E.ones([6]).view([4]), /view: cannot view \[6\] as \[4\]/);
  assert.throws(() => E.ones([6]).narrow(0, 4, 3), /narrow: range \[4, 7\) is outside dim 0 of size 6/);
  assert.throws(() => E.fromTypedArray(new Float32Array(5), [2, 3]), /5 values cannot fill shape \[2,3\]/);
  const t = E.ones([2]);
  t.dispose();
  assert.throws(() => t.add(1), (e: unknown) => e instanceof MisfmError && e.code === 'DISPOSED');
});

test('conv3d without grad takes oneDNN on libtorch\'s im2col shapes and gives the same values', () => {
  E.manualSeed(3);
  // batch 1, 3x3x3 kernel, N·C·D·H = 48·4·8 <= 20480: libtorch 1.13 would use im2col here.
  const x = E.randn([1, 48, 4, 8, 8]), w = E.randn([40, 48, 3, 3, 3]).mul(0.05), b = E.randn([40]);
  const withGrad = E.F.conv3d(x, w, b, { padding: 1 });            // grad mode on: libtorch's own choice
  const noGrad = E.noGrad(() => E.F.conv3d(x, w, b, { padding: 1 })); // the direct oneDNN forward
  assert.deepEqual(noGrad.shape, [1, 40, 4, 8, 8]);
  assertClose(noGrad.dataF32(), withGrad.dataF32(), 1e-4, 1e-4, 'oneDNN vs im2col conv3d');
  // strided, anisotropic, no bias
  const w2 = E.randn([8, 48, 1, 3, 3]);
  assertClose(E.noGrad(() => E.F.conv3d(x, w2, null, { stride: [1, 2, 2], padding: [0, 1, 1] })).dataF32(),
    E.F.conv3d(x, w2, null, { stride: [1, 2, 2], padding: [0, 1, 1] }).dataF32(), 1e-4, 1e-4, 'strided');
  E.dispose([x, w, b, withGrad, noGrad, w2]);
});

test('attentionLogits equals q·kᵀ + bias (values and gradients) and never writes into the bias', () => {
  E.manualSeed(3);
  // w: a non-uniform upstream gradient, so a wrong broadcast of the bias gradient shows.
  const grads = (fn: (q: E.Tensor, k: E.Tensor, b: E.Tensor) => E.Tensor, q0: E.Tensor, k0: E.Tensor, b0: E.Tensor, w: E.Tensor): number[][] => {
    const [q, k, b] = [q0, k0, b0].map((t) => t.clone().requiresGrad_(true)) as [E.Tensor, E.Tensor, E.Tensor];
    const y = fn(q, k, b);
    y.mul(w).sum().backward();
    return [arr(y), arr(q.grad!), arr(k.grad!), arr(b.grad!)];
  };
  const ref = (q: E.Tensor, k: E.Tensor, b: E.Tensor): E.Tensor => q.matmul(k.transpose(-2, -1)).add(b);
  // PCT-Net/SwinUNETR layouts: bias over heads broadcast over windows; bias+mask per window broadcast over the batch.
  const cases: [number[], number[]][] = [[[6, 2, 5, 3], [1, 2, 5, 5]], [[2, 3, 2, 5, 4], [1, 3, 2, 5, 5]], [[4, 5, 3], [4, 5, 5]]];
  for (const [qs, bs] of cases) {
    const q = E.randn(qs), k = E.randn(qs), b = E.randn(bs);
    const before = arr(b);
    const w = E.randn([...qs.slice(0, -1), qs[qs.length - 2]!]);
    const got = grads(F.attentionLogits, q, k, b, w), want = grads(ref, q, k, b, w);
    got.forEach((g, i) => assertClose(g, want[i]!, 1e-5, 1e-5, `${qs} output/grad ${i}`));
    F.attentionLogits(q, k, b);
    assert.deepEqual(arr(b), before, 'the bias is left as it was');
  }
  assert.throws(() => F.attentionLogits(E.randn([2, 5, 3]), E.randn([2, 5, 4]), E.zeros([1, 5, 5])), /attentionLogits/);
  // Under the bfloat16 policy the product runs in bf16: exactly the bf16 matmul plus the bias, which
  // the float32 path (different rounding) would not give.
  const q = E.randn([3, 4, 8]), k = E.randn([3, 4, 8]), b = E.randn([1, 4, 4]);
  const bf = E.withPrecision('bf16', () => [F.attentionLogits(q, k, b), ref(q, k, b)] as const);
  assert.deepEqual(arr(bf[0]), arr(bf[1]), 'bf16 path');
  assert.notDeepEqual(arr(bf[0]), arr(ref(q, k, b)), 'bf16 rounding shows');
  // Shifted windows: bias + mask per window, the same as adding them one after the other.
  const [bw, h, n, nW] = [6, 2, 5, 3];
  const qw = E.randn([bw, h, n, 4]), kw = E.randn([bw, h, n, 4]), bias = E.randn([h, n, n]), mask = E.randn([nW, n, n]);
  const want = ref(qw, kw, bias.unsqueeze(0)).view([bw / nW, nW, h, n, n]).add(mask.unsqueeze(1).unsqueeze(0)).view([bw, h, n, n]);
  assertClose(arr(F.windowAttentionLogits(qw, kw, bias, mask)), arr(want), 1e-5, 1e-5, 'window mask');
  assertClose(arr(F.windowAttentionLogits(qw, kw, bias, null)), arr(ref(qw, kw, bias.unsqueeze(0))), 1e-5, 1e-5, 'no mask');
});

test('profileOps writes a chrome trace naming the ATen ops run, and stops on a throw', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'misfm-prof-'));
  try {
    const file = path.join(dir, 'trace.json');
    const a = E.randn([8, 4]), b = E.randn([4, 3]);
    E.profileOps(file, () => a.matmul(b).relu());
    const names = new Set((JSON.parse(readFileSync(file, 'utf8')) as { name: string }[]).map((e) => e.name));
    assert.ok(names.has('aten::mm') && names.has('aten::relu'), [...names].join(','));
    assert.throws(() => E.profileOps(path.join(dir, 't2.json'), () => { throw new Error('inside'); }), /inside/);
    E.profileOps(path.join(dir, 't3.json'), () => a.sum()); // the throw above stopped the recording
    assert.ok(existsSync(path.join(dir, 't3.json')));
  } finally { rmSync(dir, { recursive: true, force: true }); }
});
