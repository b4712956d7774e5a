/** Per-sample keep mask for stochastic depth: shape [N, 1, ..., 1], values 0 or 1/keep. */
import type { Tensor } from '../../engine/tensor.js';
import { rand } from '../../engine/creation.js';
import { tidy } from '../../engine/scope.js';

export function bernoulliKeepMask(x: Tensor, keep: number): Tensor {
  return tidy(() => {
    const shape = [x.shape[0]!, ...Array<number>(x.ndim - 1).fill(1)];
    // floor(keep + U[0,1)) is 1 with probability keep, as timm computes it.
    return rand(shape, { dtype: x.dtype }).add(keep).floor().div(keep);
  });
}
