/**
 * Volume Fusion as a pretext method (spec 2): fused batches, the segmentation head over the K + 1
 * fusion levels with the shared deep-supervised Dice + CE, and a pseudo-segmentation Dice on a
 * fixed, seeded set of fused samples from held-out scans.
 */
import { fusionMaskOptions } from '../config/derive.js';
import { fromTypedArray, noGrad } from '../engine/creation.js';
import { tidy } from '../engine/scope.js';
import type { TrainableModel, ValidationResult } from '../train/trainer.js';
import { FusionStream, fusedToTensors, type FusedArrays, type FusionStreamState } from './volume-fusion.js';
import type { PretextContext, PretextMethod, PretextTask } from './methods.js';
import { reduceSum, shardItems, type DistributedContext } from '../distributed/context.js';

/** Pseudo-segmentation Dice over fusion levels 1..K, accumulated over the whole validation set. */
export async function fusionDice(model: TrainableModel, samples: FusedArrays[], levels: number, dist?: DistributedContext | null): Promise<ValidationResult> {
  // Counts, so that ranks can each score a share of the samples and add them up exactly.
  const counts = new Float64Array(3 * (levels + 1));
  const inter = counts.subarray(0, levels + 1), sumP = counts.subarray(levels + 1, 2 * (levels + 1)), sumG = counts.subarray(2 * (levels + 1));
  for (const s of shardItems(dist, samples)) {
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
  if (dist != null && dist.worldSize > 1) counts.set(await reduceSum(dist, counts));
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
  return { score: sum / levels, metrics, reduced: true };
}

async function setup(ctx: PretextContext): Promise<PretextTask> {
  const cfg = ctx.config;
  const K = cfg.ssl.levels;
  const mask = fusionMaskOptions(cfg.ssl);
  const base = ctx.loader;
  // A fixed validation set, made once: fused crops of held-out scans (foreground from any other scan).
  const nVal = ctx.validSamples;
  const valStream = await FusionStream.open({
    loader: { ...base, caseIds: ctx.validCases.length > 0 ? ctx.validCases : ctx.trainCases, numSamples: nVal, batchSize: 1, workers: 1, flip: false },
    levels: K, mask, seed: cfg.training.seed + 7919, partnerCaseIds: ctx.allCases,
  });
  const validSet: FusedArrays[] = [];
  try { for (let i = 0; i < nVal; i++) validSet.push(await valStream.nextArrays()); } finally { await valStream.close(); }
  return {
    makeSource: async (pos) => {
      const stream = await FusionStream.open({
        loader: { ...base, caseIds: ctx.trainCases, ...(ctx.shard !== undefined ? { shard: ctx.shard } : {}) }, levels: K, mask, seed: cfg.training.seed, resume: (pos as FusionStreamState | null) ?? null,
        partnerCaseIds: ctx.trainCases.length >= 2 ? ctx.trainCases : ctx.allCases,
      });
      return {
        next: async () => fusedToTensors(await stream.nextArrays(), K),
        position: () => stream.state(),
        close: () => stream.close(),
      };
    },
    validate: async (m, d) => fusionDice(m, validSet, K, d),
  };
}

export const volfMethod: PretextMethod = {
  name: 'volf',
  title: 'Volume Fusion: segment the K+1 fusion levels of two blended scans (MIS-FM)',
  reference: 'Wang et al., MIS-FM (2023); PyMIC volume_fusion, spec 2',
  setup,
};
