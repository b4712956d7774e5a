/**
 * `ssl.method=voco` brings VoCo's optimiser and schedule (AdamW lr 1e-4, amsgrad, wd 0.01, linear
 * warmup + cosine per iteration) unless set explicitly; other methods and fine-tuning keep theirs;
 * the trainer builds exactly that optimiser and schedule.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as E from '../../src/engine/index.js';
import { applyOverrides, loadConfig, presetConfig, vocoWarmup, type RunConfig } from '../../src/config/index.js';
import { makeOptimizer, makeScheduler } from '../../src/train/trainer.js';
import { AdamW, WarmupCosineLR } from '../../src/optim/index.js';
import { ConfigError } from '../../src/util/errors.js';

const recipe = (c: RunConfig): unknown[] => [c.training.optimizer, c.training.amsgrad, c.training.lr, c.training.weightDecay, c.training.scheduler.kind, c.training.scheduler.unit, c.training.scheduler.warmup];

test('the VoCo warmup is the reference 5000 steps, 2 % of shorter runs', () => {
  assert.deepEqual([250_000, 2_000_000, 120_000, 2000, 250, 3, 1].map(vocoWarmup), [5000, 5000, 2400, 40, 5, 1, 1]);
});

test('--method voco selects the VoCo recipe; explicit keys win; warmup follows the iteration budget', () => {
  const small = presetConfig('small');
  const v = applyOverrides(small, ['ssl.method=voco']);
  assert.deepEqual(recipe(v), ['adamw', true, 1e-4, 0.01, 'warmup-cosine', 'iteration', 40]);
  assert.deepEqual(v.training.betas, [0.9, 0.999]);
  // The paper preset: 120000 iterations.
  assert.deepEqual(recipe(applyOverrides(presetConfig('paper'), ['ssl.method=voco'])), ['adamw', true, 1e-4, 0.01, 'warmup-cosine', 'iteration', 2400]);
  // Explicit values are kept, the rest of the recipe still applies.
  const e = applyOverrides(small, ['ssl.method=voco', 'training.lr=3e-4', 'training.scheduler.warmup=7', 'training.iterations=100']);
  assert.deepEqual(recipe(e), ['adamw', true, 3e-4, 0.01, 'warmup-cosine', 'iteration', 7]);
  const s = applyOverrides(small, ['ssl.method=voco', 'training.optimizer=sgd', 'training.scheduler.kind=poly']);
  assert.deepEqual([s.training.optimizer, s.training.scheduler.kind, s.training.lr], ['sgd', 'poly', 1e-4]);
  // The budget in the same call, or later (a config file, then --iterations).
  assert.equal(applyOverrides(small, ['ssl.method=voco', 'training.iterations=250']).training.scheduler.warmup, 5);
  assert.equal(applyOverrides(v, ['training.iterations=500']).training.scheduler.warmup, 10);
  assert.equal(applyOverrides(e, ['training.iterations=500']).training.scheduler.warmup, 7, 'an explicit warmup is not re-derived');
});

test('a config file that names voco gets the recipe; other methods and fine-tuning keep their optimiser', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'misfm-voco-recipe-'));
  try {
    const f = path.join(dir, 'voco.yaml');
    writeFileSync(f, 'preset: small\nssl:\n  method: voco\ntraining:\n  weightDecay: 0.05\n');
    const c = loadConfig(f).config;
    assert.deepEqual(recipe(c), ['adamw', true, 1e-4, 0.05, 'warmup-cosine', 'iteration', 40]);
    // Resuming from the saved config with a new budget keeps the recipe and moves the warmup.
    const saved = path.join(dir, 'config.json');
    writeFileSync(saved, JSON.stringify(c));
    assert.deepEqual(recipe(loadConfig(saved, { overrides: ['training.iterations=1000'] }).config), ['adamw', true, 1e-4, 0.05, 'warmup-cosine', 'iteration', 20]);
  } finally { rmSync(dir, { recursive: true, force: true }); }
  const small = presetConfig('small');
  for (const m of ['volf', 'patch-swap', 'genesis', 'mim']) {
    assert.deepEqual(recipe(applyOverrides(small, [`ssl.method=${m}`])), recipe(small), m);
  }
  const ft = presetConfig('small-finetune');
  assert.deepEqual(recipe(applyOverrides(ft, ['ssl.method=voco'])), recipe(ft), 'fine-tuning is not pretraining');
  assert.equal(small.training.amsgrad, false);
});

test('the trainer builds AdamW(amsgrad) and the warmup-cosine schedule of the config', () => {
  const c = applyOverrides(presetConfig('small'), ['ssl.method=voco', 'training.iterations=300']);
  const p = E.ones([2]).requiresGrad_();
  const opt = makeOptimizer([p], c.training);
  assert.ok(opt instanceof AdamW);
  assert.equal((opt as AdamW).amsgrad, true);
  assert.equal((opt as AdamW).weightDecay, 0.01);
  const s = makeScheduler(opt, c.training);
  assert.ok(s instanceof WarmupCosineLR);
  assert.deepEqual([(s as WarmupCosineLR).warmup, (s as WarmupCosineLR).total], [6, 300]);
  assert.equal(opt.lr, 0);
  for (let i = 0; i < 6; i++) s.step();
  assert.equal(opt.lr, 1e-4);
  // Per validation round, the warmup is counted in rounds as the other schedules are.
  const r = applyOverrides(c, ['training.scheduler.unit=validation', 'training.validEvery=50']);
  const s2 = makeScheduler(opt, r.training) as WarmupCosineLR;
  assert.deepEqual([s2.warmup, s2.total], [1, 6]);
  opt.dispose(); p.dispose();
});

test('bad values of the new keys name the key', () => {
  const small = presetConfig('small');
  assert.throws(() => applyOverrides(small, ['training.amsgrad=1']), (e: unknown) => e instanceof ConfigError && e.path === 'training.amsgrad');
  assert.throws(() => applyOverrides(small, ['training.scheduler.warmup=-1']), (e: unknown) => e instanceof ConfigError && e.path === 'training.scheduler.warmup');
  assert.throws(() => applyOverrides(small, ['training.scheduler.kind=warmup_cosine']), (e: unknown) => e instanceof ConfigError && e.path === 'training.scheduler.kind');
});
