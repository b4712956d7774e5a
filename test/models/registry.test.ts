/**
 * Model configs, presets and the registry; loading pretrained weights across class counts and
 * input sizes; inferring an architecture from a state dict.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import type { Tensor } from '../../src/engine/tensor.js';
import { MisfmError } from '../../src/util/errors.js';
import { readSafetensors } from '../../src/io/checkpoint/index.js';
import {
  PCTNet, UNet3D, FMUNet, createModel, configOf, preset, PRESETS, resolveModelConfig, fromPymicNetworkSection,
  loadPretrained, formatPretrainedReport, inferArchitecture,
} from '../../src/models/index.js';
import { paramLists, pctSmallDir, shapeOnly } from './helpers.js';

function configError(fn: () => unknown, pathRe: RegExp, msgRe: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof MisfmError && e.code === 'CONFIG', `expected a CONFIG error, got ${String(e)}`);
    assert.match(e.message, pathRe);
    assert.match(e.message, msgRe);
    return true;
  });
}

test('presets: the paper configuration and a small CPU one; configOf round-trips through JSON', () => {
  const paper = resolveModelConfig(preset('pctnet-paper'));
  assert.equal(paper.name, 'pctnet');
  if (paper.name !== 'pctnet') return;
  assert.deepEqual(paper.featureChns, [24, 48, 128, 256, 512]);
  assert.deepEqual(paper.inputSize, [64, 128, 128]);
  assert.equal(paper.resolutionMode, 1);
  assert.equal(paper.classNum, 5);
  const net = createModel(preset('pctnet-small', { classNum: 2 }));
  try {
    assert.ok(net instanceof PCTNet);
    assert.equal(net.classNum, 2);
    const json = JSON.stringify(configOf(net));
    const again = createModel(JSON.parse(json));
    try {
      assert.deepEqual([...again.stateDict()].map(([k, t]) => [k, t.shape]), [...net.stateDict()].map(([k, t]) => [k, t.shape]));
    } finally { again.dispose(); }
  } finally { net.dispose(); }
  for (const name of Object.keys(PRESETS)) assert.doesNotThrow(() => resolveModelConfig(PRESETS[name]), name);
});

test('config validation names the key, the allowed values, and suggests near misses', () => {
  configError(() => resolveModelConfig({ name: 'pctnt' }), /network\.name/, /did you mean 'pctnet'/);
  configError(() => resolveModelConfig({ ...PRESETS['pctnet-small'], featureChn: [1, 2, 3, 4, 5] }), /network\.featureChn/, /did you mean 'featureChns'/);
  configError(() => resolveModelConfig({ ...PRESETS['pctnet-small'], resolutionMode: 5 }), /network\.resolutionMode/, /0, 1 or 2/);
  configError(() => resolveModelConfig({ name: 'unet3d', inChannels: 1, classNum: 2, upMode: 'bicubic' }), /network\.upMode/, /'trilinear'/);
  configError(() => resolveModelConfig({ name: 'fmunet', inChannels: 1, classNum: 2, resMode: 4 }), /network\.resMode/, /0, 1 or 2/);
  configError(() => resolveModelConfig('pctnet'), /network/, /must be an object/);
  assert.throws(() => preset('pctnet-large'), (e: unknown) => e instanceof MisfmError && /unknown model preset 'pctnet-large'.*did you mean/.test(e.message));
});

test("PyMIC's [network] section converts to a misfm config", () => {
  const c = fromPymicNetworkSection({
    net_type: 'PCTNet', class_num: 2, in_chns: 1, input_size: [64, 128, 128], feature_chns: [24, 48, 128, 256, 512],
    dropout: [0, 0, 0.2, 0.2, 0.2], resolution_mode: 1, multiscale_pred: true,
  });
  assert.deepEqual(c, {
    name: 'pctnet', inChannels: 1, classNum: 2, inputSize: [64, 128, 128], featureChns: [24, 48, 128, 256, 512], dropout: [0, 0, 0.2, 0.2, 0.2],
    depths: [2, 2, 2], numHeads: [4, 8, 16], windowSizes: [6, 6, 6], resolutionMode: 1, multiscalePred: true,
  });
  const u = fromPymicNetworkSection({ net_type: 'UNet3D', class_num: 5, in_chns: 1, feature_chns: [32, 64, 128, 256, 512], dropout: [0, 0, 0.2, 0.2, 0.2], up_mode: 2 });
  assert.equal(u.name, 'unet3d');
  configError(() => fromPymicNetworkSection({ net_type: 'PCTNet', class_num: 2, in_chns: 1, input_size: [16, 32, 32], featur_chns: [1] }), /network\.featur_chns/, /did you mean 'feature_chns'/);
  configError(() => fromPymicNetworkSection({ net_type: 'UNet2D' }), /network\.net_type/, /not supported/);
});

test('loadPretrained: a 5-class checkpoint into a 2-class model re-initialises exactly the output convolutions', () => {
  const src = readSafetensors(path.join(pctSmallDir, 'weights.safetensors')).tensors;
  const net = createModel(preset('pctnet-small', { classNum: 2 })) as PCTNet;
  try {
    const before = net.pyramidCt.outConv2.conv.at(2).stateDict().get('weight')!.dataF32();
    const r = loadPretrained(net, src);
    assert.equal(r.reinitialised.length, 16); // 8 output convs (3 heads x 2, pyramid x 2), weight + bias
    assert.ok(r.reinitialised.every((k) => /out_conv\d\.conv\.2\.(weight|bias)$/.test(k)));
    assert.equal(r.loaded.length, 684 - 16);
    assert.deepEqual([r.missing, r.unexpected, r.mismatched, r.excluded], [[], [], [], []]);
    const after = net.pyramidCt.outConv2.conv.at(2).stateDict().get('weight')!.dataF32();
    assert.notDeepEqual(after, before, 'head weights were drawn afresh');
    const loadedKey = 'pyramid_ct.convtrans_e3.trans.blocks.1.attn.relative_position_bias_table';
    const mine = net.stateDict().get(loadedKey)!.dataF32();
    const theirs = new Float32Array(src.get(loadedKey)!.data.slice().buffer);
    assert.deepEqual(mine, theirs);
    assert.match(formatPretrainedReport(r), /re-initialised 16 output-layer tensors/);
  } finally { net.dispose(); }
});

test('loadPretrained: other input sizes keep mismatched attention tables, and strict mode refuses them', () => {
  const src = readSafetensors(path.join(pctSmallDir, 'weights.safetensors')).tensors;
  // At 16x32x32 (mode 1) level 3 is 4^3, so e3/d3 fall back to window 4: their tables differ.
  const net = createModel(preset('pctnet-small', { inputSize: [16, 32, 32] })) as PCTNet;
  try {
    const r = loadPretrained(net, src);
    const keys = r.mismatched.map((m) => m.key).sort();
    assert.ok(keys.length > 0 && keys.every((k) => /convtrans_(e3|d3|e4)\.trans\.blocks\.\d\.attn\.relative_position_(bias_table|index)$/.test(k)), keys.join(', '));
    assert.equal(r.reinitialised.length, 0);
    assert.throws(() => loadPretrained(net, src, { strict: true }), (e: unknown) => e instanceof MisfmError && e.code === 'STATE_DICT' && /relative_position_bias_table/.test(e.message));
    const enc = loadPretrained(net, src, { include: (k) => k.startsWith('embeddings.') });
    assert.ok(enc.loaded.length > 0 && enc.loaded.every((k) => k.startsWith('embeddings.')));
    assert.equal(enc.excluded.length + enc.loaded.length, src.size);
  } finally { net.dispose(); }
});

test('inferArchitecture reads network type and config from names and shapes', () => {
  const lists = paramLists().lists;
  const sd = (key: string): Map<string, ReturnType<typeof shapeOnly>> => new Map(lists[key]!.map((e) => [e.name, shapeOnly(e.shape, e.dtype as 'float32')]));

  const p1 = inferArchitecture(sd('pctnet_paper_mode1_cls5_in64x128x128'));
  assert.equal(p1.name, 'pctnet');
  assert.deepEqual(p1.config, { inChannels: 1, featureChns: [24, 48, 128, 256, 512], classNum: 5, depths: [2, 2, 2], numHeads: [4, 8, 16], windowSizes: [6, 6, 6] });
  assert.ok('resolutionMode' in p1.unknown && 'inputSize' in p1.unknown);
  const p0 = inferArchitecture(sd('pctnet_paper_mode0_cls5_in64x128x128'));
  assert.ok(p0.notes.some((n) => /level 4: window 4, so min\(level-4 resolution\) = 4/.test(n)), p0.notes.join('\n'));

  const u = inferArchitecture(sd('unet3d_pymic_v050_cls5'));
  assert.deepEqual([u.name, u.keyLayout], ['unet3d', 'v0.5']);
  assert.deepEqual(u.config, { featureChns: [32, 64, 128, 256, 512], inChannels: 1, classNum: 5, normType: 'batch_norm', multiscalePred: false, upMode: 'trilinear' });
  assert.equal(inferArchitecture(sd('unet3d_pymic_v040_cls5')).keyLayout, 'v0.4');

  const f = inferArchitecture(sd('fmunet_cls2'));
  assert.equal(f.name, 'fmunet');
  assert.deepEqual(f.config, { inChannels: 1, featureChns: [32, 64, 128, 256, 512], classNum: 2, depth: 2, resMode: 0 });
  // Completed with its unknowns' defaults, the inferred config rebuilds the same layout.
  const rebuilt = createModel({ name: 'fmunet', ...f.config }) as FMUNet;
  try {
    assert.deepEqual([...rebuilt.stateDict()].map(([k, t]: [string, Tensor]) => [k, t.shape]), lists['fmunet_cls2']!.map((e) => [e.name, e.shape]));
  } finally { rebuilt.dispose(); }
  const un = createModel({ name: 'unet3d', ...u.config }) as UNet3D;
  un.dispose();

  const none = inferArchitecture(new Map([['foo.weight', shapeOnly([1])]]));
  assert.equal(none.name, null);
  assert.match(none.notes[0]!, /no known network/);
});
