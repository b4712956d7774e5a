/**
 * `misfm train`: supervised fine-tuning (spec 3.1) on image/label pairs, from a pretrained
 * checkpoint (misfm, official MIS-FM / PyMIC .pt, safetensors) or from scratch. Patches come from
 * the cache with foreground oversampling and flips; validation segments whole held-out volumes with
 * the sliding window and scores the mean foreground Dice (the best checkpoint is kept on it).
 */
import { checkLabelValues } from './label-check.js';
import type { RunConfig } from '../config/types.js';
import { readyCases, type CachedCase } from '../data/manifest.js';
import { Loader, type LoaderOptions, type LoaderState } from '../data/loader.js';
import { CacheVolume } from '../data/reader.js';
import { createModel } from '../models/registry.js';
import type { SegmentationNetwork } from '../models/types.js';
import { manualSeed, fromTypedArray } from '../engine/creation.js';
import * as F from '../engine/functional.js';
import { train, type TrainSummary, type TrainableModel, type ValidationResult } from './trainer.js';
import { adoptInitPreprocessing, initFromCheckpoint, type AdoptableKey } from './init.js';
import { explicitSplit, seededSplit, setUpCache, startRun, type Split } from './run-setup.js';
import { reduceSum, shardItems, type DistributedContext } from '../distributed/context.js';
import { slidingWindowSegment, modelPredictor } from '../infer/sliding-window.js';
import { MisfmError } from '../util/errors.js';

export interface FinetuneOptions {
  config: RunConfig;
  /** Cache folder, or image inputs to prepare (with labelsDir / csv). */
  data: string[];
  labelsDir?: string;
  csv?: string;
  runDir: string;
  resume?: boolean;
  quiet?: boolean;
  /** Case ids to validate on; default: ~20% of the labelled cases (at least 1) chosen by the seed. */
  validCases?: string[];
  stopAt?: number;
  log?: (line: string) => void;
  /** Data-parallel run (from `joinFromEnvironment`); null or absent for one process. */
  distributed?: DistributedContext | null;
  /**
   * Config keys the caller set explicitly: those keep their value when the init checkpoint's
   * preprocessing is adopted (see adoptInitPreprocessing). Default none.
   */
  explicit?: readonly AdoptableKey[];
}

export interface FinetuneResult extends TrainSummary {
  runDir: string;
  cache: string;
  trainCases: string[];
  validCases: string[];
  classNames: string[];
}

/** Label value -> class index from data.labels (null: keep values). */
export function labelMapOf(cfg: RunConfig): Record<number, number> | undefined {
  const l = cfg.data.labels;
  if (l === null) return undefined;
  return Object.fromEntries(l.values.map((v, i) => [v, i + 1]));
}

function normalise(cfg: RunConfig, data: ArrayLike<number>, c: CachedCase): Float32Array {
  const out = new Float32Array(data.length);
  const it = cfg.data.intensity;
  if (it.kind === 'ct-window') {
    const [lo, hi] = it.window;
    const a = 2 / (hi - lo);
    for (let i = 0; i < out.length; i++) { const v = Math.min(hi, Math.max(lo, data[i]!)); out[i] = (v - lo) * a - 1; }
  } else {
    let mean = c.stats?.mean, std = c.stats?.std;
    if (mean === undefined || std === undefined) {
      let s = 0, s2 = 0;
      for (let i = 0; i < data.length; i++) { s += data[i]!; s2 += data[i]! * data[i]!; }
      mean = s / data.length; std = Math.sqrt(Math.max(0, s2 / data.length - mean * mean));
    }
    for (let i = 0; i < out.length; i++) out[i] = (data[i]! - mean) / (std + 1e-5);
  }
  return out;
}

/** Mean foreground Dice of sliding-window segmentations of whole validation volumes. */
export function volumeValidator(cfg: RunConfig, cases: CachedCase[]): (model: TrainableModel, dist?: DistributedContext) => Promise<ValidationResult> {
  const map = labelMapOf(cfg);
  const C = cfg.model.classNum;
  return async (model, dist) => {
    // Counts, so that ranks can each segment a share of the cases and add them up exactly.
    const counts = new Float64Array(3 * C);
    const inter = counts.subarray(0, C), sp = counts.subarray(C, 2 * C), sg = counts.subarray(2 * C);
    for (const c of shardItems(dist, cases)) {
      const iv = CacheVolume.open(c.imageFile), lv = CacheVolume.open(c.labelFile!);
      let img: Float32Array, lab: ArrayLike<number>, shape: [number, number, number];
      try { img = normalise(cfg, iv.readAll(), c); lab = lv.readAll(); shape = [...iv.shape] as [number, number, number]; } finally { iv.close(); lv.close(); }
      const x = fromTypedArray(img, [1, 1, ...shape]);
      const r = slidingWindowSegment(modelPredictor(model as unknown as SegmentationNetwork), x, {
        window: cfg.model.name === 'pctnet' ? cfg.model.inputSize : cfg.data.patchSize,
        overlap: cfg.inference.overlap, batchSize: cfg.inference.batchSize, sigmaScale: cfg.inference.sigmaScale,
      });
      x.dispose();
      const p = r.labels;
      for (let i = 0; i < p.length; i++) {
        const g0 = lab[i]!;
        const g = map === undefined ? g0 : (map[g0] ?? 0);
        const q = p[i]!;
        if (q < C) sp[q]!++;
        if (g < C) sg[g]!++;
        if (q === g && g < C) inter[g]!++;
      }
    }
    if (dist !== undefined && dist.worldSize > 1) counts.set(await reduceSum(dist, counts));
    const metrics: Record<string, number> = {};
    let sum = 0;
    const names = cfg.data.labels?.names;
    for (let k = 1; k < C; k++) {
      const d = (2 * inter[k]! + 1e-5) / (sp[k]! + sg[k]! + 1e-5);
      metrics[`dice_${names?.[k - 1] ?? k}`] = d;
      sum += d;
    }
    return { score: sum / (C - 1), metrics, reduced: true };
  };
}

/** Fine-tune end to end. */
export async function finetune(o: FinetuneOptions): Promise<FinetuneResult> {
  let cfg = o.config;
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const dist = o.distributed ?? null;
  if (o.resume !== true) {
    const adopted = await adoptInitPreprocessing(cfg, o.explicit ?? []);
    cfg = adopted.config;
    for (const l of adopted.lines) log(`adopted ${l}`);
  }
  const latest = startRun(cfg, 'finetune', 'misfm train', o.runDir, o.resume === true);
  const set = await setUpCache(cfg, o.data, o.runDir, log, { spacing: cfg.data.spacing, ...(o.labelsDir !== undefined ? { labels: o.labelsDir } : {}), ...(o.csv !== undefined ? { csv: o.csv } : {}) }, dist);
  const cache = set.cache;
  cfg = set.config;
  const cases = readyCases(cache, { needLabels: true });
  const ids = cases.map((c) => c.id);
  let split: Split;
  if (o.validCases !== undefined) {
    split = explicitSplit(ids, o.validCases, { item: 'case', held: 'validation', pool: 'the dataset' });
  } else if (ids.length >= 2) {
    split = seededSplit(ids, cfg.training.seed, 0.2);
  } else {
    split = { train: ids, valid: ids };
    log('note: a single labelled case: validation runs on the training case (no held-out estimate)');
  }
  if (split.train.length === 0) throw new MisfmError('DATA', 'no training case left after the validation split');
  checkLabelValues(cfg, cases, log);

  manualSeed(cfg.training.seed);
  const model = createModel(cfg.model) as unknown as TrainableModel;
  if (cfg.training.initCheckpoint !== null && o.resume !== true) await initFromCheckpoint(model, cfg.training.initCheckpoint, log, cfg);
  const d = cfg.data;
  const map = labelMapOf(cfg);
  const base: LoaderOptions = {
    cache, mode: 'segment', cropSize: d.patchSize, batchSize: d.batchSize, workers: Math.max(1, d.numWorkers), prefetch: d.prefetch,
    intensity: d.intensity.kind === 'ct-window' ? { name: 'ct-window', lo: d.intensity.window[0], hi: d.intensity.window[1] } : { name: 'zscore' },
    flip: { axes: [d.flips.depth, d.flips.height, d.flips.width], p: d.flipProbability },
    foregroundP: d.foregroundOversample, caseIds: split.train, ...(map !== undefined ? { labelMap: map } : {}),
    augment: d.augment,
  };
  const validCases = cases.filter((c) => split.valid.includes(c.id));
  try {
    const summary = await train({
      model, config: cfg, runDir: o.runDir, quiet: o.quiet ?? false,
      ...(o.resume === true ? { resumeFrom: latest } : {}),
      ...(o.stopAt !== undefined ? { stopAt: o.stopAt } : {}),
      makeSource: async (pos) => {
        const p = pos as LoaderState | null;
        const loader = await Loader.open({ ...base, seed: cfg.training.seed, startIndex: p?.nextIndex ?? 0,
          ...(dist !== null ? { shard: { rank: dist.rank, worldSize: dist.worldSize } } : {}) });
        return {
          next: async () => {
            const b = await loader.nextBatch();
            if (b === undefined || b.label === undefined) throw new MisfmError('DATA', 'the data loader ended unexpectedly');
            const [n, , dd, h, w] = b.shape;
            const image = fromTypedArray(b.image, b.shape);
            const lab = fromTypedArray(b.label, [n, dd, h, w]);
            const target = F.oneHot(lab, cfg.model.classNum);
            lab.dispose();
            return { image, target };
          },
          position: () => loader.state(),
          close: () => loader.close(),
        };
      },
      validate: volumeValidator(cfg, validCases),
      distributed: dist,
    });
    return { ...summary, runDir: o.runDir, cache, trainCases: split.train, validCases: split.valid, classNames: cfg.data.labels?.names ?? [] };
  } finally {
    model.dispose();
  }
}
