import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import os from 'node:os';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { importPymicConfig, loadConfig, parsePymicCfg, parsePymicValue, schedulerPlan } from '../../src/config/index.js';
import { ConfigError, MisfmError } from '../../src/util/errors.js';
import { repoRoot } from '../helpers.js';

const cfgDir = path.join(repoRoot, 'test', 'config');
const reasonOf = (ignored: { key: string; reason: string }[], key: string): string | undefined => ignored.find((i) => i.key === key)?.reason;

test('PyMIC value parsing: int, float, list, bool, None, string', () => {
  assert.equal(parsePymicValue('42'), 42);
  assert.equal(parsePymicValue('-3'), -3);
  assert.equal(parsePymicValue('1e-3'), 1e-3);
  assert.equal(parsePymicValue('0.5'), 0.5);
  assert.equal(parsePymicValue('1.5e-4'), 1.5e-4);
  assert.deepEqual(parsePymicValue('[64, 128,128]'), [64, 128, 128]);
  assert.deepEqual(parsePymicValue('[RandomCrop, RandomFlip]'), ['RandomCrop', 'RandomFlip']);
  assert.deepEqual(parsePymicValue('[[1, 2], [3, None]]'), [[1, 2], [3, null]]);
  assert.deepEqual(parsePymicValue('[]'), []);
  assert.equal(parsePymicValue('True'), true);
  assert.equal(parsePymicValue('false'), false);
  assert.equal(parsePymicValue('None'), null);
  assert.equal(parsePymicValue('./model/x.pt'), './model/x.pt');
  assert.equal(parsePymicValue('PolynomialLR'), 'PolynomialLR');
});

test('INI structure: lower-cased keys, comments, continuation lines, empty values, errors with line numbers', () => {
  const cfg = parsePymicCfg('# top\n[a]\nCamelKey = 1\n; note\nlist = [1,\n   2, 3]\nempty =\nColon: x y\n[b]\nk=[True, 2.5]\n');
  assert.deepEqual(cfg, { a: { camelkey: 1, list: [1, 2, 3], colon: 'x y' }, b: { k: [true, 2.5] } });
  assert.throws(() => parsePymicCfg('k = 1\n', 'x.cfg'), (e: unknown) => e instanceof MisfmError && /x\.cfg: line 1: key "k" comes before any \[section\]/.test(e.message));
  assert.throws(() => parsePymicCfg('[a]\nK = 1\nk = 2\n', 'x.cfg'), /line 3: key 'k' appears twice in \[a\]/);
  assert.throws(() => parsePymicCfg('[a]\n[a]\n', 'x.cfg'), /line 2: section \[a\] appears twice/);
  assert.throws(() => parsePymicCfg('[a]\njust words\n', 'x.cfg'), /line 2: expected 'key = value'/);
});

test('fine-tuning cfg (MIS-FM demo/pctnet_pretrain.cfg, spec 3.1) imports with the demo settings', () => {
  const file = path.join(cfgDir, 'pctnet_pretrain.cfg');
  const { config: c, ignored, format } = loadConfig(file);
  assert.equal(format, 'pymic');
  assert.equal(c.task, 'finetune');
  assert.equal(c.model.name, 'pctnet');
  assert.equal(c.model.classNum, 2);
  if (c.model.name === 'pctnet') {
    assert.deepEqual(c.model.featureChns, [24, 48, 128, 256, 512]);
    assert.deepEqual(c.model.inputSize, [64, 128, 128]);
    assert.equal(c.model.resolutionMode, 1);
    assert.equal(c.model.multiscalePred, true);
  }
  assert.deepEqual(c.data.patchSize, [64, 128, 128]);
  assert.equal(c.data.batchSize, 2);
  assert.equal(c.data.numWorkers, 4);
  assert.equal(c.data.folder, '../../PyMIC_data/AtriaSeg/TrainingSet_crop');
  assert.deepEqual(c.data.intensity, { kind: 'zscore' });
  assert.deepEqual(c.data.flips, { depth: true, height: true, width: true });
  assert.equal(c.data.foregroundOversample, 0);
  assert.equal(c.training.deepSupervision.enabled, true);
  assert.deepEqual(c.training.lossWeights, { dice: 0.5, ce: 0.5 });
  assert.equal(c.training.optimizer, 'adam');
  assert.equal(c.training.lr, 1e-3);
  assert.equal(c.training.weightDecay, 1e-5);
  assert.equal(c.training.momentum, 0.9);
  assert.equal(c.training.scheduler.kind, 'poly');
  assert.equal(c.training.scheduler.power, 0.8);
  assert.equal(c.training.scheduler.unit, 'validation');
  assert.equal(c.training.iterations, 6000);
  assert.equal(c.training.validEvery, 250);
  assert.equal(c.training.earlyStopPatience, 3000);
  assert.equal(schedulerPlan(c.training).totalSteps, 24);
  assert.equal(c.training.initCheckpoint, 'weights/pctnet_ct10k_volf.pt', 'ckpt_init_name is relative to ckpt_dir');
  assert.equal(c.training.initMode, 'weights');
  assert.equal(c.output.dir, 'demo/model/pctnet_pretrain');
  assert.deepEqual(c.inference.window, [64, 128, 128]);
  assert.deepEqual(c.inference.stride, [32, 64, 64]);
  assert.equal(c.inference.batchSize, 8);
  assert.equal(c.inference.checkpoint, 'best');
  // Everything unmapped is reported with a reason.
  const keys = ignored.map((i) => i.key).sort();
  assert.deepEqual(keys, [
    'dataset.labeltoprobability_class_num', 'dataset.modal_num', 'dataset.normalizewithmeanstd_channels', 'dataset.task_type',
    'dataset.tensor_type', 'dataset.test_batch_size', 'dataset.test_csv', 'dataset.test_transform', 'dataset.train_csv',
    'dataset.valid_batch_size', 'dataset.valid_csv', 'dataset.valid_transform', 'testing.gpus', 'testing.output_dir',
    'training.gpus', 'training.iter_save',
  ]);
  assert.match(reasonOf(ignored, 'training.iter_save')!, /fixed interval/);
  assert.match(reasonOf(ignored, 'dataset.train_csv')!, /CSV/);
  for (const i of ignored) assert.ok(i.reason.length > 10, `${i.key} has a reason`);
});

test('Volume Fusion pretraining cfg (spec 2.1) maps blocks, schedule and network', () => {
  const text = readFileSync(path.join(cfgDir, 'volf_pretrain.cfg'), 'utf8');
  const { config: c, ignored } = importPymicConfig(text, { file: 'volf_pretrain.cfg' });
  assert.equal(c.task, 'pretrain');
  assert.equal(c.model.name, 'unet3d');
  assert.equal(c.model.classNum, 5);
  assert.equal(c.ssl.levels, 4, 'K = class_num - 1');
  assert.equal(c.ssl.mode, 'blocks');
  assert.deepEqual(c.ssl.blocks, { count: [10, 40], sizeMin: [8, 8, 8], sizeMax: [40, 80, 80] });
  assert.deepEqual(c.data.patchSize, [64, 128, 128]);
  assert.deepEqual(c.inference.window, [64, 128, 128]);
  assert.equal(c.data.folder, 'data/LUNA2016/preprocess');
  assert.deepEqual(c.data.intensity, { kind: 'ct-window', window: [-1000, 1000] }, 'no normalisation transform: the preset window stays');
  assert.equal(c.training.deepSupervision.enabled, false, 'PyMIC default when deep_supervise is absent');
  assert.equal(c.training.scheduler.kind, 'step');
  assert.equal(c.training.scheduler.stepSize, 40000);
  assert.equal(c.training.scheduler.gamma, 0.5);
  assert.equal(schedulerPlan(c.training).stepSize, 80);
  assert.equal(c.training.iterations, 120000);
  assert.equal(c.training.saveEvery, 5000);
  assert.equal(c.training.seed, 1);
  assert.equal(c.output.dir, 'model/unet3d_volf');
  assert.match(reasonOf(ignored, 'network.trilinear')!, /not a network option/);
  assert.match(reasonOf(ignored, 'evaluation.metric_list')!, /misfm evaluate/);
  assert.ok(reasonOf(ignored, 'training.deterministic') !== undefined);
});

test('grid-variant keys, CT window and flips map; bad values name the misfm and PyMIC keys', () => {
  const base = '[dataset]\nsupervise_type = self_sup\npatch_size = [32, 64, 64]\ntrain_batch_size = 4\n'
    + 'train_transform = [Crop4VolumeFusion, RandomFlip, NormalizeWithMinMax, VolumeFusion]\n'
    + 'RandomFlip_flip_depth = False\nNormalizeWithMinMax_threshold_lower = -500\nNormalizeWithMinMax_threshold_upper = 500\n'
    + 'VolumeFusion_cls_num = 4\nVolumeFusion_foreground_ratio = 0.6\nVolumeFusion_patchsize_min = [4,4,4]\nVolumeFusion_patchsize_max = [8,16,16]\n'
    + 'Crop4VolumeFusion_rescale_z = [0.7, 1.5]\n'
    + '[network]\nnet_type = PCTNet\nclass_num = 4\nin_chns = 1\nfeature_chns = [8,16,32,64,128]\nresolution_mode = 1\nmultiscale_pred = True\nbogus_key = 3\n'
    + '[training]\ndeep_supervise = True\nloss_type = DiceLoss\nlearning_rate = 2e-4\noptimizer = RMSprop\n';
  const { config: c, ignored } = importPymicConfig(base);
  assert.equal(c.ssl.mode, 'grid');
  assert.equal(c.ssl.levels, 3);
  assert.deepEqual(c.ssl.grid, { sizeMin: [4, 4, 4], sizeMax: [8, 16, 16], foregroundRatio: 0.6 });
  assert.deepEqual(c.data.intensity, { kind: 'ct-window', window: [-500, 500] });
  assert.deepEqual(c.data.flips, { depth: false, height: true, width: true });
  assert.equal(c.model.name === 'pctnet' && c.model.inputSize.join(), '32,64,64', 'input_size defaults to patch_size');
  assert.deepEqual(c.training.lossWeights, { dice: 1, ce: 0 });
  assert.equal(c.training.optimizer, 'adam');
  assert.match(reasonOf(ignored, 'training.optimizer')!, /"RMSprop" is not supported/);
  assert.match(reasonOf(ignored, 'network.bogus_key')!, /not an option/);
  assert.match(reasonOf(ignored, 'dataset.crop4volumefusion_rescale_z')!, /not implemented/);

  assert.throws(() => importPymicConfig(`${base}iter_max = many\n`, { file: 'p.cfg' }), (e: unknown) => e instanceof ConfigError
    && e.path === 'training.iterations' && /p\.cfg/.test(e.message) && /"many"/.test(e.message) && /PyMIC key training\.iter_max/.test(e.message));
  assert.throws(() => importPymicConfig(base.replace('class_num = 4', 'class_num = 6'), { file: 'p.cfg' }),
    (e: unknown) => e instanceof ConfigError && e.path === 'model.classNum' && /ssl.levels \+ 1 = 4/.test(e.message));
  assert.throws(() => importPymicConfig('[dataset]\ntask_type = cls\n', { file: 'p.cfg' }), (e: unknown) => e instanceof ConfigError && e.path === 'dataset.task_type');
  assert.throws(() => importPymicConfig('[self_supervised_learning]\nmethod_name = ModelGenesis\n'), /only VolumeFusion/);
  assert.throws(() => importPymicConfig('[network]\nnet_type = UNet2D\nclass_num = 2\nin_chns = 1\n'), (e: unknown) => e instanceof ConfigError && e.path === 'network.net_type');
});

test('a .cfg on disk: overrides apply after the import, tied values follow', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'misfm-pymic-'));
  try {
    const f = path.join(dir, 'x.cfg');
    writeFileSync(f, readFileSync(path.join(cfgDir, 'pctnet_pretrain.cfg')));
    const { config, ignored } = loadConfig(f, { overrides: ['training.lr=1e-4', 'data.patchSize=[32,64,64]'] });
    assert.equal(config.training.lr, 1e-4);
    assert.deepEqual(config.data.patchSize, [32, 64, 64]);
    assert.equal(config.model.name === 'pctnet' && config.model.inputSize.join(), '32,64,64');
    assert.deepEqual(config.inference.window, [32, 64, 64]);
    assert.equal(ignored.length, 16, JSON.stringify(ignored.map((i) => i.key)));
    writeFileSync(f, '[training]\nlearning_rate = 1e-3\nlearning_rate = 2e-3\n');
    assert.throws(() => loadConfig(f), (e: unknown) => e instanceof MisfmError && e.message.includes(f) && /appears twice/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
