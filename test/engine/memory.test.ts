import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';

test('tidy frees every intermediate except the returned tensors', () => {
  const before = E.liveTensors();
  const [a, b] = E.tidy(() => {
    const x = E.ones([10, 10]);
    const y = x.add(1).mul(2).exp();
    return [y.sum(), { nested: x.mul(3) }.nested];
  });
  assert.equal(E.liveTensors(), before + 2);
  assert.ok(Math.abs(a.item() - 100 * Math.exp(4)) < 1e-3);
  a.dispose(); b.dispose();
  assert.equal(E.liveTensors(), before);
});

test('keep() survives tidy; nested scopes hand results to the parent; exceptions free the scope', () => {
  const before = E.liveTensors();
  let kept: E.Tensor | undefined;
  const outer = E.tidy(() => {
    const inner = E.tidy(() => { kept = E.keep(E.ones([2])); E.zeros([3]); return E.ones([4]); });
    E.zeros([5]);
    return inner;
  });
  assert.equal(E.liveTensors(), before + 2);
  assert.equal(kept!.isDisposed, false);
  outer.dispose(); kept!.dispose();
  assert.throws(() => E.tidy(() => { E.ones([7]); throw new Error('boom'); }), /boom/);
  assert.equal(E.liveTensors(), before);
});

test('a training-style loop inside tidy keeps the live count flat', () => {
  const w = E.randn([16, 8]).requiresGrad_();
  const start = E.liveTensors();
  for (let i = 0; i < 50; i++) {
    E.tidy(() => {
      const loss = E.randn([4, 16]).matmul(w).relu().mean();
      loss.backward();
      E.noGrad(() => w.sub_(w.grad!.mul(0.01)));
      w.grad = null;
    });
  }
  assert.equal(E.liveTensors(), start);
});
