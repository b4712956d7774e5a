/**
 * The default job's configuration (the README's first command) and its argument errors. The whole
 * demo takes ~2 minutes on 2 cores; it is run from a clean clone by hand, not in this suite.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { demoFinetuneConfig, demoPretrainConfig, DEMO_CLASSES } from '../src/demo.js';
import { initMismatches } from '../src/train/init.js';
import { repoRoot } from './helpers.js';

test('the demo fine-tunes with the intensity normalisation its pretraining used (no init mismatch note)', () => {
  const pre = demoPretrainConfig(12, '/tmp/demo/pretrain');
  const ft = demoFinetuneConfig(16, '/tmp/demo/finetune', '/tmp/demo/pretrain/checkpoints/best.pt', pre);
  assert.deepEqual(pre.data.intensity, { kind: 'ct-window', window: [-1000, 1000] });
  assert.deepEqual(ft.data.intensity, pre.data.intensity);
  // What initFromCheckpoint compares: the pretraining's recorded config against the fine-tuning run.
  assert.deepEqual(initMismatches(JSON.parse(JSON.stringify(pre)) as Record<string, unknown>, ft), []);
  assert.equal(ft.model.classNum, DEMO_CLASSES.values.length + 1);
  assert.equal(ft.training.iterations, 16);
  assert.equal(pre.training.iterations, 12);
  assert.equal(pre.training.validEvery, 6);
});

test('misfm demo: a non-integer budget is an ARGUMENT error naming the flag, before any work', () => {
  for (const [flag, value] of [['--pretrain-iterations', 'abc'], ['--finetune-iterations', '0'], ['--pretrain-iterations', '']]) {
    const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin/misfm.js'), 'demo', '--out', '/nonexistent/never-written', flag!, value!], { encoding: 'utf8' });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`${flag} must be a positive integer, got '${value}'`));
  }
});
