import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { applyOverrides, presetConfig, type RunConfig } from '../../src/config/index.js';
import { PRETRAIN_METHODS } from '../../src/config/types.js';
import { pretextMethod, pretextMethods } from '../../src/ssl/methods.js';
import { pretrain } from '../../src/ssl/pretrain.js';
import { plotRun } from '../../src/cli/commands/plot.js';
import { ConfigError, MisfmError } from '../../src/util/errors.js';
import { buildCache, patternCT, tempDir, vol } from '../data/helpers.js';

const tmp = tempDir('ssl-methods');
after(() => rmSync(tmp, { recursive: true, force: true }));

test('the registry holds one method per config name; unknown names are refused with a suggestion', () => {
  assert.deepEqual(pretextMethods().map((m) => m.name), [...PRETRAIN_METHODS]);
  assert.equal(pretextMethod('genesis').name, 'genesis');
  assert.throws(() => pretextMethod('patchswap'), (e: unknown) => e instanceof MisfmError && e.code === 'ARGUMENT' && /did you mean 'patch-swap'/.test(e.message) && /volf, patch-swap, genesis, mim/.test(e.message));
});

test('ssl.method defaults to volf and sets the head: K+1 fusion levels or one reconstruction channel', () => {
  const base = presetConfig('paper');
  assert.equal(base.ssl.method, 'volf');
  assert.equal(base.model.classNum, 5);
  const ps = applyOverrides(base, ['ssl.method=patch-swap']);
  assert.equal(ps.model.classNum, 1);
  assert.equal(applyOverrides(ps, ['ssl.method=volf']).model.classNum, 5, 'back to volf: the head follows again');
  assert.equal(applyOverrides(base, ['model.name=unet3d', 'ssl.method=mim']).model.classNum, 1);
  assert.throws(() => applyOverrides(base, ['ssl.method=genesis', 'model.classNum=2']), (e: unknown) => e instanceof ConfigError && e.path === 'model.classNum' && /must be 1 for ssl.method 'genesis'/.test(e.message));
  assert.throws(() => applyOverrides(base, ['ssl.method=vocco']), (e: unknown) => e instanceof ConfigError && e.path === 'ssl.method' && /'volf', 'patch-swap', 'genesis', 'mim'/.test(e.message));
  assert.throws(() => applyOverrides(base, ['ssl.mim.ratio=0']), (e: unknown) => e instanceof ConfigError && e.path === 'ssl.mim.ratio');
  // Fine-tuning configs do not care about the pretext head.
  assert.equal(applyOverrides(presetConfig('small-finetune'), ['ssl.method=mim']).model.classNum, 2);
});

function tinyConfig(method: string, net: 'unet3d' | 'pctnet', iterations: number): RunConfig {
  const netSet = net === 'unet3d'
    ? ['model.name=unet3d', 'model.featureChns=[4,8,16,32,64]', 'model.dropout=[0,0,0,0,0]']
    : ['model.featureChns=[4,8,16,32,64]', 'model.inputSize=[16,32,32]'];
  return applyOverrides(presetConfig('small'), [
    ...netSet, 'data.patchSize=[16,32,32]', `ssl.method=${method}`,
    `training.iterations=${iterations}`, 'training.validEvery=2', 'training.saveEvery=1',
  ]);
}

function events(runDir: string): Record<string, unknown>[] {
  return readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
}

let cache = '';
function tinyCache(): string {
  if (cache !== '') return cache;
  cache = path.join(tmp, 'cache');
  const dhw: [number, number, number] = [20, 36, 36];
  buildCache(cache, ['a', 'b', 'c'].map((id, i) => ({ id, image: vol(patternCT(dhw).map((v) => v + 100 * i), dhw) })));
  return cache;
}

for (const [method, net] of [['patch-swap', 'unet3d'], ['genesis', 'pctnet'], ['mim', 'unet3d']] as const) {
  test(`${method} pretrains ${net} through the shared loader and trainer, records its method and logs its L1`, async () => {
    const runDir = path.join(tmp, `run-${method}`);
    const r = await pretrain({ config: tinyConfig(method, net, 2), data: [tinyCache()], runDir, quiet: true, validCases: ['c'], validSamples: 2, log: () => {} });
    assert.equal(r.iterations, 2);
    assert.ok(Number.isFinite(r.lastLoss) && r.lastLoss > 0, `loss ${r.lastLoss}`);
    const saved = JSON.parse(readFileSync(path.join(runDir, 'config.json'), 'utf8')) as RunConfig;
    assert.equal(saved.ssl.method, method);
    assert.equal(saved.model.classNum, 1);
    const valid = events(runDir).find((e) => e['event'] === 'valid')!;
    const mae = Number(valid['mae']), identity = Number(valid['identityMae']);
    assert.ok(mae > 0 && identity > 0, `mae ${mae}, identity ${identity}`);
    assert.ok(Math.abs(Number(valid['score']) + mae) < 1e-12, 'score = -L1');
    assert.ok(existsSync(r.checkpoints.best!));
    assert.ok(existsSync(plotRun(runDir)));
  });
}

test('a reconstruction pretraining resumes exactly (loader position and corruption draws)', async () => {
  const full = path.join(tmp, 'mim-full'), cut = path.join(tmp, 'mim-cut');
  const cfg = tinyConfig('mim', 'unet3d', 3);
  await pretrain({ config: cfg, data: [tinyCache()], runDir: full, quiet: true, validCases: ['c'], validSamples: 1, log: () => {} });
  await pretrain({ config: cfg, data: [tinyCache()], runDir: cut, quiet: true, validCases: ['c'], validSamples: 1, stopAt: 1, log: () => {} });
  const r = await pretrain({ config: cfg, data: [tinyCache()], runDir: cut, quiet: true, validCases: ['c'], validSamples: 1, resume: true, log: () => {} });
  assert.equal(r.iterations, 3);
  const losses = (d: string): number[] => {
    const m = new Map<number, number>();
    for (const e of events(d)) if (e['event'] === 'train') m.set(Number(e['iteration']), Number(e['loss']));
    return [...m.entries()].sort((a, b) => a[0] - b[0]).map(([, l]) => l);
  };
  assert.deepEqual(losses(cut), losses(full));
  await assert.rejects(pretrain({ config: tinyConfig('patch-swap', 'unet3d', 4), data: [tinyCache()], runDir: cut, quiet: true, validCases: ['c'], resume: true, log: () => {} }),
    (e: unknown) => e instanceof MisfmError && e.code === 'CONFIG' && /pretrains with method 'mim', not 'patch-swap'/.test(e.message));
});
