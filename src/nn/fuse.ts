/**
 * Inference-time fusion: BatchNorm folded into the convolution that feeds it.
 *
 * In eval mode BN is a per-channel affine map y*s + t with s = g/sqrt(v+eps), t = b - m*s; when a
 * conv's output goes only into that BN, the conv can absorb it: W' = W*s (per output channel),
 * bias' = (bias - m)*s + b. The BN then skips its pass over the activation (one read and one write
 * of a full-size map per BN). The BN's own tensors are set to the identity (mean 0, var 1-eps,
 * weight 1, bias 0), so the folded model's state dict still describes the same function.
 *
 * Folding is for inference: a folded BN refuses training mode (its statistics are gone).
 */
import { noGrad } from '../engine/creation.js';
import { tidy } from '../engine/scope.js';
import { MisfmError } from '../util/errors.js';
import type { Module } from './module.js';
import { Conv3d } from './layers/conv.js';
import { BatchNorm3d } from './layers/norm.js';
import { Sequential } from './layers/container.js';

/** A model that knows conv -> BN pairs across its own blocks (the generic scan sees only Sequentials). */
export interface ConvBnPairs { convBnPairs(): [Conv3d, BatchNorm3d][]; }

function hasPairs(m: unknown): m is ConvBnPairs {
  return typeof (m as Partial<ConvBnPairs>).convBnPairs === 'function';
}

/** Whether a BN can be folded (eval mode, running statistics, shapes fit, not folded yet). */
function foldable(conv: Conv3d, bn: BatchNorm3d): boolean {
  return !bn.training && !bn.folded && bn.runningMean !== null && bn.runningVar !== null && conv.bias !== null
    && conv.outChannels === bn.numFeatures && conv.weight.dtype === 'float32';
}

/** Fold `bn` into `conv` in place (see the file header). Returns false when the pair cannot be folded. */
export function foldConvBatchNorm(conv: Conv3d, bn: BatchNorm3d): boolean {
  if (!foldable(conv, bn)) return false;
  noGrad(() => tidy(() => {
    // In float64, so the folded weights round once, to float32.
    const v = bn.runningVar!.to('float64'), m = bn.runningMean!.to('float64');
    const g = bn.weight?.to('float64') ?? null, b = bn.bias?.to('float64') ?? null;
    let s = v.add(bn.eps).rsqrt();
    if (g !== null) s = s.mul(g);
    const shape = [conv.outChannels, ...conv.weight.shape.slice(1).map(() => 1)];
    conv.weight.copy_(conv.weight.to('float64').mul(s.view(shape)));
    let nb = conv.bias!.to('float64').sub(m).mul(s);
    if (b !== null) nb = nb.add(b);
    conv.bias!.copy_(nb);
    bn.runningMean!.zero_();
    bn.runningVar!.fill_(1 - bn.eps);
    bn.weight?.fill_(1);
    bn.bias?.zero_();
  }));
  bn.folded = true;
  return true;
}

/**
 * Fold every BatchNorm3d that directly follows a Conv3d inside a Sequential, plus the pairs the
 * model lists itself (convBnPairs). The model must be in eval mode. Returns the number folded.
 */
export function foldBatchNorms(model: Module): number {
  if (model.training) throw new MisfmError('ARGUMENT', 'foldBatchNorms: the model must be in eval mode (folding uses the running statistics)');
  let n = 0;
  for (const [, m] of model.namedModules()) {
    if (!(m instanceof Sequential)) continue;
    for (let i = 0; i + 1 < m.layers.length; i++) {
      const a = m.layers[i], b = m.layers[i + 1];
      if (a instanceof Conv3d && b instanceof BatchNorm3d && foldConvBatchNorm(a, b)) n++;
    }
  }
  if (hasPairs(model)) for (const [c, b] of model.convBnPairs()) if (foldConvBatchNorm(c, b)) n++;
  return n;
}
