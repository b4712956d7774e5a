import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadModelForInference } from '../../src/infer/model.js';
import path from 'node:path';
import { applyOverrides, presetConfig } from '../../src/config/index.js';
import { finetune } from '../../src/train/finetune.js';
import { pretrain } from '../../src/ssl/pretrain.js';
import { initMismatches } from '../../src/train/init.js';
import { loadCheckpointFile } from '../../src/io/checkpoint/index.js';
import { MisfmError } from '../../src/util/errors.js';
import type { RunConfig } from '../../src/config/types.js';

type RunConfigData = RunConfig['data'];
import { buildCache, patternCT, tempDir, vol } from '../data/helpers.js';

const tmp = tempDir('finetune');
after(() => rmSync(tmp, { recursive: true, force: true }));

const TINY = ['model.featureChns=[4,8,16,32,64]', 'model.inputSize=[16,32,32]', 'data.patchSize=[16,32,32]', 'inference.window=[16,32,32]'];
const dhw: [number, number, number] = [20, 36, 36];

/** Scans with a bright box labelled 7 (and a value 9 that the class list leaves out). */
function labelledCache(dir: string): void {
  buildCache(dir, ['a', 'b', 'c'].map((id, i) => {
    const img = patternCT(dhw).map((v) => Math.round(v / 10) - 300), lab = new Uint8Array(img.length);
    for (let z = 4 + i; z < 14; z++) for (let y = 8; y < 24; y++) for (let x = 6 + i; x < 26; x++) { const j = (z * dhw[1] + y) * dhw[2] + x; img[j] = 400; lab[j] = 7; }
    lab[0] = 9;
    return { id, image: vol(img, dhw), label: vol(lab, dhw) };
  }));
}

test('fine-tuning: explicit validation cases, label values mapped to classes, a VolF checkpoint as init with its head re-initialised', async () => {
  const cache = path.join(tmp, 'cache');
  labelledCache(cache);
  // Record a 2 mm spacing as if `misfm prepare --spacing 2,2,2` had made the cache.
  const mf = path.join(cache, 'manifest.json');
  writeFileSync(mf, JSON.stringify({ ...JSON.parse(readFileSync(mf, 'utf8')), preprocess: { reorient: 'LPS', bodyCrop: false, spacing: [2, 2, 2] } }));
  // A 2-iteration Volume Fusion run gives the 5-class checkpoint to start from.
  const pcfg = applyOverrides(presetConfig('small'), [...TINY, 'ssl.blocks.sizeMax=[10,20,20]', 'training.iterations=2', 'training.validEvery=2', 'training.saveEvery=2']);
  const pre = await pretrain({ config: pcfg, data: [cache], runDir: path.join(tmp, 'pre'), quiet: true, validSamples: 1, log: () => {} });
  const lines: string[] = [];
  const cfg = applyOverrides(presetConfig('small-finetune'), [...TINY, 'data.labels={"values":[7],"names":["box"]}', 'model.classNum=2',
    'training.iterations=3', 'training.validEvery=3', 'training.saveEvery=3', `training.initCheckpoint=${JSON.stringify(pre.checkpoints.latest)}`, 'data.foregroundOversample=1']);
  const runDir = path.join(tmp, 'ft');
  // data.intensity set explicitly: kept (and the difference named); the spacing is adopted from the checkpoint.
  const r = await finetune({ config: cfg, data: [cache], runDir, quiet: true, validCases: ['c'], log: (l) => lines.push(l), explicit: ['intensity'] });
  assert.deepEqual(r.trainCases, ['a', 'b']);
  assert.deepEqual(r.validCases, ['c']);
  assert.deepEqual(r.classNames, ['box']);
  assert.equal(r.iterations, 3);
  const report = lines.join('\n');
  assert.match(report, /re-initialised \d+ output-layer tensors \(class count differs\)/);
  assert.match(report, /loaded \d+ tensors/);
  // The small presets pretrain on a CT window and fine-tune on z-scores: the difference is named.
  assert.match(report, /note: data\.intensity: pretrained with \{"kind":"ct-window","window":\[-1000,1000\]\}, this run uses \{"kind":"zscore"\}/);
  assert.doesNotMatch(report, /voxel spacing/, 'same cache, same spacing: no note');
  assert.match(report, /adopted data\.spacing: 2,2,2 mm as .* was trained at/);
  assert.doesNotMatch(report, /adopted data\.intensity/);
  assert.deepEqual((JSON.parse(readFileSync(path.join(runDir, 'config.json'), 'utf8')) as RunConfig).data.spacing, [2, 2, 2]);
  const events = readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const valid = events.find((e) => e['event'] === 'valid')!;
  assert.equal(typeof valid['dice_box'], 'number');
  assert.ok((valid['dice_box'] as number) >= 0 && (valid['dice_box'] as number) <= 1);
  assert.ok(existsSync(r.checkpoints.latest));
  // The checkpoint carries the config (classes, label values) so it alone rebuilds the model.
  const ck = await loadCheckpointFile(r.checkpoints.latest);
  assert.equal(ck.stateDict.get('pyramid_ct.out_conv2.conv.2.bias')?.shape[0] ?? ck.stateDict.get('pred_heads.0.out_conv0.conv.2.bias')?.shape[0], 2);
  // ... and the cache's preprocessing, which prediction applies to new scans.
  const bundle = await loadModelForInference(r.checkpoints.latest);
  try {
    assert.equal(bundle.provenance.preprocessSource, 'config data.preprocess');
    assert.deepEqual(bundle.preprocess.spacing, [2, 2, 2]);
  } finally { bundle.model.dispose(); }
});

test('fine-tuning rejects unknown validation cases, a wrong task and --resume without a checkpoint', async () => {
  const cache = path.join(tmp, 'cache2');
  labelledCache(cache);
  const cfg = applyOverrides(presetConfig('small-finetune'), [...TINY, 'training.iterations=1']);
  const is = (code: string, re: RegExp) => (e: unknown): boolean => e instanceof MisfmError && e.code === code && re.test(e.message);
  await assert.rejects(finetune({ config: cfg, data: [cache], runDir: path.join(tmp, 'e1'), quiet: true, validCases: ['zz'], log: () => {} }),
    is('ARGUMENT', /validation case\(s\) not in the dataset: zz \(cases: a, b, c\)/));
  await assert.rejects(finetune({ config: cfg, data: [cache], runDir: path.join(tmp, 'e2'), quiet: true, validCases: ['a', 'b', 'c'], log: () => {} }),
    is('ARGUMENT', /every case is validation/));
  await assert.rejects(finetune({ config: presetConfig('small'), data: [cache], runDir: path.join(tmp, 'e3'), quiet: true, log: () => {} }),
    is('CONFIG', /task must be 'finetune' for misfm train, got 'pretrain'/));
  await assert.rejects(finetune({ config: cfg, data: [cache], runDir: path.join(tmp, 'e4'), quiet: true, resume: true, log: () => {} }),
    is('DATA', /--resume: no checkpoint to resume from/));
});

test('init mismatches: intensity and spacing differences are named, equal settings and foreign checkpoints are silent', () => {
  const ct = { kind: 'ct-window' as const, window: [-1000, 1000] as [number, number] };
  const data = (intensity: unknown, spacing: unknown): { data: Record<string, unknown> } =>
    ({ data: { intensity, preprocess: { reorient: 'LPS', bodyCrop: false, spacing } } });
  const run = (intensity: RunConfigData['intensity'], spacing: [number, number, number] | null): { data: RunConfigData } =>
    ({ data: { ...presetConfig('small').data, intensity, preprocess: { reorient: 'LPS', bodyCrop: false, spacing } } });
  assert.deepEqual(initMismatches(data(ct, [2, 2, 2]), run(ct, [2, 2, 2])), []);
  assert.deepEqual(initMismatches(data(ct, [2, 2, 2]), run(ct, null)), ['voxel spacing: pretrained on [2,2,2] mm, this run uses native spacing']);
  assert.deepEqual(initMismatches(data(ct, null), run({ kind: 'zscore' }, [1.5, 1, 1])), [
    'data.intensity: pretrained with {"kind":"ct-window","window":[-1000,1000]}, this run uses {"kind":"zscore"}',
    'voxel spacing: pretrained on native spacing, this run uses [1.5,1,1] mm',
  ]);
  assert.deepEqual(initMismatches({}, run({ kind: 'zscore' }, [2, 2, 2])), [], 'nothing recorded: nothing to compare');
});
