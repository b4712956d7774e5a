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
  for (const c of ['demo', 'convert', 'prepare', 'pretrain', 'train', 'predict', 'evaluate', 'inspect', 'plot', 'doctor', 'setup']) assert.match(help.out, new RegExp(`\\n  ${c} `));
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
  const p = (JSON.parse(r.out) as { precision: { auto: string; reason: string } }).precision;
  assert.ok(p.auto === 'fp32' || p.auto === 'bf16', 'doctor says what --precision auto picks');
  assert.match(p.reason, /^auto: /);
});

test('setup --dry-run on a set-up clone changes nothing and finds the addon', () => {
  const r = cli(['setup', '--dry-run']);
  assert.equal(r.status, 0, r.err);
  assert.match(r.out, /system packages present/);
  assert.match(r.out, /native addon present \(.*native\/build\/Release\/misfm_native\.node\)/);
});

test('the launcher picks jemalloc when installed, tuned glibc otherwise, and respects a user choice', async () => {
  // @ts-expect-error plain JS module shared with the launcher
  const { allocatorEnv, JEMALLOC_CONF, JEMALLOC_PATHS } = await import('../../bin/allocator.js') as {
    allocatorEnv: (env: NodeJS.ProcessEnv, exists: (p: string) => boolean) => Record<string, string>; JEMALLOC_CONF: string; JEMALLOC_PATHS: string[];
  };
  assert.deepEqual(allocatorEnv({}, (p) => p === JEMALLOC_PATHS[0]), { LD_PRELOAD: JEMALLOC_PATHS[0], MALLOC_CONF: JEMALLOC_CONF });
  assert.deepEqual(allocatorEnv({}, () => false), { MALLOC_MMAP_THRESHOLD_: '17179869184', MALLOC_TRIM_THRESHOLD_: '17179869184' });
  assert.deepEqual(allocatorEnv({ LD_PRELOAD: '/opt/tcmalloc.so' }, () => true), {});
  assert.deepEqual(allocatorEnv({ MALLOC_MMAP_THRESHOLD_: '1' }, () => true), {});
  // The re-executed CLI reports what it runs under.
  const env = { ...process.env };
  for (const k of ['MISFM_ALLOCATOR_SET', 'MISFM_NO_MALLOC_TUNING', 'LD_PRELOAD', 'MALLOC_CONF', 'MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_']) delete env[k];
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin/misfm.js'), 'doctor'], { encoding: 'utf8', env });
  assert.equal(r.status, 0, r.stderr);
  const { existsSync } = await import('node:fs');
  assert.match(r.stdout, JEMALLOC_PATHS.some((p) => existsSync(p)) ? /allocator +jemalloc \(oversize_threshold:0/ : /allocator +glibc, mmap threshold 17179869184/);
  // The c10d backends this build can create (issue 14): Gloo always on CPU builds.
  assert.match(r.stdout, /\ndistributed +c10d Gloo \(CPU\)/);
});
