/**
 * PCT-Net parity with the reference implementation: the small fixture (mode 1, 32x64x64, all three
 * attention code paths) loaded from its state_dict, eval mode, every output and 22 intermediate
 * activations compared.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { assertClose } from '../helpers.js';
import { liveTensors, noGrad } from '../../src/engine/creation.js';
import { dispose } from '../../src/engine/scope.js';
import { loadCheckpointFile, readSafetensors } from '../../src/io/checkpoint/index.js';
import { PCTNet } from '../../src/models/pctnet/index.js';
import { pctSmallDir, readJson, readF32, fixtureTensor, optionsFromFixture, type FixtureMeta } from './helpers.js';

const meta = readJson<FixtureMeta>(path.join(pctSmallDir, 'tensors.json'));
const RTOL = 1e-4, ATOL = 1e-5;

/** Fixture intermediate name -> module path in misfm's PCTNet (mode 1: embeddings.1 / pred_heads.1). */
const TAPS: Record<string, string> = {
  emb_proj: 'embeddings.1.proj', emb_conv0: 'embeddings.1.conv0', emb_down1: 'embeddings.1.down1', emb_conv1: 'embeddings.1.conv1',
  emb_down2: 'embeddings.1.down2', pyr_e2_conv: 'pyramid_ct.convtrans_e2.conv', pyr_e2_trans_block0: 'pyramid_ct.convtrans_e2.trans.blocks.0',
  pyr_e2_trans_block1: 'pyramid_ct.convtrans_e2.trans.blocks.1', pyr_e2: 'pyramid_ct.convtrans_e2', pyr_down3: 'pyramid_ct.down3',
  pyr_e3: 'pyramid_ct.convtrans_e3', pyr_down4: 'pyramid_ct.down4', pyr_e4_trans_block0: 'pyramid_ct.convtrans_e4.trans.blocks.0',
  pyr_e4: 'pyramid_ct.convtrans_e4', pyr_up4: 'pyramid_ct.up4', pyr_d3: 'pyramid_ct.convtrans_d3', pyr_up3: 'pyramid_ct.up3',
  pyr_d2: 'pyramid_ct.convtrans_d2', head_up2: 'pred_heads.1.up2', head_conv1: 'pred_heads.1.conv1', head_up1: 'pred_heads.1.up1',
  head_conv0: 'pred_heads.1.conv0',
};

test('PCT-Net small fixture: outputs and 22 intermediates match the reference (eval)', () => {
  const net = new PCTNet(optionsFromFixture(meta));
  try {
    // Load everything except the relative-position index buffers, so the forward runs on the
    // indices misfm computes itself (they must equal the reference's, see pctnet-params.test).
    const all = readSafetensors(path.join(pctSmallDir, 'weights.safetensors')).tensors;
    const src = new Map([...all].filter(([k]) => !k.endsWith('.relative_position_index')));
    const report = net.loadStateDict(src, { mode: 'filter' });
    assert.equal(report.loaded.length, 684 - 10);
    assert.equal(report.missing.length, 10);
    assert.ok(report.missing.every((k) => k.endsWith('.relative_position_index')));
    assert.equal(report.mismatched.length + report.unexpected.length, 0);
    net.eval();
    const x = fixtureTensor(pctSmallDir, meta, 'input');
    const before = liveTensors();
    const seen = new Map<string, Float32Array>();
    const outs = noGrad(() => net.forwardAll(x, { taps: (name, t) => { seen.set(name, t.dataF32()); } }));
    assert.equal(outs.length, 4);
    outs.forEach((o, i) => {
      const d = meta.tensors[`out${i}`]!;
      assert.deepEqual(o.shape, d.shape, `out${i} shape`);
      assertClose(o.dataF32(), readF32(path.join(pctSmallDir, d.file)), RTOL, ATOL, `out${i}`);
    });
    dispose(outs);
    // Nothing leaks from a forward pass: the only new tensors are the 4 shift masks cached on the
    // first call (e2, d2, e3, d3; e4 falls back to an unshifted window and needs none).
    assert.equal(liveTensors() - before, 4, 'live tensors left by the first forward');
    for (const [file, name] of Object.entries(TAPS)) {
      const got = seen.get(name);
      assert.ok(got !== undefined, `no tap named ${name}`);
      const d = meta.tensors[`intermediates/${file}`]!;
      assertClose(got, readF32(path.join(pctSmallDir, d.file)), RTOL, ATOL, `intermediate ${file} (${name})`);
    }
    x.dispose();
  } finally {
    net.dispose();
  }
});

test('the PyMIC .pt checkpoint of the fixture loads into PCTNet and gives the same out0', async () => {
  const ckpt = await loadCheckpointFile(path.join(pctSmallDir, 'checkpoint_pymic.pt'));
  assert.equal(ckpt.meta.stateDictKey, 'model_state_dict');
  const net = new PCTNet({ ...optionsFromFixture(meta), multiscalePred: false });
  try {
    net.loadStateDict(ckpt.stateDict);
    net.eval();
    const x = fixtureTensor(pctSmallDir, meta, 'input');
    const out = noGrad(() => net.forward(x));
    assert.ok(!Array.isArray(out), 'single output without multiscalePred');
    assertClose(out.dataF32(), readF32(path.join(pctSmallDir, 'out0.bin')), RTOL, ATOL, 'out0 from .pt');
    out.dispose(); x.dispose();
  } finally {
    net.dispose();
  }
});
