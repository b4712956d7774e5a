import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCheckpointFile } from '../../src/io/checkpoint/index.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'misfm-signal-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'signal-child.js');

function trainLines(runDir: string): number {
  const f = path.join(runDir, 'metrics.jsonl');
  return existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter((l) => l.includes('"event":"train"')).length : 0;
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  test(`${sig} during training with batches always ready: the step finishes, a checkpoint is written, exit 130`, async () => {
    const runDir = path.join(tmp, sig);
    const p = spawn(process.execPath, [child, runDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const exited = new Promise<number | null>((resolve) => p.on('exit', (code) => resolve(code)));
    const t0 = Date.now();
    while (trainLines(runDir) < 3) {
      assert.ok(Date.now() - t0 < 120_000, `no training progress: ${err}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const sent = Date.now();
    p.kill(sig);
    const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000))]);
    if (code === 'timeout') p.kill('SIGKILL');
    assert.notEqual(code, 'timeout', `still training 30 s after ${sig}: the signal was not handled`);
    assert.equal(code, 130, `exit code (stderr: ${err})`);
    assert.match(err, new RegExp(`${sig}: finishing the current iteration and saving a checkpoint`));
    const summary = JSON.parse(out.trim()) as { interrupted: boolean; iterations: number };
    assert.equal(summary.interrupted, true);
    const ck = await loadCheckpointFile(path.join(runDir, 'checkpoints', 'latest.pt'));
    assert.equal(ck.meta.iteration, summary.iterations, 'the checkpoint holds the last finished iteration');
    assert.equal(trainLines(runDir), summary.iterations);
  });
}
