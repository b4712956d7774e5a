import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { VERSION } from '../src/version.js';
import * as misfm from '../src/index.js';
import { repoRoot } from './helpers.js';

const cli = (args: string[]): { status: number | null; out: string; err: string } => {
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin/misfm.js'), ...args], { encoding: 'utf8' });
  return { status: r.status, out: r.stdout, err: r.stderr };
};

test('version agrees with package.json and the CLI', () => {
  const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  assert.equal(VERSION, pkg.version);
  assert.equal(cli(['--version']).out.trim(), `misfm ${pkg.version}`);
});

test('the public barrel exposes the main entry points', () => {
  for (const name of ['createModel', 'loadPretrained', 'loadCheckpointFile', 'readImage', 'pretrain', 'finetune', 'predictCase', 'tidy', 'Tensor']) {
    assert.equal(typeof (misfm as Record<string, unknown>)[name], 'function', name);
  }
});

test('help lists every command; unknown commands and bad input give one clear line and exit 2', () => {
  const help = cli(['--help']);
  assert.equal(help.status, 0);
  for (const c of ['demo', 'convert', 'prepare', 'pretrain', 'train', 'predict', 'evaluate', 'inspect', 'plot', 'doctor']) assert.match(help.out, new RegExp(`\\n  ${c} `));
  const bad = cli(['frobnicate']);
  assert.equal(bad.status, 2);
  assert.match(bad.err, /unknown command 'frobnicate'/);
  const missing = cli(['inspect', '/nonexistent/model.pt']);
  assert.equal(missing.status, 2);
  assert.match(missing.err, /^misfm inspect: error: .*\/nonexistent\/model\.pt/);
  assert.doesNotMatch(missing.err, /\n\s+at /, 'no stack trace');
});

test('doctor reports the engine', () => {
  const r = cli(['doctor', '--json']);
  assert.equal(r.status, 0);
  const d = JSON.parse(r.out) as { torch: string; threads: { intraOp: number } };
  assert.match(d.torch, /^\d+\.\d+/);
  assert.ok(d.threads.intraOp >= 1);
});
