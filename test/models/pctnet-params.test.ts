/**
 * PCT-Net state-dict layout: names, order, shapes and dtypes equal the reference state_dict for every
 * configuration in param_lists.json, and parameter counts equal the spec's figures.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PCTNet } from '../../src/models/pctnet/index.js';
import { relativePositionIndexValues, relativePositionTableRows } from '../../src/models/pctnet/window.js';
import path from 'node:path';
import { readSafetensors } from '../../src/io/checkpoint/index.js';
import { typedView } from '../../src/engine/dtype.js';
import { paramLists, pctSmallDir, readJson, optionsFromFixture, type FixtureMeta, type ParamEntry } from './helpers.js';

const lists = paramLists();
const PAPER_FT = [24, 48, 128, 256, 512];

/** Compare a module's state dict with a reference list entry by entry (order included). */
function assertLayout(net: PCTNet, ref: ParamEntry[], what: string): void {
  const sd = [...net.stateDict()];
  assert.equal(sd.length, ref.length, `${what}: number of state-dict entries`);
  const params = new Set([...net.namedParameters()].map(([n]) => n));
  ref.forEach((r, i) => {
    const [name, t] = sd[i]!;
    assert.equal(name, r.name, `${what}: entry ${i}`);
    assert.deepEqual(t.shape, r.shape, `${what}: shape of ${name}`);
    assert.equal(t.dtype, r.dtype, `${what}: dtype of ${name}`);
    assert.equal(params.has(name), r.kind === 'param', `${what}: ${name} is a ${r.kind}`);
  });
}

const CASES: { key: string; mode: 0 | 1 | 2; classNum: number; inputSize: number[]; params: number }[] = [
  { key: 'pctnet_paper_mode0_cls5_in64x128x128', mode: 0, classNum: 5, inputSize: [64, 128, 128], params: 45_257_938 },
  { key: 'pctnet_paper_mode0_cls2_in64x128x128', mode: 0, classNum: 2, inputSize: [64, 128, 128], params: 45_256_114 },
  { key: 'pctnet_paper_mode1_cls5_in64x128x128', mode: 1, classNum: 5, inputSize: [64, 128, 128], params: 45_289_554 },
  { key: 'pctnet_paper_mode1_cls2_in64x128x128', mode: 1, classNum: 2, inputSize: [64, 128, 128], params: 45_287_730 },
  { key: 'pctnet_paper_mode2_cls5_in64x128x128', mode: 2, classNum: 5, inputSize: [64, 128, 128], params: 45_289_554 },
  { key: 'pctnet_paper_mode2_cls2_in64x128x128', mode: 2, classNum: 2, inputSize: [64, 128, 128], params: 45_287_730 },
  { key: 'pctnet_paper_mode1_cls5_in32x64x64', mode: 1, classNum: 5, inputSize: [32, 64, 64], params: 45_257_938 },
];

for (const c of CASES) {
  test(`state dict of ${c.key} equals the reference (684 entries, ${c.params} parameters)`, () => {
    const net = new PCTNet({ inChannels: 1, classNum: c.classNum, inputSize: c.inputSize, featureChns: PAPER_FT, resolutionMode: c.mode });
    try {
      assertLayout(net, lists.lists[c.key]!, c.key);
      assert.equal(net.numParameters(), c.params);
      assert.equal(lists.summary[c.key]!.param_numel, c.params);
      if (c.key === 'pctnet_paper_mode1_cls5_in64x128x128') {
        // Per-module figures of the spec (section 1.5).
        const count = (prefix: string): number => [...net.namedParameters()].filter(([n]) => n.startsWith(prefix)).reduce((a, [, t]) => a + t.numel, 0);
        assert.deepEqual([0, 1, 2].map((i) => count(`embeddings.${i}.`)), [353_942, 332_774, 229_094]);
        assert.deepEqual([0, 1, 2].map((i) => count(`pred_heads.${i}.`)), [371_148, 325_068, 134_604]);
        assert.equal(count('pyramid_ct.'), 43_542_924);
        // Used in mode-1 training with deep supervision: everything but the other stems/heads and norm_layers.
        net.multiscalePred = true;
        const used = new Set(net.activeParameterNames());
        assert.equal([...net.namedParameters()].filter(([n]) => used.has(n)).reduce((a, [, t]) => a + t.numel, 0), 44_198_206);
      }
    } finally {
      net.dispose();
    }
  });
}

test('relative_position_index uses the (3ws-1, 2ws-1) multipliers: max 290 for ws 6, 114 for ws 4', () => {
  for (const [ws, max] of [[6, 290], [4, 114]] as const) {
    const v = relativePositionIndexValues(ws);
    const n = ws ** 3;
    assert.equal(v.length, n * n);
    let m = 0n;
    for (const x of v) if (x > m) m = x;
    assert.equal(m, BigInt(max));
    assert.equal(relativePositionTableRows(ws), max + 1);
    // Token 0 is (0,0,0); token n-1 is (ws-1, ws-1, ws-1): index[0][n-1] has all offsets -(ws-1) -> 0.
    assert.equal(v[n - 1], 0n);
    // index[i][i] = (ws-1) * (3ws-1 + 2ws-1 + 1)
    assert.equal(v[0], BigInt((ws - 1) * (5 * ws - 1)));
    // Token 1 is (0,0,1): index[1][0] = centre + 1 (w offset +1)
    assert.equal(v[n], v[0]! + 1n);
    // Token ws is (0,1,0): index[ws][0] = centre + (2ws-1)
    assert.equal(v[ws * n], v[0]! + BigInt(2 * ws - 1));
  }
});

test('freshly computed relative_position_index buffers equal the fixture checkpoint (ws 6 at e2/e3/d2/d3, fallback ws 4 at e4)', () => {
  const meta = readJson<FixtureMeta>(path.join(pctSmallDir, 'tensors.json'));
  const ref = readSafetensors(path.join(pctSmallDir, 'weights.safetensors')).tensors;
  const net = new PCTNet(optionsFromFixture(meta));
  try {
    let n = 0;
    for (const [k, t] of net.stateDict()) {
      if (!k.endsWith('relative_position_index')) continue;
      const r = ref.get(k)!;
      assert.equal(t.dtype, 'int64');
      assert.deepEqual(t.shape, r.shape, k);
      assert.deepEqual(t.data(), typedView('int64', r.data), k);
      assert.equal(t.shape[0], k.includes('convtrans_e4') ? 64 : 216, k);
      n++;
    }
    assert.equal(n, 10);
  } finally {
    net.dispose();
  }
});
