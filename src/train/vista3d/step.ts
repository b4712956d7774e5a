/**
 * One VISTA3D training patch (spec §10.2-10.4): prompts sampled per the stage, then up to
 * `iterNum` rounds of forward → loss → backward → optimizer step, each round adding one click
 * from the false negatives and one from the false positives of the previous prediction.
 *
 * Stages (the research configs): 1-2 train the interactive branch with point prompts only and
 * 5 click rounds (2 differs from 1 in its data); 3-4 train the automatic branch with class prompts
 * only and one round, with the encoder, `up_layers` and the point head frozen.
 * Mixed class+point prompts (the bundle's fine-tune recipe, gaussian_combine) are not trained here.
 */
import type { Tensor } from '../../engine/tensor.js';
import { fromTypedArray, noGrad } from '../../engine/creation.js';
import type { Optimizer } from '../../optim/optimizer.js';
import type { Rng } from '../../util/rng.js';
import type { VISTA3D, PointPrompts } from '../../models/vista3d/model.js';
import { disposeFeatures } from '../../models/vista3d/model.js';
import { vista3dDiceCE } from './loss.js';
import { nextPoints, samplePromptPairs, targetMask, type Shape3 } from './sampler.js';

export type Vista3dStage = 1 | 2 | 3 | 4;

export interface StageSettings {
  prompts: 'points' | 'classes';
  iterNum: number;
  maxForeprompt: number; maxBackprompt: number; maxPoint: number;
  /** Parameters trained: 'all' or 'auto' (up_layers_auto + class head; the rest frozen). */
  train: 'all' | 'auto';
}

/** The research configs' per-stage settings (hyper_parameters_stage{1..4}.yaml). */
export const VISTA3D_STAGES: Readonly<Record<Vista3dStage, StageSettings>> = {
  1: { prompts: 'points', iterNum: 5, maxForeprompt: 4, maxBackprompt: 0, maxPoint: 3, train: 'all' },
  2: { prompts: 'points', iterNum: 5, maxForeprompt: 4, maxBackprompt: 0, maxPoint: 3, train: 'all' },
  3: { prompts: 'classes', iterNum: 1, maxForeprompt: 32, maxBackprompt: 4, maxPoint: 3, train: 'auto' },
  4: { prompts: 'classes', iterNum: 1, maxForeprompt: 32, maxBackprompt: 4, maxPoint: 3, train: 'auto' },
};

/** The parameters a stage trains (stages 3-4: `image_encoder.up_layers_auto.*` and `class_head.*`). */
export function trainableParameters(model: VISTA3D, s: StageSettings): Tensor[] {
  return [...model.namedParameters()].filter(([k]) => s.train === 'all' || k.startsWith('image_encoder.up_layers_auto.') || k.startsWith('class_head.')).map(([, t]) => t);
}

/**
 * Train on one patch. `image` [1,1,H,W,D]; `labels` the global-class label map of the patch
 * (C order, same grid); `labelSet` the dataset's global classes. Returns the loss of each round
 * (empty when the patch yields no prompt).
 */
export function trainPatch(model: VISTA3D, optimizer: Optimizer, image: Tensor, labels: ArrayLike<number>, labelSet: readonly number[], stage: StageSettings, rng: Rng): number[] {
  const shape = image.shape.slice(2) as unknown as Shape3;
  const s = samplePromptPairs(labels, shape, labelSet, rng, {
    maxPoint: stage.maxPoint, maxForeprompt: stage.maxForeprompt, maxBackprompt: stage.maxBackprompt,
    dropLabelProb: stage.prompts === 'points' ? 1 : 0, dropPointProb: stage.prompts === 'points' ? 0 : 1,
  });
  if (s === null) return [];
  const classes = s.promptClass;
  const targets = classes.map((c) => targetMask(labels, c));
  const tgt = fromTypedArray(Float32Array.from(targets.flatMap((t) => Array.from(t))), [classes.length, 1, ...shape]);
  let points: PointPrompts | null = s.points;
  const losses: number[] = [];
  model.train();
  try {
    for (let it = 0; it < stage.iterNum; it++) {
      optimizer.zeroGrad();
      const usePoints = stage.prompts === 'points' && points !== null;
      const f = model.encode(image, usePoints, !usePoints);
      let logits: Tensor;
      try {
        logits = usePoints ? model.pointLogits(f, points!, classes) : model.classLogits(f, s.labelPrompt!);
      } finally { disposeFeatures(f); }
      // Loss over prompts with class != 0, averaged; absent classes (class prompts) learn an empty mask.
      const parts: Tensor[] = [];
      for (let b = 0; b < classes.length; b++) {
        if (classes[b] === 0 || (usePoints && !points!.labels[b]!.some((v) => v !== -1))) continue;
        const lb = logits.narrow(0, b, 1), tb = tgt.narrow(0, b, 1);
        parts.push(vista3dDiceCE(lb, tb)); lb.dispose(); tb.dispose();
      }
      if (parts.length === 0) { logits.dispose(); break; }
      let total = parts[0]!;
      for (const p of parts.slice(1)) { const t = total.add(p); if (total !== parts[0]) total.dispose(); total = t; }
      const loss = total.div(parts.length);
      loss.backward();
      optimizer.step();
      losses.push(loss.item());
      for (const p of parts) p.dispose();
      if (total !== parts[0]) total.dispose();
      loss.dispose();
      if (usePoints && it < stage.iterNum - 1) {
        const prob = noGrad(() => { const p = logits.sigmoid(); try { return p.dataF32(); } finally { p.dispose(); } });
        points = nextPoints(prob, targets, classes, shape, points!, rng);
        const last = points.labels.map((l) => l.slice(-2));
        if (last.every((l) => l.every((v) => v === -1))) { logits.dispose(); break; }
      }
      logits.dispose();
    }
  } finally { tgt.dispose(); }
  return losses;
}
