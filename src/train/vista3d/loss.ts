/**
 * VISTA3D's training loss (spec §10.3): MONAI `DiceCELoss(sigmoid=True, squared_pred=True,
 * smooth_nr=0, smooth_dr=1e-5)` on one prompt's logits [1,1,...] against a binary target: the
 * squared-denominator Dice of sigmoid(logit) plus BCE-with-logits (mean), weight 1 each. Summed
 * over prompts with a class other than 0 and divided by their number.
 */
import type { Tensor } from '../../engine/tensor.js';
import { call1 } from '../../engine/call.js';

/** DiceCE of logits against a float 0/1 target of the same shape [N,1,...]; returns a scalar tensor. */
export function vista3dDiceCE(logits: Tensor, target: Tensor): Tensor {
  const dims = Array.from({ length: logits.ndim - 2 }, (_, i) => i + 2);
  const p = logits.sigmoid();
  const pg = p.mul(target);
  const inter = pg.sum(dims);
  const p2 = p.square(); const g2 = target.square();
  const den0 = p2.sum(dims); const den1 = g2.sum(dims);
  const den = den0.add(den1); const den2 = den.add(1e-5);
  const num = inter.mul(2);
  const ratio = num.div(den2);
  const dice = ratio.rsub(1); const diceMean = dice.mean();
  // reduction mean (1)
  const bce = call1('binary_cross_entropy_with_logits', [logits, target, null, null, 1]);
  const total = diceMean.add(bce);
  for (const t of [p, pg, inter, p2, g2, den0, den1, den, den2, num, ratio, dice, diceMean, bce]) t.dispose();
  return total;
}
