/**
 * One VISTA3D training patch (spec §10.2-10.4): prompts sampled per the stage, then up to
 * `iterNum` rounds of forward → loss → backward → optimizer step, each round adding one click
 * from the false negatives and one from the false positives of the previous prediction.
 * (`task.ts` runs the same rounds as trainer iterations.)
 *
 * Stages (the research configs): 1-2 train the interactive branch with point prompts only and
 * 5 click rounds (2 differs from 1 in its data); 3-4 train the automatic branch with class prompts
 * only and one round, with the encoder, `up_layers` and the point head frozen.
 * Mixed class+point prompts ('mixed', the bundle's fine-tune recipe) train both heads in one round:
 * objects with clicks blend the class logits with the point logits by gaussian_combine's weights
 * (differentiably, as MONAI's forward does without patch coordinates).
 */
import type { Tensor } from '../../engine/tensor.js';
import { cat, fromTypedArray, noGrad } from '../../engine/creation.js';
import type { Optimizer } from '../../optim/optimizer.js';
import type { Rng } from '../../util/rng.js';
import type { VISTA3D, PointPrompts } from '../../models/vista3d/model.js';
import { disposeFeatures, type ImageFeatures } from '../../models/vista3d/model.js';
import { gaussianWeight } from '../../models/vista3d/merge.js';
import { vista3dDiceCE } from './loss.js';
import { nextPoints, samplePromptPairs, targetMask, type Shape3 } from './sampler.js';
import { SupervoxelPointSampler } from './supervoxel-sampler.js';
import { defaultVista3dStages, type Vista3dStageConfig } from '../../config/vista3d.js';

export type Vista3dStage = 1 | 2 | 3 | 4;

/** One stage's settings (the recipe's; `classCrops` matters only to the data stream). */
export type StageSettings = Omit<Vista3dStageConfig, 'classCrops' | 'supervoxels'> & Partial<Pick<Vista3dStageConfig, 'classCrops' | 'supervoxels'>>;

/** The research configs' per-stage settings (hyper_parameters_stage{1..4}.yaml). */
export const VISTA3D_STAGES: Readonly<Record<Vista3dStage, StageSettings>> = (() => {
  const [a, b, c, d] = defaultVista3dStages();
  return { 1: a!, 2: b!, 3: c!, 4: d! };
})();

const isAutoPart = (k: string): boolean => k.startsWith('image_encoder.up_layers_auto.') || k.startsWith('class_head.');

/** The parameters a stage trains (stages 3-4: `image_encoder.up_layers_auto.*` and `class_head.*`). */
export function trainableParameters(model: VISTA3D, s: StageSettings): Tensor[] {
  return [...model.namedParameters()].filter(([k]) => s.train === 'all' || isAutoPart(k)).map(([, t]) => t);
}

/**
 * MONAI's set_auto_grad for a stage: parameters the stage does not train stop requiring gradients
 * (so they get none, are not updated, and no backward runs through the frozen encoder). Returns
 * the names of the frozen parameters.
 */
export function freezeForStage(model: VISTA3D, s: StageSettings): string[] {
  const frozen: string[] = [];
  for (const [k, t] of model.namedParameters()) {
    const train = s.train === 'all' || isAutoPart(k);
    t.requiresGrad_(train);
    if (!train) frozen.push(k);
  }
  return frozen;
}

/** The research configs' prompt dropping per stage kind (points: labels always dropped; classes: points; mixed: the bundle's 0.25 each). */
function dropProbabilities(kind: StageSettings['prompts']): { dropLabelProb: number; dropPointProb: number } {
  return kind === 'points' ? { dropLabelProb: 1, dropPointProb: 0 } : kind === 'classes' ? { dropLabelProb: 0, dropPointProb: 1 } : { dropLabelProb: 0.25, dropPointProb: 0.25 };
}

/** A patch's prompts for one stage: classes, class prompt (null: point-only), first clicks, binary targets. */
export interface PatchPrompts {
  classes: number[];
  labelPrompt: number[] | null;
  points: PointPrompts | null;
  targets: Uint8Array[];
}

/**
 * Draw a patch's prompts (spec §10.1) as the stage asks; null when the patch yields none. `sv`: the
 * patch's supervoxels, used by point stages whose `supervoxels` setting is on (zero-shot targets).
 */
export function patchPrompts(labels: ArrayLike<number>, shape: Shape3, labelSet: readonly number[], stage: StageSettings, rng: Rng, sv: ArrayLike<number> | null = null): PatchPrompts | null {
  const svc = stage.supervoxels ?? null;
  const pointSampler = stage.prompts === 'points' && svc !== null && sv !== null
    ? new SupervoxelPointSampler(labels, sv, shape, rng.fork(1), { minSize: svc.minSize, offset: svc.offset }) : undefined;
  const s = samplePromptPairs(labels, shape, labelSet, rng, {
    maxPoint: stage.maxPoint, maxForeprompt: stage.maxForeprompt, maxBackprompt: stage.maxBackprompt,
    ...dropProbabilities(stage.prompts),
    ...(pointSampler !== undefined ? { pointSampler } : {}),
  });
  if (s === null) return null;
  // Point-only prompts need a class present in the patch (MONAI drops labels only when there is one).
  if (stage.prompts === 'points' && s.points === null) return null;
  const tl = s.labels ?? labels;
  return { classes: s.promptClass, labelPrompt: s.labelPrompt, points: s.points, targets: s.promptClass.map((c) => targetMask(tl, c)) };
}

/**
 * One click round's forward and loss: logits [B,1,...] and the mean DiceCE over prompts with a
 * class other than 0 (point objects that are only padding are skipped; absent classes of class
 * prompts learn an empty mask). `loss` is null when no prompt counts.
 */
export function roundLoss(model: VISTA3D, image: Tensor, p: PatchPrompts, points: PointPrompts | null, stage: StageSettings, target?: Tensor): { loss: Tensor | null; logits: Tensor } {
  const shape = image.shape.slice(2);
  const mixed = stage.prompts === 'mixed';
  const usePoints = (stage.prompts === 'points' || mixed) && points !== null;
  const useLabels = mixed ? p.labelPrompt !== null || !usePoints : !usePoints;
  const f = model.encode(image, usePoints, useLabels);
  let logits: Tensor;
  try {
    if (usePoints && useLabels) logits = blendedLogits(model, f, p, points, shape as unknown as Shape3);
    else logits = usePoints ? model.pointLogits(f, points, p.classes) : model.classLogits(f, p.labelPrompt ?? p.classes);
  } finally { disposeFeatures(f); }
  // The targets [B,1,...] (given by the caller, or made and freed here).
  const tgt = target ?? fromTypedArray(Float32Array.from(p.targets.flatMap((t) => Array.from(t))), [p.classes.length, 1, ...shape]);
  const parts: Tensor[] = [];
  try {
    for (let b = 0; b < p.classes.length; b++) {
      if (p.classes[b] === 0 || (usePoints && !useLabels && !points.labels[b]!.some((v) => v !== -1))) continue;
      const lb = logits.narrow(0, b, 1), tb = tgt.narrow(0, b, 1);
      parts.push(vista3dDiceCE(lb, tb)); lb.dispose(); tb.dispose();
    }
    if (parts.length === 0) return { loss: null, logits };
    let total = parts[0]!;
    for (const q of parts.slice(1)) { const t = total.add(q); if (total !== parts[0]) total.dispose(); total = t; }
    const loss = total.div(parts.length);
    if (total !== parts[0]) total.dispose();
    return { loss, logits };
  } finally { if (target === undefined) tgt.dispose(); for (const q of parts) q.dispose(); }
}

/**
 * Class logits with the clicked objects blended with their point logits, gaussian_combine's
 * weights held constant: w·class + (1−w)·point, so both heads get gradients (MONAI's forward with
 * class_vector and points and no patch_coords).
 */
function blendedLogits(model: VISTA3D, f: ImageFeatures, p: PatchPrompts, points: PointPrompts, shape: Shape3): Tensor {
  const cls = model.classLogits(f, p.labelPrompt ?? p.classes);
  const mapped = points.labels.map((l, b) => (l.some((v) => v !== -1) ? b : -1)).filter((b) => b >= 0);
  if (mapped.length === 0) return cls;
  const pts: PointPrompts = { coords: mapped.map((b) => points.coords[b]!), labels: mapped.map((b) => points.labels[b]!) };
  const pl = model.pointLogits(f, pts, mapped.map((b) => p.classes[b]!));
  const rows: Tensor[] = [];
  const temps: Tensor[] = [pl];
  try {
    for (let b = 0; b < p.classes.length; b++) {
      const c = cls.narrow(0, b, 1);
      const i = mapped.indexOf(b);
      if (i < 0) { rows.push(c); continue; }
      const w = fromTypedArray(gaussianWeight(pts.coords[i]!, pts.labels[i]!, shape), [1, 1, ...shape], { device: c.device });
      const q = pl.narrow(0, i, 1);
      const a = c.mul(w), omw = w.neg().add(1), bq = q.mul(omw), row = a.add(bq);
      temps.push(c, w, q, a, omw, bq);
      rows.push(row);
    }
    return cat(rows, 0);
  } finally {
    for (const t of new Set([...temps, ...rows])) if (t !== cls) t.dispose();
    cls.dispose();
  }
}

/**
 * The next round's clicks from this round's logits (one from the false negatives, one from the
 * false positives per object), or null when every object got only padding (the research loop stops).
 */
export function followUpPoints(logits: Tensor, p: PatchPrompts, points: PointPrompts, rng: Rng): PointPrompts | null {
  const shape = logits.shape.slice(2) as unknown as Shape3;
  const prob = noGrad(() => { const q = logits.sigmoid(); try { return q.dataF32(); } finally { q.dispose(); } });
  const next = nextPoints(prob, p.targets, p.classes, shape, points, rng);
  return next.labels.every((l) => l.slice(-2).every((v) => v === -1)) ? null : next;
}

/**
 * Train on one patch. `image` [1,1,H,W,D]; `labels` the global-class label map of the patch
 * (C order, same grid); `labelSet` the dataset's global classes. Returns the loss of each round
 * (empty when the patch yields no prompt). The trainer's task (task.ts) runs the same rounds as
 * separate iterations.
 */
export function trainPatch(model: VISTA3D, optimizer: Optimizer, image: Tensor, labels: ArrayLike<number>, labelSet: readonly number[], stage: StageSettings, rng: Rng): number[] {
  const shape = image.shape.slice(2) as unknown as Shape3;
  const p = patchPrompts(labels, shape, labelSet, stage, rng);
  if (p === null) return [];
  let points = p.points;
  const losses: number[] = [];
  model.train();
  for (let it = 0; it < stage.iterNum; it++) {
    optimizer.zeroGrad();
    const { loss, logits } = roundLoss(model, image, p, points, stage);
    try {
      if (loss === null) break;
      loss.backward();
      optimizer.step();
      losses.push(loss.item());
      loss.dispose();
      if (stage.prompts !== 'points' || points === null || it === stage.iterNum - 1) continue;
      points = followUpPoints(logits, p, points, rng);
      if (points === null) break;
    } finally { logits.dispose(); }
  }
  return losses;
}
