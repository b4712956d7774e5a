/**
 * The default job's configuration (the README's first command) and its argument errors. The whole
 * demo takes ~2 minutes on 2 cores; it is run from a clean clone by hand, not in this suite.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { demoFinetuneConfig, demoPretrainConfig, DEMO_CLASSES } from '../src/demo.js';
import * as fs from 'node:fs';
import { adoptInitPreprocessing, initMismatches } from '../src/train/init.js';
import { repoRoot } from './helpers.js';
import { tempDir, writeTinyCheckpoint } from './infer/helpers.js';

test('the demo fine-tunes with the intensity normalisation and spacing its pretraining used (adopted from the checkpoint, no mismatch note)', async () => {
  const dir = tempDir('demo-cfg');
  try {
    const pre = demoPretrainConfig(12, path.join(dir, 'pretrain'));
    assert.equal(pre.data.spacing, 'plan');
    // What the pretraining records in its checkpoints: its config with the cache's preprocessing.
    const recorded = { ...pre, data: { ...pre.data, preprocess: { reorient: 'LPS', bodyCrop: false, modality: 'auto', dtype: 'auto', spacing: [2.25, 2.25, 2.25] } } };
    const ckpt = path.join(dir, 'best.pt');
    writeTinyCheckpoint(ckpt, { data: recorded.data });
    const ft = demoFinetuneConfig(16, path.join(dir, 'finetune'), ckpt);
    assert.deepEqual(ft.data.intensity, { kind: 'zscore' }, 'the preset as it is; finetune adopts');
    const { config, lines } = await adoptInitPreprocessing(ft);
    assert.deepEqual(config.data.intensity, pre.data.intensity);
    assert.deepEqual(config.data.spacing, [2.25, 2.25, 2.25]);
    assert.equal(lines.length, 2);
    // What initFromCheckpoint compares once the cache is prepared at the adopted spacing.
    const run = { ...config, data: { ...config.data, preprocess: recorded.data.preprocess } };
    assert.deepEqual(initMismatches(JSON.parse(JSON.stringify(recorded)) as Record<string, unknown>, run), []);
    assert.equal(ft.model.classNum, DEMO_CLASSES.values.length + 1);
    assert.equal(ft.training.iterations, 16);
    assert.equal(pre.training.iterations, 12);
    assert.equal(pre.training.validEvery, 6);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('misfm demo: a non-integer budget is an ARGUMENT error naming the flag, before any work', () => {
  for (const [flag, value] of [['--pretrain-iterations', 'abc'], ['--finetune-iterations', '0'], ['--pretrain-iterations', '']]) {
    const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin/misfm.js'), 'demo', '--out', '/nonexistent/never-written', flag!, value!], { encoding: 'utf8' });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`${flag} must be a positive integer, got '${value}'`));
  }
});
