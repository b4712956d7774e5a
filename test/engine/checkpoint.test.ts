import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import * as nn from '../../src/nn/index.js';

function build(): { a: nn.Sequential; b: nn.Sequential } {
  E.manualSeed(11);
  return {
    a: new nn.Sequential(new nn.Conv3d(2, 4, 3, { padding: 1 }), new nn.BatchNorm3d(4), new nn.PReLU(), new nn.Dropout(0.3)),
    b: new nn.Sequential(new nn.BatchNorm3d(4), new nn.PReLU(), new nn.Conv3d(4, 3, 1), new nn.Dropout(0.2)),
  };
}

function run(useCheckpoint: boolean): { loss: number; grads: number[][]; stats: number[][]; pending: number } {
  const { a, b } = build();
  const params = [...a.parameters(), ...b.parameters()];
  E.manualSeed(5);
  const x = E.randn([2, 2, 4, 6, 6]).requiresGrad_();
  const loss = E.tidy(() => {
    const segA = (ins: E.Tensor[]): E.Tensor[] => [a.forward(ins[0]!)];
    const segB = (ins: E.Tensor[]): E.Tensor[] => [b.forward(ins[0]!).add(ins[1]!)];
    const h = useCheckpoint ? E.checkpoint(segA, [x])[0]! : segA([x])[0]!;
    const skip = h.mul(0.5);
    const y = useCheckpoint ? E.checkpoint(segB, [h, skip.narrow(1, 0, 3)])[0]! : segB([h, skip.narrow(1, 0, 3)])[0]!;
    const l = y.pow(2).mean();
    l.backward();
    return l.item();
  });
  const grads = [...params, x].map((p) => Array.from(p.grad!.data() as Float32Array));
  const stats = [...a.stateDict(), ...b.stateDict()].filter(([k]) => /running|num_batches/.test(k)).map(([, t]) => Array.from(t.data() as ArrayLike<number | bigint>, Number));
  return { loss, grads, stats, pending: E.pendingCheckpoints() };
}

test('checkpointed segments give identical loss, gradients (dropout replayed) and BN statistics', () => {
  const plain = run(false);
  const ckpt = run(true);
  assert.equal(ckpt.loss, plain.loss);
  assert.equal(ckpt.grads.length, plain.grads.length);
  ckpt.grads.forEach((g, i) => assert.deepEqual(g, plain.grads[i], `gradient ${i}`));
  assert.deepEqual(ckpt.stats, plain.stats, 'running stats updated once, not twice');
  assert.equal(ckpt.pending, 0, 'segments are released after backward');
});

test('checkpoint is a plain call without grad mode or grad-requiring inputs', () => {
  let calls = 0;
  const fn = (ins: E.Tensor[]): E.Tensor[] => { calls++; return [ins[0]!.mul(2)]; };
  E.noGrad(() => E.checkpoint(fn, [E.ones([2]).requiresGrad_()]));
  E.checkpoint(fn, [E.ones([2])]);
  assert.equal(calls, 2);
  assert.equal(E.pendingCheckpoints(), 0);
});
