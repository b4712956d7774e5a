/**
 * `misfm pretrain --method voco` end to end on tiny data: PCT-Net and SwinUNETR backbones through
 * the shared loader and trainer, exact resume, validation metrics, the reference-layout exports and
 * fine-tuning loading the backbone; plus the per-crop augmentation and the config checks.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { applyOverrides, presetConfig, type RunConfig } from '../../src/config/index.js';
import { pretrain } from '../../src/ssl/pretrain.js';
import { loadCheckpointFile, readTorchFile, type PyDict } from '../../src/io/checkpoint/index.js';
import { initFromCheckpoint } from '../../src/train/init.js';
import { PCTNet } from '../../src/models/pctnet/index.js';
import { SwinUNETR, loadSwinUNETRPretrained } from '../../src/models/swin-unetr/index.js';
import { augmentCrop, rot90HW, TPAMI_AUGMENT } from '../../src/ssl/voco/augment.js';
import { plotRun } from '../../src/cli/commands/plot.js';
import { Rng } from '../../src/util/rng.js';
import { ConfigError } from '../../src/util/errors.js';
import { buildCache, patternCT, tempDir, vol } from '../data/helpers.js';
import { assertClose } from '../helpers.js';

const tmp = tempDir('voco-pretrain');
after(() => rmSync(tmp, { recursive: true, force: true }));

let cache = '';
function tinyCache(): string {
  if (cache !== '') return cache;
  cache = path.join(tmp, 'cache');
  const dhw: [number, number, number] = [20, 70, 70];
  buildCache(cache, ['a', 'b', 'c', 'd'].map((id, i) => ({ id, image: vol(patternCT(dhw).map((v) => v + 100 * i), dhw) })));
  return cache;
}

const PCT = ['model.featureChns=[4,8,16,32,64]', 'model.inputSize=[16,32,32]', 'data.patchSize=[16,32,32]'];
function vocoConfig(extra: string[], iterations: number): RunConfig {
  return applyOverrides(presetConfig('small'), [
    'ssl.method=voco', 'ssl.voco.grid=2', 'ssl.voco.randomCrops=1', 'ssl.voco.hiddenDim=16', 'ssl.voco.outDim=16', 'data.batchSize=2',
    `training.iterations=${iterations}`, 'training.validEvery=2', 'training.saveEvery=1', ...extra,
  ]);
}
function events(runDir: string): Record<string, unknown>[] {
  return readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
}
function losses(d: string): number[] {
  const m = new Map<number, number>();
  for (const e of events(d)) if (e['event'] === 'train') m.set(Number(e['iteration']), Number(e['loss']));
  return [...m.entries()].sort((a, b) => a[0] - b[0]).map(([, l]) => l);
}

test('VoCo pretrains the PCT-Net encoder, resumes exactly, validates, plots and exports both reference layouts', async () => {
  const cfg = vocoConfig(PCT, 3);
  // The VoCo recipe (config/resolve.ts): AdamW amsgrad, warmup (1 step here) then cosine; resume covers its state.
  assert.deepEqual([cfg.training.optimizer, cfg.training.amsgrad, cfg.training.scheduler.kind, cfg.training.scheduler.warmup], ['adamw', true, 'warmup-cosine', 1]);
  const full = path.join(tmp, 'pct-full'), cut = path.join(tmp, 'pct-cut');
  const logs: string[] = [];
  const r = await pretrain({ config: cfg, data: [tinyCache()], runDir: full, quiet: true, validCases: ['d'], validSamples: 1, log: (l) => logs.push(l) });
  assert.equal(r.iterations, 3);
  const opt = readTorchFile(path.join(full, 'checkpoints', 'latest.pt')) as PyDict;
  const group = ((opt.get('optimizer_state_dict') as PyDict).get('param_groups') as PyDict[])[0]!;
  assert.equal(group.get('amsgrad'), true);
  assert.ok(Number.isFinite(r.lastLoss) && r.lastLoss > 0);
  await pretrain({ config: cfg, data: [tinyCache()], runDir: cut, quiet: true, validCases: ['d'], validSamples: 1, stopAt: 1, log: () => {} });
  await pretrain({ config: cfg, data: [tinyCache()], runDir: cut, quiet: true, validCases: ['d'], validSamples: 1, resume: true, log: () => {} });
  assert.deepEqual(losses(cut), losses(full), 'the resumed run repeats the uninterrupted losses');
  const a = await loadCheckpointFile(path.join(full, 'checkpoints', 'latest.pt')), b = await loadCheckpointFile(path.join(cut, 'checkpoints', 'latest.pt'));
  for (const k of ['teacher.layer3.0.weight', 'student.layer1.0.weight', 'backbone.pyramid_ct.down4.conv.2.weight']) {
    assert.deepEqual(a.stateDict.get(k)!.data, b.stateDict.get(k)!.data, `${k} after resume`);
  }
  const valid = events(full).find((e) => e['event'] === 'valid')!;
  for (const k of ['intra', 'inter', 'reg', 'loss', 'position_accuracy']) assert.equal(typeof valid[k], 'number', k);
  assert.ok(Math.abs(Number(valid['score']) + Number(valid['loss'])) < 1e-12, 'score = -loss');
  assert.ok(existsSync(plotRun(full)));
  // Exports: the TPAMI training layout and the backbone alone.
  assert.match(logs.join('\n'), /VoCo exports: .*voco_state\.pt .*backbone\.pt/);
  const st = await loadCheckpointFile(path.join(full, 'checkpoints', 'voco_state.pt'));
  assert.equal(st.meta.stateDictKey, 'state_dict');
  assert.equal(st.meta.iteration ?? 3, 3);
  const keys = [...st.stateDict.keys()];
  assert.ok(keys.every((k) => /^(backbone|student|teacher)\./.test(k)));
  assert.equal(keys.filter((k) => k.startsWith('student.')).length, 6);
  // Fine-tuning takes the backbone: a PCT-Net with another head loads every encoder tensor.
  const net = new PCTNet({ inChannels: 1, classNum: 2, featureChns: [4, 8, 16, 32, 64], inputSize: [16, 32, 32] });
  try {
    const lines: string[] = [];
    const rep = await initFromCheckpoint(net, path.join(full, 'checkpoints', 'backbone.pt'), (l) => lines.push(l));
    assert.ok(rep.loaded.some((k) => k.startsWith('pyramid_ct.convtrans_e4.')));
    assert.ok(rep.loaded.some((k) => k.startsWith('embeddings.1.')));
    assert.equal(rep.unexpected.length, 0);
    // The misfm training checkpoint works as init too (backbone. stripped, projectors reported).
    const rep2 = await initFromCheckpoint(net, path.join(full, 'checkpoints', 'latest.pt'), (l) => lines.push(l));
    assert.equal(rep2.loaded.length, rep.loaded.length);
    assert.equal(rep2.unexpected.length, 12);
  } finally { net.dispose(); }
});

test('VoCo pretrains a SwinUNETR encoder (64³ crops); backbone.pt is the released layout SwinUNETR loads', async () => {
  const cfg = vocoConfig(['model={"name":"swinunetr","inChannels":1,"classNum":2,"featureSize":12,"useV2":true,"windowSize":4}',
    'data.patchSize=[64,64,64]', 'training.deepSupervision.enabled=false', 'training.activationCheckpointing=false'], 1);
  const runDir = path.join(tmp, 'swin');
  const r = await pretrain({ config: cfg, data: [tinyCache()], runDir, quiet: true, validCases: ['d'], validSamples: 1, log: () => {} });
  assert.equal(r.iterations, 1);
  const st = await loadCheckpointFile(path.join(runDir, 'checkpoints', 'voco_state.pt'));
  assert.equal(st.stateDict.size, 145 + 12, 'TPAMI layout: 145 backbone + 6 student + 6 teacher entries');
  const net = new SwinUNETR({ inChannels: 1, classNum: 3, featureSize: 12, useV2: true, windowSize: 4 });
  try {
    const rep = await loadSwinUNETRPretrained(net, path.join(runDir, 'checkpoints', 'backbone.pt'));
    assert.equal(rep.loaded.length, 145);
    assert.equal(rep.unexpected.length, 0);
    assert.equal(rep.missing.length, 22);
  } finally { net.dispose(); }
});

test('per-crop augmentation: rotations and flips permute voxels; the shift moves all values by one offset', () => {
  const d = 3, s = 4;
  const crop = Float32Array.from({ length: d * s * s }, (_, i) => i);
  assert.deepEqual(rot90HW(rot90HW(crop, d, s, 3), d, s, 1), crop);
  const r1 = rot90HW(crop, d, s, 1);
  assert.notDeepEqual(r1, crop);
  assert.equal(r1[(0 * s + 0) * s + 0], crop[(0 * s + 0) * s + (s - 1)]);
  const sorted = (a: Float32Array): number[] => [...a].sort((x, y) => x - y);
  const rng = new Rng(9);
  let shifted = 0, changed = 0;
  for (let t = 0; t < 200; t++) {
    const out = augmentCrop(crop, d, s, rng, TPAMI_AUGMENT);
    const diff = sorted(out)[0]!; // the crop's minimum is 0, so this is the offset
    if (Math.abs(diff) > 1e-6) {
      shifted++;
      assert.ok(Math.abs(diff) <= 0.1 + 1e-6);
      assertClose(sorted(out).map((v) => v - diff), sorted(crop), 0, 1e-5, 'shifted values');
    } else assert.deepEqual(sorted(out), sorted(crop));
    if (out !== crop) changed++;
  }
  assert.ok(shifted > 70 && shifted < 130, `shift fired ${shifted}/200 (p 0.5)`);
  assert.ok(changed > shifted);
});

test('VoCo config checks name the key', () => {
  const bad = (extra: string[], key: string, re: RegExp): void => {
    assert.throws(() => vocoConfig(extra, 1), (e: unknown) => e instanceof ConfigError && e.path === key && re.test(e.message), key);
  };
  bad([...PCT, 'data.batchSize=1'], 'data.batchSize', /at least 2 volumes/);
  bad(['model.featureChns=[4,8,16,32,64]', 'model.inputSize=[16,32,48]', 'data.patchSize=[16,32,48]'], 'data.patchSize', /square/);
  bad(['model.name=unet3d', 'data.patchSize=[16,32,32]'], 'model.name', /VoCo backbones/);
  bad([...PCT, 'ssl.voco.featureDropout=1'], 'ssl.voco.featureDropout', /./);
  bad(['model={"name":"swinunetr","inChannels":1,"classNum":2,"featureSize":12}', 'data.patchSize=[32,32,32]', 'training.deepSupervision.enabled=false'], 'data.patchSize', /at least 64/);
});
