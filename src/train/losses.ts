/**
 * Segmentation losses of the MIS-FM / PyMIC training loop (spec 2.3): soft Dice, soft-target
 * cross-entropy, their weighted sum, and deep supervision over multi-scale outputs.
 *
 * Conventions: `logits` are raw network outputs [N, C, ...spatial]; `target` is a float tensor of
 * the same shape holding one-hot or soft class probabilities (use `oneHotTarget` for label maps).
 * Everything is built from differentiable engine ops, so `loss.backward()` reaches the logits.
 * Intermediates live in `tidy` scopes; only the returned scalar survives (autograd keeps what it
 * needs for backward on its own).
 */
import { Tensor } from '../engine/tensor.js';
import { tidy } from '../engine/scope.js';
import { tensor } from '../engine/creation.js';
import * as F from '../engine/functional.js';
import { MisfmError, ShapeError, fmtShape } from '../util/errors.js';

/** Smoothing term of PyMIC's `get_classwise_dice`, added to numerator and denominator. */
export const DICE_SMOOTH = 1e-5;

/** Weights of the two terms of the combined loss; PyMIC's demos use `loss_weight = [0.5, 0.5]`. */
export interface LossTermWeights {
  dice: number;
  ce: number;
}

export const DEFAULT_LOSS_WEIGHTS: Readonly<LossTermWeights> = { dice: 0.5, ce: 0.5 };

/** Options shared by the losses. */
export interface ClassWeightOptions {
  /**
   * Optional per-class weights (length C, >= 0, not all 0); off (null) by default as in the
   * reference. Dice: the per-class Dice is averaged with these weights (Σ w_c·dice_c / Σ w_c).
   * Cross-entropy: each class term is multiplied by w_c before summing over classes and is NOT
   * renormalised, as PyMIC's `class_weight` does in ce.py.
   */
  classWeights?: readonly number[] | null;
}

export interface CombinedLossOptions extends ClassWeightOptions {
  /** Term weights; default 0.5 Dice + 0.5 CE. */
  weights?: Readonly<LossTermWeights>;
}

export interface DeepSupervisionOptions extends CombinedLossOptions {
  /**
   * One weight per output (same order as the outputs, full resolution first); default 1/2^i.
   * They are normalised by their sum.
   */
  outputWeights?: readonly number[];
}

/** Dims reduced for per-class sums: everything except the channel dim 1 (whole batch + space). */
function nonChannelDims(ndim: number): number[] {
  return [...Array(ndim).keys()].filter((d) => d !== 1);
}

function checkPair(op: string, logits: Tensor, target: Tensor): void {
  if (logits.ndim < 2) throw new ShapeError(op, `logits must be [N, C, ...], got ${fmtShape(logits.shape)}`);
  const a = logits.shape, b = target.shape;
  if (a.length !== b.length || a.some((s, i) => s !== b[i])) {
    throw new ShapeError(op, `target ${fmtShape(b)} must have the shape of the logits ${fmtShape(a)} (one-hot or soft labels; see oneHotTarget)`);
  }
  if (target.dtype !== 'float32' && target.dtype !== 'float64' && target.dtype !== 'float16' && target.dtype !== 'bfloat16') {
    throw new MisfmError('DTYPE', `${op}: target must be a float tensor of class probabilities, got ${target.dtype} (use oneHotTarget for label maps)`);
  }
}

/** Validate class weights against C and return them as a tensor of the logits' dtype, shape `shape`. */
function classWeightTensor(op: string, w: readonly number[], logits: Tensor, shape: number[]): Tensor {
  const c = logits.shape[1]!;
  if (w.length !== c || w.some((v) => !Number.isFinite(v) || v < 0) || !w.some((v) => v > 0)) {
    throw new MisfmError('ARGUMENT', `${op}: classWeights must be ${c} finite non-negative numbers, not all 0, got ${JSON.stringify(w)}`);
  }
  return tensor([...w], { dtype: logits.dtype }).reshape(shape);
}

/**
 * Soft Dice loss (PyMIC `DiceLoss`): softmax over channels, then per class
 * dice_c = (2·Σ p·y + 1e-5) / (Σ y + Σ p + 1e-5) with the sums over the whole batch and all
 * voxels; loss = 1 − mean_c dice_c, background included.
 *
 * The sums are taken over dims directly rather than on a [voxels, C] copy, which saves two
 * permuted copies of the batch; the result matches the reference to float rounding.
 */
export function softDiceLoss(logits: Tensor, target: Tensor, o: ClassWeightOptions = {}): Tensor {
  checkPair('softDiceLoss', logits, target);
  return tidy(() => {
    const dims = nonChannelDims(logits.ndim);
    const p = logits.softmax(1);
    const inter = p.mul(target).sum(dims);
    const denom = target.sum(dims).add(p.sum(dims));
    const dice = inter.mul(2).add(DICE_SMOOTH).div(denom.add(DICE_SMOOTH));
    if (o.classWeights == null) return dice.mean().rsub(1);
    const w = classWeightTensor('softDiceLoss', o.classWeights, logits, [logits.shape[1]!]);
    return dice.mul(w).sum().div(w.sum()).rsub(1);
  });
}

/**
 * Cross-entropy with soft targets (PyMIC `CrossEntropyLoss`): mean over voxels (and batch) of
 * −Σ_c y_c · log softmax(logits)_c. Uses log_softmax instead of the reference's log(softmax(.))
 * for stability; the two agree to float rounding where softmax does not underflow.
 */
export function softCrossEntropy(logits: Tensor, target: Tensor, o: ClassWeightOptions = {}): Tensor {
  checkPair('softCrossEntropy', logits, target);
  return tidy(() => {
    let prod = target.mul(logits.logSoftmax(1));
    if (o.classWeights != null) {
      const shape = logits.shape.map((s, i) => (i === 1 ? s : 1));
      prod = prod.mul(classWeightTensor('softCrossEntropy', o.classWeights, logits, shape));
    }
    return prod.sum(1).mean().neg();
  });
}

function checkTermWeights(w: Readonly<LossTermWeights>): void {
  for (const k of ['dice', 'ce'] as const) {
    if (!Number.isFinite(w[k]) || w[k] < 0) throw new MisfmError('ARGUMENT', `loss weights: ${k} must be a finite number >= 0, got ${w[k]}`);
  }
  if (w.dice === 0 && w.ce === 0) throw new MisfmError('ARGUMENT', 'loss weights: dice and ce cannot both be 0');
}

/** w_dice·Dice + w_ce·CE (PyMIC `CombinedLoss`); a term with weight 0 is not computed. */
export function diceCeLoss(logits: Tensor, target: Tensor, o: CombinedLossOptions = {}): Tensor {
  const w = o.weights ?? DEFAULT_LOSS_WEIGHTS;
  checkTermWeights(w);
  return tidy(() => {
    const parts: Tensor[] = [];
    if (w.dice > 0) parts.push(softDiceLoss(logits, target, o).mul(w.dice));
    if (w.ce > 0) parts.push(softCrossEntropy(logits, target, o).mul(w.ce));
    return parts.length === 1 ? parts[0]! : parts[0]!.add(parts[1]!);
  });
}

/** Default deep-supervision weights 1, 1/2, 1/4, ... for `n` outputs (before normalisation). */
export function deepSupervisionWeights(n: number): number[] {
  return Array.from({ length: n }, (_, i) => 1 / 2 ** i);
}

/**
 * Resize a (soft) target [N, C, D, H, W] to `size` by adaptive average pooling, which turns a
 * one-hot map into per-voxel class fractions. Returns a new tensor even when the size matches.
 */
export function poolTarget(target: Tensor, size: readonly number[]): Tensor {
  if (target.ndim !== 5) throw new ShapeError('poolTarget', `target must be [N, C, D, H, W], got ${fmtShape(target.shape)}`);
  const s = target.shape.slice(2);
  if (s.every((v, i) => v === size[i])) return target.view(target.shape);
  return F.adaptiveAvgPool3d(target, size);
}

/**
 * Deep supervision (PyMIC `DeepSuperviseLoss`, mode 2): loss = Σ_i w_i·L_i / Σ_i w_i with
 * L_i = diceCeLoss(outputs[i], target pooled to outputs[i]'s spatial size). The predictions are
 * used as they are (not up-sampled). `target` is the full-resolution one-hot/soft target; each
 * output must have its batch and class counts. A single tensor (or a list of one) reduces to
 * diceCeLoss.
 */
export function deepSupervisedLoss(outputs: Tensor | readonly Tensor[], target: Tensor, o: DeepSupervisionOptions = {}): Tensor {
  const outs = outputs instanceof Tensor ? [outputs] : [...outputs];
  if (outs.length === 0) throw new MisfmError('ARGUMENT', 'deepSupervisedLoss: needs at least one output');
  const ws = o.outputWeights ?? deepSupervisionWeights(outs.length);
  if (ws.length !== outs.length || ws.some((v) => !Number.isFinite(v) || v < 0) || !ws.some((v) => v > 0)) {
    throw new MisfmError('ARGUMENT', `deepSupervisedLoss: outputWeights must be ${outs.length} finite numbers >= 0, not all 0, got ${JSON.stringify(ws)}`);
  }
  if (outs.length === 1) return diceCeLoss(outs[0]!, target, o);
  const total = ws.reduce((a, b) => a + b, 0);
  return tidy(() => {
    let acc: Tensor | undefined;
    outs.forEach((out, i) => {
      const w = ws[i]!;
      if (w === 0) return;
      if (out.ndim !== target.ndim || out.shape[0] !== target.shape[0] || out.shape[1] !== target.shape[1]) {
        throw new ShapeError('deepSupervisedLoss', `output ${i} ${fmtShape(out.shape)} does not fit the target ${fmtShape(target.shape)} (same N and C expected)`);
      }
      // Each level in its own scope: the pooled target and the per-level intermediates go as soon
      // as the level's scalar exists.
      const li = tidy(() => diceCeLoss(out, poolTarget(target, out.shape.slice(2)), o).mul(w / total));
      acc = acc === undefined ? li : acc.add(li);
    });
    return acc!;
  });
}

/**
 * One-hot encode an integer label map [N, 1, ...] or [N, ...] into a float32 target [N, C, ...].
 * Labels outside 0..C-1 are an error naming the offending value.
 */
export function oneHotTarget(labels: Tensor, numClasses: number): Tensor {
  if (labels.dtype.startsWith('float') || labels.dtype === 'bfloat16' || labels.dtype === 'bool') {
    throw new MisfmError('DTYPE', `oneHotTarget: labels must be an integer tensor, got ${labels.dtype}`);
  }
  if (!Number.isInteger(numClasses) || numClasses < 1) throw new MisfmError('ARGUMENT', `oneHotTarget: numClasses must be an integer >= 1, got ${numClasses}`);
  return tidy(() => {
    const l = labels.ndim >= 3 && labels.shape[1] === 1 ? labels.squeeze(1) : labels;
    const lo = l.min().item(), hi = l.max().item();
    if (lo < 0 || hi >= numClasses) {
      throw new MisfmError('ARGUMENT', `oneHotTarget: label values must be in 0..${numClasses - 1}, found ${lo < 0 ? lo : hi}`);
    }
    return F.oneHot(l, numClasses, 1);
  });
}
