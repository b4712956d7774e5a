/**
 * Inference-time BatchNorm folding (src/nn/fuse.ts): the folded network equals the unfused one
 * within float32 rounding (PCT-Net parity fixture, UNet3D with non-trivial BN statistics), the
 * folded state dict describes the same function, and a folded model refuses to train.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { assertClose } from '../helpers.js';
import { manualSeed, noGrad, rand, randn } from '../../src/engine/creation.js';
import { dispose } from '../../src/engine/scope.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { readSafetensors } from '../../src/io/checkpoint/index.js';
import { PCTNet } from '../../src/models/pctnet/index.js';
import { UNet3D } from '../../src/models/unet3d.js';
import { BatchNorm3d } from '../../src/nn/layers/norm.js';
import { foldBatchNorms } from '../../src/nn/fuse.js';
import { MisfmError } from '../../src/util/errors.js';
import { pctSmallDir, readJson, readF32, fixtureTensor, optionsFromFixture, type FixtureMeta } from './helpers.js';

const RTOL = 1e-4, ATOL = 1e-5;

function countFolded(m: { namedModules(): IterableIterator<[string, unknown]> }): number {
  let n = 0;
  for (const [, x] of m.namedModules()) if (x instanceof BatchNorm3d && x.folded) n++;
  return n;
}

test('PCT-Net fixture: BN folding keeps every output within fp32 rounding of the unfused net and the reference', () => {
  const meta = readJson<FixtureMeta>(path.join(pctSmallDir, 'tensors.json'));
  const sd = readSafetensors(path.join(pctSmallDir, 'weights.safetensors')).tensors;
  const net = new PCTNet(optionsFromFixture(meta));
  const fresh = new PCTNet(optionsFromFixture(meta));
  try {
    net.loadStateDict(sd, { mode: 'filter' });
    net.eval();
    const x = fixtureTensor(pctSmallDir, meta, 'input');
    const before = noGrad(() => net.forwardAll(x)).map((t) => { const d = t.dataF32(); t.dispose(); return d; });
    assert.throws(() => foldBatchNorms(net.train()), (e: unknown) => e instanceof MisfmError && /eval mode/.test(e.message));
    net.eval();
    // Per mode: 2 pairs inside each embedding's and head's two ConvBlocks + 2 across blocks each,
    // x3 modes = 24; one inside each of the 5 pyramid ConvBlocks.
    assert.equal(foldBatchNorms(net), 29);
    assert.equal(countFolded(net), 29);
    assert.equal(foldBatchNorms(net), 0, 'folding twice is a no-op');
    const after = noGrad(() => net.forwardAll(x));
    after.forEach((t, i) => {
      assertClose(t.dataF32(), before[i]!, RTOL, ATOL, `out${i} folded vs unfused`);
      assertClose(t.dataF32(), readF32(path.join(pctSmallDir, meta.tensors[`out${i}`]!.file)), RTOL, ATOL, `out${i} folded vs reference`);
    });
    // The folded state dict (identity BNs) loaded into an unfused network gives the same outputs.
    fresh.loadStateDict(net.stateDict());
    fresh.eval();
    const again = noGrad(() => fresh.forwardAll(x));
    again.forEach((t, i) => assertClose(t.dataF32(), after[i]!.dataF32(), RTOL, ATOL, `out${i} from the folded state dict`));
    assert.throws(() => { net.train(); net.forwardAll(x); }, (e: unknown) => e instanceof MisfmError && /folded/.test(e.message));
    dispose([after, again, x]);
  } finally {
    net.dispose(); fresh.dispose();
  }
});

test('UNet3D with non-trivial BN statistics: folding is exact within fp32 rounding', () => {
  manualSeed(11);
  const net = new UNet3D({ inChannels: 1, classNum: 3, featureChns: [4, 8, 8, 16], dropout: [0, 0, 0, 0] });
  try {
    noGrad(() => {
      for (const [, m] of net.namedModules()) {
        if (!(m instanceof BatchNorm3d)) continue;
        const c = m.numFeatures;
        const set = (t: Tensor | null, v: Tensor): void => { t?.copy_(v); v.dispose(); };
        set(m.runningMean, randn([c]).mul(0.3));
        set(m.runningVar, rand([c]).add(0.5));
        set(m.weight, randn([c]).mul(0.5).add(1));
        set(m.bias, randn([c]).mul(0.2));
      }
    });
    net.eval();
    const x = randn([1, 1, 16, 16, 16]);
    const y0 = noGrad(() => net.forward(x)) as Tensor;
    assert.equal(foldBatchNorms(net), 14, 'two per conv block: 4 encoder + 3 decoder blocks');
    const y1 = noGrad(() => net.forward(x)) as Tensor;
    assertClose(y1.dataF32(), y0.dataF32(), RTOL, ATOL, 'UNet3D folded vs unfused');
    dispose([x, y0, y1]);
  } finally {
    net.dispose();
  }
});
