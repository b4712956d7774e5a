/**
 * `misfm pretrain`: Volume Fusion self-supervised pretraining (spec 2), wired from the pieces:
 * cache (prepared automatically from a raw folder), fused batches, the model, the shared trainer,
 * and a pseudo-segmentation Dice on a fixed, seeded set of fused samples from held-out scans.
 */
import path from 'node:path';
import { existsSync, mkdirSync } from 'node:fs';
import type { RunConfig } from '../config/types.js';
import { saveConfig } from '../config/index.js';
import { fusionMaskOptions } from '../config/derive.js';
import { prepare } from '../data/prepare.js';
import { readyCases } from '../data/manifest.js';
import type { LoaderOptions } from '../data/loader.js';
import { FusionStream, fusedToTensors, type FusedArrays, type FusionStreamState } from './volume-fusion.js';
import { createModel } from '../models/registry.js';
import { manualSeed, fromTypedArray, noGrad } from '../engine/creation.js';
import { tidy } from '../engine/scope.js';
import { train, type TrainSummary, type TrainableModel, type ValidationResult } from '../train/trainer.js';
import { initFromCheckpoint } from '../train/init.js';
import { Rng } from '../util/rng.js';
import { MisfmError } from '../util/errors.js';

export interface PretrainOptions {
  config: RunConfig;
  /** A prepared cache folder (with manifest.json) or a raw folder / file list to prepare first. */
  data: string[];
  runDir: string;
  resume?: boolean;
  quiet?: boolean;
  /** Held-out scan ids for the pseudo-segmentation validation; default ~10% chosen by the seed. */
  validCases?: string[];
  /** Validation samples (default 8, or 4 for patches up to 32x64x64). */
  validSamples?: number;
  /** Simulated interruption for tests. */
  stopAt?: number;
  log?: (line: string) => void;
}

export interface PretrainResult extends TrainSummary {
  runDir: string;
  cache: string;
  trainCases: number;
  validCases: string[];
}

/** Use `data` as a cache when it has a manifest; otherwise prepare it into RUN/cache. */
export async function ensureCache(data: string[], runDir: string, log: (l: string) => void, opts: { labels?: string; csv?: string } = {}): Promise<string> {
  if (data.length === 1 && existsSync(path.join(data[0]!, 'manifest.json'))) return data[0]!;
  const cache = path.join(runDir, 'cache');
  log(`preparing ${data.join(', ')} into ${cache}`);
  const r = await prepare(data, cache, opts);
  for (const f of r.report.failures) log(`  skipped ${f.source}: ${f.reason}`);
  if (r.report.manifestOk === 0) throw new MisfmError('DATA', `no usable image in ${data.join(', ')} (see ${path.join(cache, 'report.json')})`);
  return cache;
}

/** Held-out scans: ~10% (at least 1) when there are 3 or more, chosen by the seed. */
export function splitHeldOut(ids: readonly string[], seed: number): { train: string[]; valid: string[] } {
  const sorted = [...ids].sort();
  if (sorted.length < 3) return { train: sorted, valid: [] };
  new Rng(seed).fork(7).shuffle(sorted);
  const nv = Math.max(1, Math.round(sorted.length * 0.1));
  return { train: sorted.slice(nv).sort(), valid: sorted.slice(0, nv).sort() };
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

/** Pseudo-segmentation Dice over fusion levels 1..K, accumulated over the whole validation set. */
export function fusionDice(model: TrainableModel, samples: FusedArrays[], levels: number): ValidationResult {
  const inter = new Float64Array(levels + 1), sumP = new Float64Array(levels + 1), sumG = new Float64Array(levels + 1);
  for (const s of samples) {
    const pred = noGrad(() => tidy(() => {
      const x = fromTypedArray(s.image, s.shape);
      const out = model.forward(x);
      const logits = Array.isArray(out) ? out[0]! : out;
      return logits.argmax(1).to('uint8');
    }));
    const p = pred.data() as Uint8Array;
    pred.dispose();
    const g = s.levels;
    for (let i = 0; i < p.length; i++) {
      const a = p[i]!, b = g[i]!;
      sumP[a]!++; sumG[b]!++;
      if (a === b) inter[a]!++;
    }
  }
  const metrics: Record<string, number> = {};
  let sum = 0, total = 0, chance = 0;
  for (let k = 0; k <= levels; k++) total += sumG[k]!;
  for (let k = 1; k <= levels; k++) {
    const dice = (2 * inter[k]! + 1e-5) / (sumP[k]! + sumG[k]! + 1e-5);
    metrics[`dice_level${k}`] = dice;
    sum += dice;
    // A guess drawn independently from the true level frequencies has expected Dice p_k for level k.
    chance += total > 0 ? sumG[k]! / total : 0;
  }
  metrics['chance'] = chance / levels;
  return { score: sum / levels, metrics };
}

/** Run Volume Fusion pretraining end to end. */
export async function pretrain(o: PretrainOptions): Promise<PretrainResult> {
  const cfg = o.config;
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  if (cfg.task !== 'pretrain') throw new MisfmError('CONFIG', `task must be 'pretrain' for misfm pretrain, got '${cfg.task}'`);
  mkdirSync(o.runDir, { recursive: true });
  const latest = path.join(o.runDir, 'checkpoints', 'latest.pt');
  if (o.resume === true && !existsSync(latest)) throw new MisfmError('DATA', `--resume: no checkpoint to resume from in ${o.runDir} (expected ${latest})`);
  saveConfig(path.join(o.runDir, 'config.json'), cfg);
  const cache = await ensureCache(o.data, o.runDir, log);
  const all = readyCases(cache).map((c) => c.id);
  let split: { train: string[]; valid: string[] };
  if (o.validCases !== undefined) {
    const unknown = o.validCases.filter((v) => !all.includes(v));
    if (unknown.length > 0) throw new MisfmError('ARGUMENT', `held-out scan(s) not in the data: ${unknown.join(', ')} (scans: ${all.join(', ')})`);
    split = { train: all.filter((i) => !o.validCases!.includes(i)), valid: [...o.validCases] };
    if (split.train.length === 0) throw new MisfmError('ARGUMENT', 'every scan is held out: no scan left for pretraining');
  } else {
    split = splitHeldOut(all, cfg.training.seed);
  }
  if (split.valid.length === 0) log(`note: only ${all.length} scan(s): validation uses separately seeded crops of the training scans`);
  const K = cfg.ssl.levels;
  const mask = fusionMaskOptions(cfg.ssl);
  const base = loaderOptions(cfg, cache);

  // A fixed validation set, made once: fused crops of held-out scans (foreground from any other scan).
  const nVal = o.validSamples ?? (cfg.data.patchSize[0] * cfg.data.patchSize[1] * cfg.data.patchSize[2] <= 32 * 64 * 64 ? 4 : 8);
  const valStream = await FusionStream.open({
    loader: { ...base, caseIds: split.valid.length > 0 ? split.valid : split.train, numSamples: nVal, batchSize: 1, workers: 1, flip: false },
    levels: K, mask, seed: cfg.training.seed + 7919, partnerCaseIds: all,
  });
  const validSet: FusedArrays[] = [];
  try { for (let i = 0; i < nVal; i++) validSet.push(await valStream.nextArrays()); } finally { await valStream.close(); }

  manualSeed(cfg.training.seed);
  const model = createModel(cfg.model) as TrainableModel;
  if (cfg.training.initCheckpoint !== null && o.resume !== true) await initFromCheckpoint(model, cfg.training.initCheckpoint, log);
  try {
    const summary = await train({
      model, config: cfg, runDir: o.runDir, quiet: o.quiet ?? false,
      ...(o.resume === true ? { resumeFrom: latest } : {}),
      ...(o.stopAt !== undefined ? { stopAt: o.stopAt } : {}),
      makeSource: async (pos) => {
        const stream = await FusionStream.open({
          loader: { ...base, caseIds: split.train }, levels: K, mask, seed: cfg.training.seed, resume: (pos as FusionStreamState | null) ?? null,
          partnerCaseIds: split.train.length >= 2 ? split.train : all,
        });
        return {
          next: async () => fusedToTensors(await stream.nextArrays(), K),
          position: () => stream.state(),
          close: () => stream.close(),
        };
      },
      validate: async (m) => fusionDice(m, validSet, K),
    });
    return { ...summary, runDir: o.runDir, cache, trainCases: split.train.length, validCases: split.valid };
  } finally {
    model.dispose();
  }
}
