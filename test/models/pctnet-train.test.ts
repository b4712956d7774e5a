/**
 * PCT-Net in training mode: which parameters receive gradients, stochastic layers, optimisation,
 * and activation checkpointing (recomputation) giving the same gradients as a plain backward.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { manualSeed, randn, randint, rand, noGrad, liveTensors } from '../../src/engine/creation.js';
import { dispose, keep, tidy } from '../../src/engine/scope.js';
import type { Tensor } from '../../src/engine/tensor.js';
import * as F from '../../src/engine/functional.js';
import { Adam } from '../../src/optim/adam.js';
import type { PCTNet } from '../../src/models/pctnet/index.js';
import { tinyPCTNet } from './helpers.js';

function lossOf(outs: Tensor[]): Tensor {
  return tidy(() => outs.map((o, i) => o.square().mean().mul(0.5 ** i)).reduce((a, b) => a.add(b)));
}

function gradNames(net: PCTNet): Set<string> {
  const s = new Set<string>();
  for (const [n, p] of net.namedParameters()) { const g = p.grad; if (g !== null) { s.add(n); g.dispose(); } }
  return s;
}

for (const mode of [0, 1, 2] as const) {
  test(`mode ${mode}: gradients reach exactly the parameters the mode uses`, () => {
    const net = tinyPCTNet(mode);
    try {
      net.train();
      manualSeed(1);
      const x = randn([1, 1, ...net.inputSize]);
      const outs = net.forwardAll(x);
      assert.equal(outs.length, 4);
      const loss = lossOf(outs);
      loss.backward();
      const got = gradNames(net);
      const want = new Set(net.activeParameterNames());
      assert.deepEqual([...got].sort(), [...want].sort());
      // The other modes' stems/heads and the unused norm_layers really are excluded.
      assert.ok([...want].every((n) => !n.includes('norm_layer')));
      for (const other of [0, 1, 2].filter((m) => m !== mode)) {
        assert.ok(![...got].some((n) => n.startsWith(`embeddings.${other}.`) || n.startsWith(`pred_heads.${other}.`)), `mode ${other} got gradients`);
      }
      assert.ok(got.has(`embeddings.${mode}.proj.weight`) && got.has('pyramid_ct.convtrans_e4.trans.blocks.0.attn.relative_position_bias_table'));
      const g = net.pyramidCt.convtransE2.trans.blocks.at(1).attn.relativePositionBiasTable.grad!;
      assert.ok(g.abs().sum().item() > 0, 'shifted block bias table gets a non-zero gradient');
      dispose([g, x, loss, outs]);
    } finally {
      net.dispose();
    }
  });
}

test('without multiscalePred the auxiliary heads get no gradient', () => {
  const net = tinyPCTNet(1, { multiscalePred: false });
  try {
    const x = randn([1, 1, ...net.inputSize]);
    const out = net.forward(x) as Tensor;
    const loss = out.square().mean();
    loss.backward();
    const got = gradNames(net);
    assert.deepEqual([...got].sort(), [...net.activeParameterNames()].sort());
    assert.ok(!got.has('pyramid_ct.out_conv2.conv.2.weight') && !got.has('pred_heads.1.out_conv1.conv.2.weight'));
    dispose([x, out, loss]);
  } finally {
    net.dispose();
  }
});

test('training mode is stochastic (dropout, DropPath) and seeded; eval mode is deterministic', () => {
  const net = tinyPCTNet(1, { multiscalePred: false });
  try {
    const x = randn([1, 1, ...net.inputSize]);
    const run = (seed: number): Float32Array => { manualSeed(seed); return noGrad(() => tidy(() => (net.forward(x) as Tensor).dataF32())); };
    net.train();
    const a = run(3), b = run(3), c = run(4);
    assert.deepEqual(a, b, 'same seed, same training forward');
    assert.notDeepEqual(a, c, 'different seeds give different dropout/DropPath masks');
    net.eval();
    assert.deepEqual(run(5), run(6), 'eval forward does not depend on the seed');
    x.dispose();
  } finally {
    net.dispose();
  }
});

test('the shifted-window masks are built once and cached; a forward leaks nothing', () => {
  const net = tinyPCTNet(1, { multiscalePred: false });
  try {
    net.eval();
    const x = randn([1, 1, ...net.inputSize]);
    const layer = net.pyramidCt.convtransE2.trans;
    noGrad(() => (net.forward(x) as Tensor).dispose());
    const m1 = layer.shiftMask('cpu');
    const before = liveTensors();
    noGrad(() => (net.forward(x) as Tensor).dispose());
    assert.equal(liveTensors(), before, 'second forward created no lasting tensors');
    assert.equal(layer.shiftMask('cpu'), m1, 'the same cached mask tensor');
    // e4 (2x2x2 at this size) falls back to an unshifted window: no mask at all.
    assert.equal(net.pyramidCt.convtransE4.trans.shiftMask('cpu'), null);
    x.dispose();
  } finally {
    net.dispose();
  }
});

test('a few Adam steps reduce a segmentation loss on a fixed batch', () => {
  const net = tinyPCTNet(1, { multiscalePred: false, dropout: [0, 0, 0, 0, 0] });
  try {
    net.train();
    manualSeed(11);
    const x = keep(randn([2, 1, ...net.inputSize]));
    // A learnable target: class = a threshold pattern of the input.
    const y = keep(tidy(() => x.gt(0.5).to('int64').add(x.lt(-0.5).to('int64').mul(2)).squeeze(1)));
    const opt = new Adam(net.parameters(), { lr: 1e-2 });
    const losses: number[] = [];
    for (let i = 0; i < 8; i++) {
      manualSeed(100 + i);
      const out = net.forward(x) as Tensor;
      const loss = F.crossEntropy(out, y);
      losses.push(loss.item());
      opt.zeroGrad();
      loss.backward();
      opt.step();
      dispose([out, loss]);
    }
    assert.ok(losses[losses.length - 1]! < losses[0]! * 0.8, `loss went ${losses.map((l) => l.toFixed(3)).join(' -> ')}`);
    dispose([x, y]);
  } finally {
    net.dispose();
  }
});

test('activation checkpointing gives the same loss, gradients, BN statistics and RNG stream', () => {
  const net = tinyPCTNet(1);
  const snapshot = new Map([...net.stateDict()].map(([k, v]) => [k, keep(v.clone())]));
  try {
    net.train();
    const x = keep(randn([2, 1, ...net.inputSize]));
    const grads = (): Map<string, Float32Array> => {
      const m = new Map<string, Float32Array>();
      for (const [n, p] of net.namedParameters()) { const g = p.grad; if (g !== null) { m.set(n, g.dataF32()); g.dispose(); } }
      return m;
    };
    const bn = (): Float32Array => net.pyramidCt.convtransE3.conv.convConv.at(0).stateDict().get('running_var')!.dataF32();

    manualSeed(21);
    const outs = net.forwardAll(x);
    const loss1 = lossOf(outs);
    loss1.backward();
    const g1 = grads(), bn1 = bn(), l1 = loss1.item();
    const r1 = rand([4]).dataF32();
    dispose([outs, loss1]);

    net.zeroGrad();
    net.loadStateDict(snapshot);
    manualSeed(21);
    const h = net.forwardCheckpointed(x);
    const loss2 = lossOf(h.outputs);
    loss2.backward();
    h.backward();
    const g2 = grads(), bn2 = bn(), l2 = loss2.item();
    const r2 = rand([4]).dataF32();
    dispose([h.outputs, loss2]);

    assert.equal(l2, l1);
    assert.deepEqual([...g2.keys()].sort(), [...g1.keys()].sort());
    for (const [k, a] of g1) assert.deepEqual(g2.get(k), a, `gradient of ${k}`);
    assert.deepEqual(bn2, bn1, 'running statistics updated once, as without checkpointing');
    assert.deepEqual(r2, r1, 'RNG stream continues as without checkpointing');
    assert.throws(() => h.backward(), /already run/);
    x.dispose();
  } finally {
    dispose([...snapshot.values()]);
    net.dispose();
  }
});

test('mode 2 deep-supervision outputs have the in-plane stem shapes', () => {
  const net = tinyPCTNet(2);
  try {
    net.eval();
    const x = randn([1, 1, ...net.inputSize]);
    const outs = noGrad(() => net.forwardAll(x));
    // mode 2: in-plane stem, so depth is not down-sampled in the head levels.
    assert.deepEqual(outs.map((o) => o.shape), [[1, 3, 8, 32, 32], [1, 3, 8, 16, 16], [1, 3, 8, 8, 8], [1, 3, 4, 4, 4]]);
    const lbl = randint(0, 3, [1, 8, 32, 32]);
    const ce = F.crossEntropy(outs[0]!, lbl);
    assert.equal(ce.ndim, 0);
    dispose([x, outs, lbl, ce]);
  } finally {
    net.dispose();
  }
});
