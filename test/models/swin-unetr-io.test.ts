/**
 * SwinUNETR around the rest of misfm: VoCo-style checkpoints load with a report of what was
 * skipped, `misfm inspect` recognises SwinUNETR and VoCo layouts, a tiny fine-tuning run trains
 * and predicts, and the checkpoint misfm writes loads in PyTorch with the same names, shapes and values.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { existsSync, rmSync } from 'node:fs';
import { manualSeed } from '../../src/engine/creation.js';
import { PyDict, saveTorchCheckpoint, loadCheckpointFile } from '../../src/io/checkpoint/index.js';
import { tensorToRaw } from '../../src/nn/module.js';
import { SwinUNETR, SwinVoCoBackbone, loadSwinUNETRPretrained } from '../../src/models/swin-unetr/index.js';
import { inspectCheckpoint } from '../../src/cli/commands/inspect.js';
import { initFromCheckpoint } from '../../src/train/init.js';
import { applyOverrides, presetConfig } from '../../src/config/index.js';
import { finetune } from '../../src/train/finetune.js';
import { loadModelForInference } from '../../src/infer/model.js';
import { predictCase } from '../../src/infer/predict.js';
import { readImage } from '../../src/io/image/index.js';
import { ConfigError } from '../../src/util/errors.js';
import { createModel } from '../../src/models/registry.js';
import { buildCache, patternCT, tempDir, vol } from '../data/helpers.js';
import { writeVolume } from '../infer/helpers.js';
import { hasPythonTorch, runPython } from '../helpers.js';

const tmp = tempDir('swinunetr');
after(() => rmSync(tmp, { recursive: true, force: true }));
const SMALL = { inChannels: 1, featureSize: 12, useV2: true } as const;

/** A VoCo pretraining state in the reference's DDP layout: module.backbone.*, module.student.*, module.teacher.*. */
function writeVoCoTrainingCheckpoint(file: string, top: string, backbone: SwinVoCoBackbone): void {
  const sd = new PyDict([], true);
  for (const [k, t] of backbone.stateDict('module.backbone')) sd.set(k, tensorToRaw(t));
  for (const h of ['student', 'teacher']) for (const l of [1, 2, 3]) {
    sd.set(`module.${h}.layer${l}.0.weight`, { dtype: 'float32', shape: [4, l === 1 ? 288 : 4], data: new Uint8Array(4 * 4 * (l === 1 ? 288 : 4)) });
    sd.set(`module.${h}.layer${l}.0.bias`, { dtype: 'float32', shape: [4], data: new Uint8Array(16) });
  }
  saveTorchCheckpoint(file, new PyDict([['global_step', 7], [top, sd]]));
}

test('VoCo training checkpoints load into SwinUNETR by VoCo\'s rule, with every skipped key reported', async () => {
  manualSeed(1);
  const bb = new SwinVoCoBackbone(SMALL);
  const file = path.join(tmp, 'voco_ddp.pt');
  writeVoCoTrainingCheckpoint(file, 'state_dict', bb);
  const net = new SwinUNETR({ ...SMALL, classNum: 3 });
  const net2 = new SwinUNETR({ ...SMALL, inChannels: 2, classNum: 3 });
  try {
    const r = await loadSwinUNETRPretrained(net, file);
    assert.equal(r.source, 'state_dict');
    assert.deepEqual(r.renamed, ["removed 'module.'", "removed 'backbone.'"]);
    assert.equal(r.loaded.length, 145);
    assert.equal(r.unexpected.length, 12, 'student/teacher projectors are reported');
    assert.ok(r.unexpected.every((k) => /^(student|teacher)\.layer\d\.0\./.test(k)));
    assert.equal(r.missing.length, 22, 'decoder5..1 and out stay at their initial values');
    assert.ok(r.missing.every((k) => /^(decoder\d|out)\./.test(k)));
    const a = bb.stateDict().get('encoder10.layer.conv2.conv.weight')!.dataF32();
    assert.deepEqual(net.stateDict().get('encoder10.layer.conv2.conv.weight')!.dataF32(), a);
    // Another in_channels: VoCo's loader silently drops these three; misfm names them.
    const r2 = await loadSwinUNETRPretrained(net2, file);
    assert.deepEqual(r2.mismatched.map((m) => m.key).sort(), ['encoder1.layer.conv1.conv.weight', 'encoder1.layer.conv3.conv.weight', 'swinViT.patch_embed.proj.weight']);
    assert.equal(r2.loaded.length, 142);
    // `network_weights` (one of the keys VoCo's loader tries) through the training init path.
    const file2 = path.join(tmp, 'voco_nw.pt');
    writeVoCoTrainingCheckpoint(file2, 'network_weights', bb);
    const lines: string[] = [];
    const rep = await initFromCheckpoint(net, file2, (l) => lines.push(l));
    assert.equal(rep.loaded.length, 145);
    assert.match(lines.join('\n'), /VoCo key layout .*removed 'module\.', removed 'backbone\.'/);
    assert.match(lines.join('\n'), /not in the model \(12\)/);
    assert.match(lines.join('\n'), /missing from the checkpoint \(22\)/);
    // misfm inspect recognises the layout and the network.
    const text = await inspectCheckpoint(file);
    assert.match(text, /architecture: +swinunetr/);
    assert.match(text, /featureSize: 12/);
    assert.match(text, /useV2: true/);
    assert.match(text, /depths: \[2,2,2,2\]/);
    assert.match(text, /classNum: not determined \(encoder-only weights/);
    assert.match(text, /VoCo checkpoint layout/);
  } finally { bb.dispose(); net.dispose(); net2.dispose(); }
});

test('inspect reads a released-layout file (top-level swinViT.*/encoder* tensors) and a full SwinUNETR', async () => {
  const net = new SwinUNETR({ ...SMALL, classNum: 4 });
  try {
    const released = path.join(tmp, 'released.pt');
    const sd = new PyDict([], true);
    for (const [k, t] of net.stateDict()) if (/^(swinViT|encoder\d+)\./.test(k)) sd.set(k, tensorToRaw(t));
    saveTorchCheckpoint(released, sd);
    const a = await inspectCheckpoint(released);
    assert.match(a, /architecture: +swinunetr/);
    assert.doesNotMatch(a, /VoCo checkpoint layout/);
    const full = path.join(tmp, 'full.pt');
    saveTorchCheckpoint(full, new PyDict([['state_dict', new PyDict([...net.stateDict()].map(([k, t]) => [k, tensorToRaw(t)]), true)]]));
    assert.match(await inspectCheckpoint(full), /classNum: 4/);
  } finally { net.dispose(); }
});

test('config: swinunetr through createModel, multiples of 32 enforced, no deep supervision', () => {
  const base = presetConfig('small-finetune');
  const model = '{"name":"swinunetr","inChannels":1,"classNum":2,"featureSize":12,"useV2":true}';
  assert.throws(() => applyOverrides(base, [`model=${model}`, 'data.patchSize=[16,32,32]', 'inference.window=[32,32,32]', 'training.deepSupervision.enabled=false']),
    (e: unknown) => e instanceof ConfigError && /data\.patchSize/.test(e.message) && /multiple of 32/.test(e.message));
  assert.throws(() => applyOverrides(base, [`model=${model}`, 'data.patchSize=[32,32,32]', 'inference.window=[32,32,32]', 'training.deepSupervision.enabled=true']),
    (e: unknown) => e instanceof ConfigError && /deepSupervision/.test(e.message));
  const cfg = applyOverrides(base, [`model=${model}`, 'data.patchSize=[32,32,32]', 'inference.window=[32,32,32]', 'training.deepSupervision.enabled=false']);
  const net = createModel(cfg.model);
  try { assert.ok(net instanceof SwinUNETR); assert.equal(net.classNum, 2); } finally { net.dispose(); }
});

test('a tiny SwinUNETR fine-tuning run trains, predicts a NIfTI, and its checkpoint loads in PyTorch with identical names, shapes and values', async () => {
  const dhw: [number, number, number] = [20, 36, 36];
  const cache = path.join(tmp, 'cache');
  buildCache(cache, ['a', 'b', 'c'].map((id, i) => {
    const img = patternCT(dhw).map((v) => Math.round(v / 10) - 300), lab = new Uint8Array(img.length);
    for (let z = 4 + i; z < 14; z++) for (let y = 8; y < 24; y++) for (let x = 6 + i; x < 26; x++) { const j = (z * dhw[1] + y) * dhw[2] + x; img[j] = 400; lab[j] = 1; }
    return { id, image: vol(img, dhw), label: vol(lab, dhw) };
  }));
  const cfg = applyOverrides(presetConfig('small-finetune'), [
    'model={"name":"swinunetr","inChannels":1,"classNum":2,"featureSize":12,"useV2":true,"windowSize":4}',
    'data.patchSize=[32,32,32]', 'inference.window=[32,32,32]', 'training.deepSupervision.enabled=false',
    'data.labels={"values":[1],"names":["box"]}', 'training.iterations=2', 'training.validEvery=2', 'training.saveEvery=2']);
  const runDir = path.join(tmp, 'ft');
  const r = await finetune({ config: cfg, data: [cache], runDir, quiet: true, validCases: ['c'], log: () => {} });
  assert.equal(r.iterations, 2);
  assert.ok(Number.isFinite(r.lastLoss));
  const bundle = await loadModelForInference(r.checkpoints.latest);
  try {
    assert.ok(bundle.model instanceof SwinUNETR);
    const input = path.join(tmp, 'in.nii.gz'), output = path.join(tmp, 'out.nii.gz');
    await writeVolume(input, [40, 30, 21], (i, j, k) => (i > 8 && i < 28 && j > 6 && k > 4 && k < 15 ? 400 : -300));
    await predictCase(bundle, input, output, { sidecar: false });
    const out = await readImage(output);
    assert.deepEqual(out.size, [40, 30, 21]);
    assert.ok([...new Set(out.data)].every((v) => v === 0 || v === 1));
  } finally { bundle.model.dispose(); }

  if (!hasPythonTorch()) return;
  const ck = await loadCheckpointFile(r.checkpoints.latest);
  const py = runPython(`
import torch, json, sys
sd = torch.load(sys.argv[1])['model_state_dict']
print(json.dumps([[k, list(v.shape), str(v.dtype), float(v.double().sum()), float(v.flatten()[0])] for k, v in sd.items()]))`, [r.checkpoints.latest]) as [string, number[], string, number, number][];
  const mine = [...ck.stateDict].map(([k, t]) => {
    const n = t.shape.reduce((a, b) => a * b, 1);
    const vals = t.dtype === 'int64' ? [...new BigInt64Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + n * 8))].map(Number)
      : [...new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + n * 4))];
    return { k, shape: t.shape, dtype: t.dtype === 'int64' ? 'torch.int64' : 'torch.float32', sum: vals.reduce((a, b) => a + b, 0), first: vals[0]! };
  });
  assert.deepEqual(py.map((p) => p[0]), mine.map((m) => m.k), 'names and order');
  assert.equal(py.length, 167 - 0, 'a full SwinUNETR-v2 state dict');
  py.forEach((p, i) => {
    const m = mine[i]!;
    assert.deepEqual(p[1], m.shape, `${m.k} shape`);
    assert.equal(p[2], m.dtype, `${m.k} dtype`);
    assert.ok(Math.abs(p[3] - m.sum) <= 1e-6 * Math.max(1, Math.abs(m.sum)) + 1e-3, `${m.k} sum ${p[3]} vs ${m.sum}`);
    assert.equal(p[4], Math.fround(m.first), `${m.k} first value`);
  });
  assert.ok(existsSync(path.join(runDir, 'metrics.jsonl')));
});
