/**
 * Data parallel on one machine: iteration time of `misfm pretrain --nproc 2` (two processes, one
 * thread each, batch 1 each) against one process with two threads and batch 2 (the same global
 * batch: the same samples per optimizer step), in the same run, on the bundled real CTs with the
 * small PCT-Net. Also the communication share of a data-parallel iteration (the gradient average,
 * `commMs` in the metrics log, over the step time). On a 2-core machine this shows what splitting
 * the cores across processes costs or gains; data parallel is for more machines, not for this one.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/ddp-iteration.js [--iterations 12]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readMetricsLog, recordsOf } from '../src/train/metrics-log.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = ((): string => { let d = here; for (let i = 0; i < 5; i++) { if (existsSync(path.join(d, 'package.json'))) return d; d = path.dirname(d); } return process.cwd(); })();
const args = process.argv.slice(2);
const opt = (name: string, def: string): string => { const i = args.indexOf(`--${name}`); return i >= 0 ? (args[i + 1] ?? def) : def; };
const ITERATIONS = Number(opt('iterations', '12'));

function misfm(argv: string[]): void {
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'misfm.js'), ...argv], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) throw new Error(`misfm ${argv.join(' ')} failed (${r.status}):\n${r.stderr}`);
}

interface Summary { spi: number; stepMs: number; commMs: number | null; n: number }

function median(xs: number[]): number { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; }

/** Medians over the logged iterations after the first two (warm-up). */
function summarise(runDir: string): Summary {
  const ev = (recordsOf(readMetricsLog(runDir), 'train') as unknown as { iteration: number; dataWaitMs: number; stepMs: number; commMs?: number }[])
    .filter((e) => e.iteration > 2);
  const comm = ev.filter((e) => typeof e.commMs === 'number').map((e) => e.commMs!);
  return { n: ev.length, spi: median(ev.map((e) => e.dataWaitMs + e.stepMs)) / 1000, stepMs: median(ev.map((e) => e.stepMs)), commMs: comm.length > 0 ? median(comm) : null };
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'misfm-bench-ddp-'));
try {
  const cache = path.join(dir, 'cache');
  misfm(['prepare', path.join(repoRoot, 'data', 'sample', 'images'), '--out', cache, '--spacing', '2,2,2', '--quiet']);
  const common = ['pretrain', '--data', cache, '--preset', 'small', '--iterations', String(ITERATIONS), '--quiet',
    '--set', `training.validEvery=${ITERATIONS + 1}`, '--set', `training.saveEvery=${ITERATIONS + 1}`, '--set', 'training.seed=1'];
  const single = path.join(dir, 'single'), ddp = path.join(dir, 'ddp');
  misfm([...common, '--out', single, '--threads', '2', '--set', 'data.batchSize=2']);
  misfm([...common, '--out', ddp, '--nproc', '2', '--threads', '1', '--set', 'data.batchSize=1']);
  const a = summarise(single), b = summarise(ddp);
  console.log(`small PCT-Net Volume Fusion pretraining on the bundled CTs (2 mm), global batch 2, median of ${a.n} / ${b.n} iterations after 2 warm-up`);
  console.log(`1 process x 2 threads, batch 2        ${a.spi.toFixed(2)} s/iteration`);
  console.log(`2 processes x 1 thread, batch 1 each  ${b.spi.toFixed(2)} s/iteration (rank 0)`);
  console.log(`ratio: --nproc 2 iteration time = ${(b.spi / a.spi).toFixed(2)}x the single process's`);
  if (b.commMs !== null) console.log(`communication (gradient average) ${b.commMs.toFixed(0)} ms = ${(100 * b.commMs / b.stepMs).toFixed(1)}% of a data-parallel step`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
