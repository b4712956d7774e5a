/**
 * Volume Fusion pretraining throughput: iterations/s and the data-wait fraction of `misfm pretrain`
 * (loader workers + fusion + trainer) on real CTs, for `--preset small` and the paper
 * configuration, against the same trainer fed a fixed in-memory batch (compute only: no loading,
 * cropping or fusion) measured in the same run. The ratio pipeline/compute shows what the data
 * path costs on top of the network; the data-wait fraction is the share of each iteration spent
 * waiting for a batch (target < 5%). Each configuration runs in its own child process, so its peak
 * RSS is its own; the first iteration of each run (warm-up) is not counted.
 *
 *   npx tsc -p tsconfig.json && node bin/misfm.js --version >/dev/null; \
 *   node dist/bench/pretrain.js [--configs small,paper] [--iterations-small 12] [--iterations-paper 3] [--threads 2]
 *
 * Run it through the same allocator as the CLI (the benchmark re-executes itself like bin/misfm.js).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { applyOverrides, presetConfig } from '../src/config/index.js';
import type { RunConfig } from '../src/config/types.js';
import { fromTypedArray, manualSeed, setNumThreads } from '../src/engine/creation.js';
import { createModel } from '../src/models/index.js';
import { pretrain } from '../src/ssl/pretrain.js';
import { prepare } from '../src/data/prepare.js';
import { train, type TrainableModel } from '../src/train/trainer.js';
import { readMetricsLog, recordsOf } from '../src/train/metrics-log.js';
// @ts-expect-error plain JS module shared with the launcher
import { allocatorEnv } from '../../bin/allocator.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = ((): string => { let d = here; for (let i = 0; i < 5; i++) { if (existsSync(path.join(d, 'package.json'))) return d; d = path.dirname(d); } return process.cwd(); })();
const args = process.argv.slice(2);
const opt = (name: string, def: string): string => { const i = args.indexOf(`--${name}`); return i >= 0 ? (args[i + 1] ?? def) : def; };
const THREADS = Number(opt('threads', '2'));
const SHARED = path.resolve(repoRoot, '../shared/data');
const SCANS = ['01_totalseg_abdomen_ct/ct.nii.gz', '03_totalseg_chest_cta/ct.nii.gz', '04_invesalius_head_ct/ct.nii.gz'].map((p) => path.join(SHARED, p));

interface Measured { config: string; variant: 'pipeline' | 'compute'; iterations: number; secondsPerIteration: number; dataWaitFraction: number; peakRssGb: number }

function configFor(name: string, iterations: number, runDir: string): RunConfig {
  return applyOverrides(presetConfig(name === 'paper' ? 'paper' : 'small'), [
    `training.iterations=${iterations}`, `training.validEvery=${iterations + 1}`, `training.saveEvery=${iterations + 1}`,
    `training.threads=${THREADS}`, `output.dir=${JSON.stringify(runDir)}`,
  ]);
}

/** Mean over the logged iterations after the first: seconds per iteration and data-wait share. */
function summarise(runDir: string): { n: number; spi: number; wait: number } {
  const ev = (recordsOf(readMetricsLog(runDir), 'train') as unknown as { iteration: number; dataWaitMs: number; stepMs: number }[])
    .filter((e) => e.iteration > 1);
  const wait = ev.reduce((a, e) => a + e.dataWaitMs, 0), step = ev.reduce((a, e) => a + e.stepMs, 0);
  return { n: ev.length, spi: (wait + step) / 1000 / Math.max(1, ev.length), wait: wait / Math.max(1e-9, wait + step) };
}

async function child(config: string, variant: 'pipeline' | 'compute', iterations: number, cache: string): Promise<Measured> {
  setNumThreads(THREADS);
  const runDir = mkdtempSync(path.join(os.tmpdir(), `misfm-bench-pretrain-${config}-${variant}-`));
  try {
    const cfg = configFor(config, iterations, runDir);
    if (variant === 'pipeline') {
      await pretrain({ config: cfg, data: [cache], runDir, quiet: true, validSamples: 1, log: () => {} });
    } else {
      manualSeed(1);
      const model = createModel(cfg.model) as TrainableModel;
      const [d, h, w] = cfg.data.patchSize, n = cfg.data.batchSize, k = cfg.ssl.levels + 1;
      const img = new Float32Array(n * d * h * w).map(() => Math.random() * 2 - 1);
      const tgt = new Float32Array(n * k * d * h * w);
      for (let i = 0; i < n * d * h * w; i++) { const b = Math.floor(i / (d * h * w)), v = i % (d * h * w); tgt[(b * k + (i % k)) * d * h * w + v] = 1; }
      try {
        await train({
          model, config: cfg, runDir, quiet: true,
          makeSource: async () => ({
            next: async () => ({ image: fromTypedArray(img, [n, 1, d, h, w]), target: fromTypedArray(tgt, [n, k, d, h, w]) }),
            position: () => null, close: async () => {},
          }),
        });
      } finally { model.dispose(); }
    }
    const s = summarise(runDir);
    return { config, variant, iterations: s.n, secondsPerIteration: s.spi, dataWaitFraction: s.wait, peakRssGb: process.resourceUsage().maxRSS / 2 ** 20 };
  } finally {
    rmSync(runDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (args[0] === '--child') {
    const r = await child(args[1]!, args[2] as 'pipeline' | 'compute', Number(args[3]), args[4]!);
    process.stdout.write(`RESULT ${JSON.stringify(r)}\n`);
    return;
  }
  const missing = SCANS.filter((s) => !existsSync(s));
  if (missing.length > 0) throw new Error(`bench/pretrain needs the real CTs of ../shared/data (missing ${missing.join(', ')})`);
  const configs = opt('configs', 'small,paper').split(',');
  const its: Record<string, number> = { small: Number(opt('iterations-small', '12')), paper: Number(opt('iterations-paper', '3')) };
  const work = mkdtempSync(path.join(os.tmpdir(), 'misfm-bench-pretrain-'));
  try {
    const cache = path.join(work, 'cache');
    await prepare(SCANS, cache, { workers: 2, progress: false });
    const env = { ...process.env, ...allocatorEnv(process.env, existsSync), MISFM_NUM_THREADS: String(THREADS), OMP_NUM_THREADS: String(THREADS) };
    console.log(`bench/pretrain: ${THREADS} threads, ${SCANS.length} real CTs, allocator ${env.LD_PRELOAD ?? 'glibc'}; first iteration of each run not counted`);
    for (const c of configs) {
      const res: Partial<Record<'pipeline' | 'compute', Measured>> = {};
      for (const v of ['compute', 'pipeline'] as const) {
        // The compute-only reference needs fewer iterations: its steps do not vary with the data.
        const n = v === 'compute' ? Math.max(2, Math.ceil(its[c]! / 2)) : its[c]!;
        const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', c, v, String(n + 1), cache], { encoding: 'utf8', env, maxBuffer: 16 << 20 });
        const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
        if (r.status !== 0 || line === undefined) { console.log(`${c} ${v}: failed (${r.status})\n${r.stderr.slice(-2000)}`); continue; }
        res[v] = JSON.parse(line.slice(7)) as Measured;
      }
      const p = res.pipeline, q = res.compute;
      if (p === undefined || q === undefined) continue;
      console.log(`${c.padEnd(5)}  pipeline ${(1 / p.secondsPerIteration).toFixed(3)} it/s (${p.secondsPerIteration.toFixed(2)} s/it over ${p.iterations} its), ` +
        `data wait ${(p.dataWaitFraction * 100).toFixed(1)}%, peak RSS ${p.peakRssGb.toFixed(2)} GB | compute only ${q.secondsPerIteration.toFixed(2)} s/it, ` +
        `peak ${q.peakRssGb.toFixed(2)} GB | ratio pipeline/compute ${(p.secondsPerIteration / q.secondsPerIteration).toFixed(3)}`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
