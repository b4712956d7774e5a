import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import { assertClose } from '../helpers.js';

const { F } = E;

/** Central finite differences of a scalar function of one float64 tensor, vs autograd. */
function gradCheck(name: string, shape: number[], fn: (x: E.Tensor) => E.Tensor, seed = 1): void {
  E.manualSeed(seed);
  const x0 = E.randn(shape, { dtype: 'float64' });
  const x = x0.clone().requiresGrad_();
  const y = fn(x);
  y.backward();
  const analytic = Array.from(x.grad!.data() as Float64Array);
  const base = Array.from(x0.data() as Float64Array);
  const eps = 1e-6;
  const numeric = base.map((_, i) => {
    const plus = base.slice(); plus[i]! += eps;
    const minus = base.slice(); minus[i]! -= eps;
    const fp = E.noGrad(() => fn(E.fromTypedArray(new Float64Array(plus), shape)).item());
    const fm = E.noGrad(() => fn(E.fromTypedArray(new Float64Array(minus), shape)).item());
    return (fp - fm) / (2 * eps);
  });
  assertClose(analytic, numeric, 1e-4, 1e-6, `${name} gradient`);
}

test('autograd agrees with finite differences', () => {
  const w3 = E.randn([3, 2, 3, 3, 3], { dtype: 'float64' });
  const wT = E.randn([2, 3, 2, 2, 2], { dtype: 'float64' });
  const lw = E.randn([4, 5], { dtype: 'float64' });
  gradCheck('conv3d', [1, 2, 4, 4, 4], (x) => F.conv3d(x, w3, null, { padding: [0, 1, 1] }).pow(2).sum());
  gradCheck('conv_transpose3d', [1, 2, 2, 2, 2], (x) => F.convTranspose3d(x, wT, null, { stride: 2 }).sin().sum());
  gradCheck('linear+gelu', [3, 5], (x) => F.gelu(F.linear(x, lw)).sum());
  gradCheck('softmax/log', [2, 4], (x) => x.softmax(1).mul(E.tensor([1, 2, 3, 4], { dtype: 'float64' })).log().sum());
  gradCheck('layer_norm', [2, 6], (x) => F.layerNorm(x, [6]).pow(3).sum());
  gradCheck('batch_norm(train)', [4, 2, 2, 1, 1], (x) => F.batchNorm(x, null, null, { training: true }).pow(3).sum());
  gradCheck('maxpool+prelu', [1, 1, 2, 4, 4], (x) => F.prelu(F.maxPool3d(x, 2), E.tensor([0.25], { dtype: 'float64' })).sum());
  gradCheck('trilinear', [1, 1, 2, 2, 2], (x) => F.interpolate(x, [3, 4, 4], 'trilinear', true).pow(2).sum());
  gradCheck('roll/permute/matmul', [2, 3], (x) => x.roll(1, 1).permute([1, 0]).matmul(x).sum());
});

test('backward with an explicit gradient, grad accumulation, detach and noGrad', () => {
  const x = E.tensor([1, 2, 3]).requiresGrad_();
  const y = x.mul(x);
  y.backward(E.tensor([1, 1, 1]), { retainGraph: true });
  assert.deepEqual(Array.from(x.grad!.data() as Float32Array), [2, 4, 6]);
  y.backward(E.tensor([1, 0, 0]));
  assert.deepEqual(Array.from(x.grad!.data() as Float32Array), [4, 4, 6], 'gradients accumulate');
  x.grad = null;
  assert.equal(x.grad, null);
  assert.equal(x.detach().requiresGrad, false);
  assert.equal(E.noGrad(() => x.mul(2)).requiresGrad, false);
  assert.equal(x.mul(2).requiresGrad, true);
  assert.throws(() => x.mul(2).backward(), /only for scalar outputs/);
});
