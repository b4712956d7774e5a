/**
 * Memory helper for long chains of large 3D activations.
 *
 * A JS handle keeps its storage alive, and views (view/permute/select) share their base's storage,
 * so a chain like `f(x).view(...).permute(...)` inside one tidy() keeps f(x) alive until the scope
 * ends. consume() ends each step's scope immediately and drops the consumed input, so at most the
 * input and the output of one step are held (autograd still keeps what backward needs, natively).
 */
import type { Tensor } from '../engine/tensor.js';
import { tidy } from '../engine/scope.js';

/** fn(t) in its own tidy scope, then dispose t (unless fn returned t itself). */
export function consume(t: Tensor, fn: (t: Tensor) => Tensor): Tensor {
  let out: Tensor | undefined;
  try {
    out = tidy(() => fn(t));
    return out;
  } finally {
    if (out !== t) t.dispose();
  }
}
