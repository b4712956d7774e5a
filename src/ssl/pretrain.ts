/**
 * `misfm pretrain`: Volume Fusion self-supervised pretraining (spec 2), wired from the pieces:
 * cache (prepared automatically from a raw folder), fused batches, the model, the shared trainer,
 * and a pseudo-segmentation Dice on a fixed, seeded set of fused samples from held-out scans.
 */
import { augmentActive } from '../data/augment.js';
import type { RunConfig } from '../config/types.js';
import { fusionMaskOptions } from '../config/derive.js';
import { readyCases } from '../data/manifest.js';
import type { LoaderOptions } from '../data/loader.js';
import { FusionStream, fusedToTensors, type FusedArrays, type FusionStreamState } from './volume-fusion.js';
import { createModel } from '../models/registry.js';
import { manualSeed, fromTypedArray, noGrad } from '../engine/creation.js';
import { tidy } from '../engine/scope.js';
import { train, type TrainSummary, type TrainableModel, type ValidationResult } from '../train/trainer.js';
import { initFromCheckpoint } from '../train/init.js';
import { ensureCache, explicitSplit, recordCache, seededSplit, startRun, type Split } from '../train/run-setup.js';

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

export { ensureCache };

/** Run Volume Fusion pretraining end to end. */
export async function pretrain(o: PretrainOptions): Promise<PretrainResult> {
  let cfg = o.config;
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const latest = startRun(cfg, 'pretrain', 'misfm pretrain', o.runDir, o.resume === true);
  const cache = await ensureCache(o.data, o.runDir, log, { spacing: cfg.data.spacing });
  cfg = recordCache(cfg, cache, o.runDir);
  const all = readyCases(cache).map((c) => c.id);
  const split = o.validCases !== undefined
    ? explicitSplit(all, o.validCases, { item: 'scan', held: 'held-out', pool: 'the data' })
    : splitHeldOut(all, cfg.training.seed);
  if (split.valid.length === 0) log(`note: only ${all.length} scan(s): validation uses separately seeded crops of the training scans`);
  if (augmentActive(cfg.data.augment)) log('note: data.augment applies to fine-tuning only; Volume Fusion pretraining ignores it');
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
  if (cfg.training.initCheckpoint !== null && o.resume !== true) await initFromCheckpoint(model, cfg.training.initCheckpoint, log, cfg);
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
