import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import * as nn from '../../src/nn/index.js';
import { assertClose } from '../helpers.js';

/** One BatchNorm3d step (forward, backward of sum(y*dy)) with or without a statistics reducer. */
function step(reducer: ((t: E.Tensor) => void) | null, x0: E.Tensor, dy: E.Tensor): Record<string, Float32Array> {
  const bn = new nn.BatchNorm3d(3);
  E.noGrad(() => { bn.weight!.copy_(E.fromTypedArray(new Float32Array([1.5, -0.5, 2]), [3])); bn.bias!.copy_(E.fromTypedArray(new Float32Array([0.1, 0.2, -0.3]), [3])); });
  bn.statsReducer = reducer;
  bn.train();
  const x = x0.detach().requiresGrad_();
  const y = bn.forward(x);
  y.mul(dy).sum().backward();
  const r = { y: y.data() as Float32Array, gx: x.grad!.data() as Float32Array, gw: bn.weight!.grad!.data() as Float32Array, gb: bn.bias!.grad!.data() as Float32Array,
    rm: bn.runningMean!.data() as Float32Array, rv: bn.runningVar!.data() as Float32Array };
  bn.dispose();
  return r;
}

test('SyncBatchNorm with a one-process reducer equals BatchNorm: output, input/weight/bias gradients, running statistics', () => {
  E.manualSeed(3);
  const x0 = E.randn([2, 3, 4, 5, 6]).mul(2).add(1);
  const dy = E.randn([2, 3, 4, 5, 6]);
  let calls = 0;
  const a = step(null, x0, dy), b = step(() => { calls++; }, x0, dy);
  assert.equal(calls, 2, 'one reduction in forward, one in backward');
  for (const k of Object.keys(a)) assertClose(b[k]!, a[k]!, 1e-5, 1e-5, k);
});

test('SyncBatchNorm with a reducer that doubles the sums (a twin process with the same data): same output and input gradient, running variance from the global count', () => {
  // Two identical processes: global sums are twice the local ones and the count doubles, so the
  // normalisation and the input gradient are those of one process.
  E.manualSeed(4);
  const x0 = E.randn([1, 3, 4, 4, 4]);
  const dy = E.randn([1, 3, 4, 4, 4]);
  const a = step(null, x0, dy), b = step((t) => { E.noGrad(() => t.mul_(2)); }, x0, dy);
  assertClose(b['y']!, a['y']!, 1e-5, 1e-5, 'y');
  assertClose(b['gx']!, a['gx']!, 1e-5, 1e-5, 'gx');
  // the unbiased running variance uses the global count: n/(n-1) with n = 128 instead of 64
  const n = 64;
  for (let c = 0; c < 3; c++) {
    const biasedA = (a['rv']![c]! - 0.9) / 0.1 * (n - 1) / n;
    const expectB = 0.9 + 0.1 * biasedA * (2 * n) / (2 * n - 1);
    assert.ok(Math.abs(b['rv']![c]! - expectB) < 1e-5, `running_var[${c}] ${b['rv']![c]} vs ${expectB}`);
  }
});
