import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { repoRoot } from '../helpers.js';
import { buildCache, patternCT, vol, tempDir } from '../data/helpers.js';
import { loadTrainingCheckpoint } from '../../src/train/state.js';
import { parseMaster } from '../../src/distributed/launch.js';

const bin = path.join(repoRoot, 'bin/misfm.js');
const SMALL = ['--preset', 'small', '--set', 'model.featureChns=[4,8,16,32,64]', '--set', 'model.inputSize=[16,32,32]', '--set', 'data.patchSize=[16,32,32]',
  '--set', 'ssl.blocks.sizeMax=[10,20,20]', '--set', 'data.batchSize=1', '--set', 'training.validEvery=2', '--set', 'training.saveEvery=1', '--valid', 'c', '--valid-samples', '2'];

function cache(): string {
  const c = path.join(tempDir('launch'), 'cache');
  const dhw: [number, number, number] = [20, 36, 36];
  buildCache(c, ['a', 'b', 'c'].map((id, i) => ({ id, image: vol(patternCT(dhw).map((v) => v + 100 * i), dhw) })));
  return c;
}

test('pretrain --nproc 2: one worker killed with SIGKILL -> the launcher names the rank, exits non-zero, and the run resumes with one process', { timeout: 240_000 }, async () => {
  const data = cache();
  const run = path.join(path.dirname(data), 'run');
  const env = { ...process.env, MISFM_NUM_THREADS: '1', MISFM_DIST_TIMEOUT_MS: '30000' };
  const p = spawn(process.execPath, [bin, 'pretrain', '--nproc', '2', '--data', data, '--out', run, '--iterations', '200', ...SMALL], { env });
  let err = '';
  p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<number | null>((resolve) => p.on('exit', (code) => resolve(code)));
  // Kill rank 1 once rank 0 has written a checkpoint.
  const latest = path.join(run, 'checkpoints', 'latest.pt');
  const t0 = Date.now();
  while (!existsSync(latest) && Date.now() - t0 < 120_000) await new Promise((r) => setTimeout(r, 200));
  assert.ok(existsSync(latest), `no checkpoint after 120 s: ${err}`);
  const pid = Number(/rank 1 started \(pid (\d+)\)/.exec(err)?.[1]);
  assert.ok(pid > 0, err);
  const killedAt = Date.now();
  process.kill(pid, 'SIGKILL');
  const code = await exited;
  assert.notEqual(code, 0);
  assert.match(err, /rank 1 \(pid \d+\) was killed by SIGKILL; stopping the other ranks/);
  assert.ok(Date.now() - killedAt < 60_000, `the launcher took ${Date.now() - killedAt} ms to end`);
  assert.doesNotMatch(err, /\n\s+at .*\.js:\d+/, 'no stack trace');

  const saved = loadTrainingCheckpoint(latest).iteration;
  assert.ok(saved >= 1);
  const r = spawnSync(process.execPath, [bin, 'pretrain', '--resume', '--data', data, '--out', run, '--iterations', String(saved + 2), ...SMALL], { env, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`finished at iteration ${saved + 2}`));
  const events = readFileSync(path.join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(events.find((e) => e['event'] === 'distributed')?.['worldSize'], 2);
  assert.ok(events.some((e) => e['event'] === 'resume' && e['iteration'] === saved));
});

test('launch: usage errors are one clear line', () => {
  const r = spawnSync(process.execPath, [bin, 'launch', '--nproc', '2'], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /nothing to launch/);
  const r2 = spawnSync(process.execPath, [bin, 'launch', '--nproc', '2', '--nnodes', '2', '--', 'pretrain'], { encoding: 'utf8' });
  assert.match(r2.stderr, /--master HOST:PORT is required/);
  assert.deepEqual(parseMaster('10.0.0.1:29500'), { host: '10.0.0.1', port: 29500 });
  assert.deepEqual(parseMaster('[::1]:1234'), { host: '::1', port: 1234 });
  assert.throws(() => parseMaster('host'), /HOST:PORT/);
});
