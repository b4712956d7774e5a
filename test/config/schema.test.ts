import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import os from 'node:os';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import {
  PRESETS, applyOverrides, configToYaml, defaultConfig, loadConfig, presetConfig, resolveConfig, saveConfig,
  schedulerPlan, fusionMaskOptions, inferenceStride, validateRunConfig, type RunConfig,
} from '../../src/config/index.js';
import { ConfigError, MisfmError } from '../../src/util/errors.js';

/** Assert fn throws a ConfigError on `key` whose message matches every pattern. */
function throwsConfig(fn: () => unknown, key: string, ...patterns: RegExp[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    assert.equal(e.path, key, `error names ${e.path}: ${e.message}`);
    assert.equal(e.code, 'CONFIG');
    assert.ok(e.message.startsWith(`${key}: `) || e.message.includes(`: ${key}: `), e.message);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

const withOverride = (...ov: string[]): RunConfig => applyOverrides(defaultConfig(), ov);

test('defaults are the paper values and every preset validates', () => {
  const c = defaultConfig();
  assert.deepEqual(validateRunConfig(structuredClone(c)), c);
  assert.equal(c.task, 'pretrain');
  assert.equal(c.model.name, 'pctnet');
  assert.equal(c.model.classNum, 5);
  if (c.model.name === 'pctnet') {
    assert.deepEqual(c.model.featureChns, [24, 48, 128, 256, 512]);
    assert.deepEqual(c.model.inputSize, [64, 128, 128]);
    assert.equal(c.model.resolutionMode, 1);
  }
  assert.deepEqual(c.data.patchSize, [64, 128, 128]);
  assert.deepEqual(c.data.intensity, { kind: 'ct-window', window: [-1000, 1000] });
  assert.deepEqual(c.ssl.blocks, { count: [10, 40], sizeMin: [8, 8, 8], sizeMax: [40, 80, 80] });
  assert.equal(c.ssl.levels, 4);
  assert.equal(c.training.optimizer, 'adam');
  assert.equal(c.training.lr, 1e-3);
  assert.equal(c.training.weightDecay, 1e-5);
  assert.deepEqual(c.training.deepSupervision.weights, [1, 0.5, 0.25, 0.125]);
  assert.deepEqual(c.training.lossWeights, { dice: 0.5, ce: 0.5 });
  assert.equal(c.training.scheduler.unit, 'validation');
  assert.equal(c.inference.sigmaScale, 0.125);
  for (const p of PRESETS) {
    const cfg = presetConfig(p);
    assert.deepEqual(validateRunConfig(structuredClone(cfg)), cfg, p);
  }
  const s = presetConfig('small');
  assert.deepEqual(s.data.patchSize, [32, 64, 64]);
  assert.deepEqual(s.inference.window, [32, 64, 64]);
  const ft = presetConfig('paper-finetune');
  assert.equal(ft.model.classNum, 2);
  assert.deepEqual(ft.data.intensity, { kind: 'zscore' });
  assert.equal(ft.training.scheduler.kind, 'poly');
  // Presets are fresh copies.
  presetConfig('paper').training.lr = 7;
  assert.equal(presetConfig('paper').training.lr, 1e-3);
});

test('wrong types and out-of-range values name the key and the bad value', () => {
  throwsConfig(() => withOverride('training.lr=abc'), 'training.lr', /must be a number > 0/, /"abc"/, /override/);
  throwsConfig(() => withOverride('training.lr=0'), 'training.lr', /> 0, got 0/);
  throwsConfig(() => withOverride('training.iterations=1.5'), 'training.iterations', /integer >= 1, got 1.5/);
  throwsConfig(() => withOverride('data.batchSize=true'), 'data.batchSize', /integer >= 1, got true/);
  throwsConfig(() => withOverride('data.flipProbability=1.5'), 'data.flipProbability', />= 0 and <= 1, got 1.5/);
  throwsConfig(() => withOverride('data.patchSize=[32,64]'), 'data.patchSize', /list of 3 values, got 2/);
  throwsConfig(() => withOverride('data.patchSize=[32,0,64]'), 'data.patchSize[1]', />= 1, got 0/);
  throwsConfig(() => withOverride('data.flips.depth=yes'), 'data.flips.depth', /true or false, got "yes"/);
  throwsConfig(() => withOverride('inference.overlap=1'), 'inference.overlap', /< 1, got 1/);
  throwsConfig(() => withOverride('training.earlyStopPatience=-3'), 'training.earlyStopPatience', /or null/);
  throwsConfig(() => withOverride('ssl.blocks.count=[40,10]'), 'ssl.blocks.count', /min <= max/);
  throwsConfig(() => withOverride('ssl.blocks.sizeMin=[8,8,100]'), 'ssl.blocks.sizeMin', /sizeMax/);
  throwsConfig(() => withOverride('data.intensity.window=[1000,-1000]'), 'data.intensity.window', /lower < upper/);
  throwsConfig(() => withOverride('output.dir='), 'output.dir', /non-empty string/);
  throwsConfig(() => withOverride('training=5'), 'training', /must be a section/);
});

test('unknown enum values and unknown keys are errors with suggestions', () => {
  throwsConfig(() => withOverride('training.optimizer=adamm'), 'training.optimizer', /one of 'adam', 'adamw', 'sgd'/, /did you mean 'adam'/);
  throwsConfig(() => withOverride('ssl.mode=gird'), 'ssl.mode', /'blocks', 'grid'/, /did you mean 'grid'/);
  throwsConfig(() => withOverride('training.scheduler.kind=cosin'), 'training.scheduler.kind', /did you mean 'cosine'/);
  throwsConfig(() => withOverride('model.name=pctnt'), 'model.name', /did you mean 'pctnet'/);
  throwsConfig(() => withOverride('training.lrr=1'), 'training.lrr', /unknown key/, /did you mean 'lr'/, /allowed keys of training: optimizer, lr,/);
  throwsConfig(() => withOverride('trainnig.lr=1'), 'trainnig', /unknown key/, /did you mean 'training'/);
  throwsConfig(() => resolveConfig({ data: { patchSzie: [32, 64, 64] } }), 'data.patchSzie', /did you mean 'patchSize'/);
  throwsConfig(() => resolveConfig({ model: { featureChn: [8, 16, 32, 64, 128] } }), 'model.featureChn', /did you mean 'featureChns'/);
  throwsConfig(() => resolveConfig({ preset: 'smal' }), 'preset', /did you mean 'small'/);
  throwsConfig(() => withOverride('data.intensity={"kind":"zscore","window":[0,1]}'), 'data.intensity.window', /only applies to kind 'ct-window'/);
  throwsConfig(() => withOverride('nonsense'), 'nonsense', /section\.key=value/);
});

test('cross-section rules', () => {
  throwsConfig(() => withOverride('model.inputSize=[32,64,64]'), 'model.inputSize', /must equal data.patchSize \[64,128,128\]/);
  throwsConfig(() => withOverride('inference.window=[32,64,64]'), 'inference.window', /must equal model.inputSize/);
  throwsConfig(() => withOverride('model.classNum=3'), 'model.classNum', /ssl.levels \+ 1 = 5/);
  assert.equal(withOverride('data.batchSize=1').data.batchSize, 1, 'batch 1 is allowed: the foreground comes from a second scan');
  throwsConfig(() => withOverride('task=finetune', 'data.labels={"values":[1,5],"names":["spleen","liver"]}'), 'model.classNum', /must be 3 \(background \+ the 2 classes of data.labels\)/);
  throwsConfig(() => withOverride('data.labels={"values":[1,5],"names":["spleen"]}'), 'data.labels.names', /one name per value/);
  throwsConfig(() => withOverride('model.multiscalePred=false'), 'training.deepSupervision.enabled', /multiscalePred/);
  throwsConfig(() => withOverride('training.classWeights=[1,2]'), 'training.classWeights', /classNum = 5/);
  throwsConfig(() => withOverride('training.scheduler.stepSize=100'), 'training.scheduler.stepSize', />= training.validEvery \(500\)/);
  throwsConfig(() => withOverride('training.scheduler.kind=multistep'), 'training.scheduler.milestones', /at least one/);
  // Fine-tuning lifts the VolF rules.
  const ft = applyOverrides(presetConfig('paper-finetune'), ['data.batchSize=1', 'model.classNum=3']);
  assert.equal(ft.model.classNum, 3);
});

test('overrides parse JSON values, fall back to strings, and tied values follow', () => {
  const c = applyOverrides(defaultConfig(), ['training.lr=5e-4', 'data.patchSize=[32,64,64]', 'ssl.mode=grid', 'output.dir=runs/x y', 'training.gradClip=null']);
  assert.equal(c.training.lr, 5e-4);
  assert.deepEqual(c.data.patchSize, [32, 64, 64]);
  assert.equal(c.model.name === 'pctnet' && c.model.inputSize.join(), '32,64,64');
  assert.deepEqual(c.inference.window, [32, 64, 64]);
  assert.equal(c.ssl.mode, 'grid');
  assert.equal(c.output.dir, 'runs/x y');
  assert.equal(c.training.gradClip, null);
  // An explicit value beats the tie.
  throwsConfig(() => applyOverrides(defaultConfig(), ['data.patchSize=[32,64,64]', 'inference.window=[64,128,128]']), 'inference.window', /must equal/);
  // ssl.levels drives the VolF head size.
  assert.equal(applyOverrides(defaultConfig(), ['ssl.levels=3']).model.classNum, 4);
  // Switching the network keeps the shared keys; switching intensity kind drops the window.
  const u = applyOverrides(defaultConfig(), ['model.name=unet3d', 'model.multiscalePred=true']);
  assert.equal(u.model.name, 'unet3d');
  assert.equal(u.model.classNum, 5);
  assert.deepEqual(applyOverrides(defaultConfig(), ['data.intensity.kind=zscore']).data.intensity, { kind: 'zscore' });
  // The input config is not modified; a later override of the same key wins.
  const base = defaultConfig();
  const before = JSON.stringify(base);
  assert.equal(applyOverrides(base, ['training.lr=0.1', 'training.lr=0.2']).training.lr, 0.2);
  assert.equal(JSON.stringify(base), before);
  throwsConfig(() => applyOverrides(base, ['preset=small']), 'preset', /when a config is loaded/);
});

test('JSON and YAML files round-trip; partial files merge over their preset; save is atomic', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'misfm-cfg-'));
  try {
    const c = applyOverrides(presetConfig('small-finetune'), ['training.lr=2e-4', 'inference.ttaFlips=["width"]']);
    for (const name of ['run.json', 'run.yaml']) {
      const f = path.join(dir, name);
      saveConfig(f, c);
      const back = loadConfig(f);
      assert.deepEqual(back.config, c, name);
      assert.equal(back.format, name.endsWith('json') ? 'json' : 'yaml');
    }
    assert.deepEqual(JSON.parse(readFileSync(path.join(dir, 'run.json'), 'utf8')), c);
    assert.match(configToYaml(c), /patchSize: \[ 32, 64, 64 \]/);
    assert.deepEqual(readdirSync(dir).sort(), ['run.json', 'run.yaml'], 'no temp files left behind');

    const partial = path.join(dir, 'partial.yaml');
    writeFileSync(partial, 'preset: small\ntraining:\n  lr: 0.01\n  scheduler: { kind: cosine }\ndata:\n  folder: /data/ct\n');
    const p = loadConfig(partial, { overrides: ['training.iterations=50'] });
    assert.equal(p.config.training.lr, 0.01);
    assert.equal(p.config.training.scheduler.kind, 'cosine');
    assert.equal(p.config.training.scheduler.unit, 'validation', 'unset keys of a section keep the preset value');
    assert.equal(p.config.training.iterations, 50);
    assert.equal(p.config.data.folder, '/data/ct');
    assert.deepEqual(p.config.data.patchSize, [32, 64, 64]);
    // preset=... among the overrides picks the base preset.
    assert.deepEqual(loadConfig(partial, { overrides: ['preset=paper'] }).config.data.patchSize, [64, 128, 128]);
    // An empty file is all defaults.
    writeFileSync(path.join(dir, 'empty.yaml'), '');
    assert.deepEqual(loadConfig(path.join(dir, 'empty.yaml')).config, defaultConfig());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('file errors name the file, the key and the problem', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'misfm-cfg-'));
  try {
    const bad = path.join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ training: { optimiser: 'adam' } }));
    assert.throws(() => loadConfig(bad), (e: unknown) => e instanceof ConfigError && e.file === bad && e.path === 'training.optimiser'
      && e.message.includes(bad) && /did you mean 'optimizer'/.test(e.message));
    const broken = path.join(dir, 'broken.yaml');
    writeFileSync(broken, 'training:\n  lr: [1, 2\n');
    assert.throws(() => loadConfig(broken), (e: unknown) => e instanceof MisfmError && e.code === 'CONFIG' && e.message.includes(broken) && /invalid YAML/.test(e.message));
    const dup = path.join(dir, 'dup.yaml');
    writeFileSync(dup, 'task: pretrain\ntask: finetune\n');
    assert.throws(() => loadConfig(dup), /unique/);
    const list = path.join(dir, 'list.json');
    writeFileSync(list, '[1, 2]');
    assert.throws(() => loadConfig(list), (e: unknown) => e instanceof ConfigError && e.message.includes(list) && /mapping of sections/.test(e.message));
    assert.throws(() => loadConfig(path.join(dir, 'missing.json')), /missing\.json: cannot read config: file not found/);
    assert.throws(() => loadConfig(path.join(dir, 'x.toml')), /unknown config format '\.toml'/);
    // A bad override after a good file names the override, not the file.
    writeFileSync(path.join(dir, 'ok.json'), '{}');
    assert.throws(() => loadConfig(path.join(dir, 'ok.json'), { overrides: ['data.batchSize=0'] }),
      (e: unknown) => e instanceof ConfigError && e.path === 'data.batchSize' && /override "data.batchSize=0"/.test(e.message) && e.file === undefined);
    // Saving into a missing folder fails cleanly.
    assert.throws(() => saveConfig(path.join(dir, 'nope', 'c.json'), defaultConfig()), (e: unknown) => e instanceof MisfmError && /nope/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('derived values: scheduler steps, fusion options, window stride', () => {
  const c = defaultConfig();
  const plan = schedulerPlan(c.training);
  assert.equal(plan.everyIterations, 500);
  assert.equal(plan.stepSize, 80, 'lr_step 40000 / iter_valid 500 (spec 2.3)');
  assert.equal(plan.totalSteps, 240);
  const ft = schedulerPlan(presetConfig('paper-finetune').training);
  assert.equal(ft.kind, 'poly');
  assert.equal(ft.totalSteps, 24, 'iter_max 6000 / iter_valid 250');
  assert.equal(schedulerPlan(applyOverrides(c, ['training.scheduler.unit=iteration']).training).stepSize, 40000);
  assert.deepEqual(fusionMaskOptions(c.ssl), { mode: 'blocks', levels: 4, blockCount: [10, 40], sizeMin: [8, 8, 8], sizeMax: [40, 80, 80] });
  assert.deepEqual(fusionMaskOptions(applyOverrides(c, ['ssl.mode=grid']).ssl), { mode: 'grid', levels: 4, sizeMin: [5, 8, 8], sizeMax: [20, 32, 32], foregroundRatio: 0.7 });
  assert.deepEqual(inferenceStride(c.inference), [32, 64, 64]);
  assert.deepEqual(inferenceStride(applyOverrides(c, ['inference.stride=[16,32,32]']).inference), [16, 32, 32]);
});
