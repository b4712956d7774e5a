/**
 * `misfm pretrain`: self-supervised pretraining, wired from the pieces: the cache (prepared
 * automatically from a raw folder), a held-out split, the pretext method of `config.ssl.method`
 * (src/ssl/methods.ts: its batches, loss and validation), the model and the shared trainer.
 * Volume Fusion is the default method.
 */
import path from 'node:path';
import { augmentActive } from '../data/augment.js';
import type { RunConfig } from '../config/types.js';
import { readyCases } from '../data/manifest.js';
import type { LoaderOptions } from '../data/loader.js';
import { createModel } from '../models/registry.js';
import { manualSeed } from '../engine/creation.js';
import { train, type TrainSummary, type TrainableModel } from '../train/trainer.js';
import { initFromCheckpoint } from '../train/init.js';
import { ensureCache, explicitSplit, seededSplit, setUpCache, startRun, type Split } from '../train/run-setup.js';
import { pretextMethod } from './methods.js';
import { existsSync, readFileSync } from 'node:fs';
import { MisfmError } from '../util/errors.js';

export { fusionDice } from './volf-method.js';
import type { DistributedContext } from '../distributed/context.js';

export interface PretrainOptions {
  config: RunConfig;
  /** A prepared cache folder (with manifest.json) or a raw folder / file list to prepare first. */
  data: string[];
  runDir: string;
  resume?: boolean;
  quiet?: boolean;
  /** Held-out scan ids for the method's validation; default ~10% chosen by the seed. */
  validCases?: string[];
  /** Validation samples (default 8, or 4 for patches up to 32x64x64). */
  validSamples?: number;
  /** Simulated interruption for tests. */
  stopAt?: number;
  log?: (line: string) => void;
  /** Data-parallel run (from `joinFromEnvironment`); null or absent for one process. */
  distributed?: DistributedContext | null;
}

export interface PretrainResult extends TrainSummary {
  runDir: string;
  cache: string;
  trainCases: number;
  validCases: string[];
}

/** Held-out scans: ~10% (at least 1) when there are 3 or more, chosen by the seed. */
export function splitHeldOut(ids: readonly string[], seed: number): Split {
  return ids.length < 3 ? { train: [...ids].sort(), valid: [] } : seededSplit(ids, seed, 0.1);
}

function loaderOptions(cfg: RunConfig, cache: string): LoaderOptions {
  const d = cfg.data;
  return {
    cache,
    cropSize: d.patchSize,
    batchSize: d.batchSize,
    workers: Math.max(1, d.numWorkers),
    prefetch: d.prefetch,
    intensity: d.intensity.kind === 'ct-window' ? { name: 'ct-window', lo: d.intensity.window[0], hi: d.intensity.window[1] } : { name: 'zscore' },
    flip: { axes: [d.flips.depth, d.flips.height, d.flips.width], p: d.flipProbability },
  };
}

export { ensureCache };

/** A resumed run must keep its pretext method (its head and batches): refuse a switch. */
function checkSameMethod(cfg: RunConfig, runDir: string): void {
  const file = path.join(runDir, 'config.json');
  if (!existsSync(file)) return;
  let saved: unknown;
  try { saved = JSON.parse(readFileSync(file, 'utf8')); } catch { return; } // startRun / the checkpoint report a damaged run
  const ssl = (saved as { ssl?: { method?: unknown } } | null)?.ssl;
  const method = typeof ssl?.method === 'string' ? ssl.method : 'volf';
  if (method !== cfg.ssl.method) {
    throw new MisfmError('CONFIG', `--resume: the run in ${runDir} pretrains with method '${method}', not '${cfg.ssl.method}' (start a new run folder to change the method)`, { file });
  }
}

/** Run self-supervised pretraining (the method of config.ssl.method) end to end. */
export async function pretrain(o: PretrainOptions): Promise<PretrainResult> {
  let cfg = o.config;
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  if (o.resume === true) checkSameMethod(cfg, o.runDir);
  const dist = o.distributed ?? null;
  const latest = startRun(cfg, 'pretrain', 'misfm pretrain', o.runDir, o.resume === true);
  const set = await setUpCache(cfg, o.data, o.runDir, log, { spacing: cfg.data.spacing }, dist);
  const cache = set.cache;
  cfg = set.config;
  const all = readyCases(cache).map((c) => c.id);
  const split = o.validCases !== undefined
    ? explicitSplit(all, o.validCases, { item: 'scan', held: 'held-out', pool: 'the data' })
    : splitHeldOut(all, cfg.training.seed);
  if (split.valid.length === 0) log(`note: only ${all.length} scan(s): validation uses separately seeded crops of the training scans`);
  if (augmentActive(cfg.data.augment)) log('note: data.augment applies to fine-tuning only; pretraining ignores it');
  const method = pretextMethod(cfg.ssl.method);
  const nVal = o.validSamples ?? (cfg.data.patchSize[0] * cfg.data.patchSize[1] * cfg.data.patchSize[2] <= 32 * 64 * 64 ? 4 : 8);
  const task = await method.setup({
    config: cfg, loader: loaderOptions(cfg, cache), ...(dist !== null ? { shard: { rank: dist.rank, worldSize: dist.worldSize } } : {}), trainCases: split.train, validCases: split.valid, allCases: all, validSamples: nVal, log,
  });

  manualSeed(cfg.training.seed);
  const model = task.createModel !== undefined ? task.createModel() : createModel(cfg.model) as TrainableModel;
  if (cfg.training.initCheckpoint !== null && o.resume !== true) await initFromCheckpoint(model, cfg.training.initCheckpoint, log, cfg);
  try {
    const summary = await train({
      model, config: cfg, runDir: o.runDir, quiet: o.quiet ?? false,
      ...(o.resume === true ? { resumeFrom: latest } : {}),
      ...(o.stopAt !== undefined ? { stopAt: o.stopAt } : {}),
      makeSource: task.makeSource,
      validate: task.validate,
      ...(task.loss !== undefined ? { loss: task.loss } : {}),
      distributed: dist,
    });
    task.finish?.(model, o.runDir, summary.iterations);
    return { ...summary, runDir: o.runDir, cache, trainCases: split.train.length, validCases: split.valid };
  } finally {
    model.dispose();
  }
}
