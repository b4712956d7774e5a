/**
 * Op-level profiling for development: PyTorch's legacy autograd profiler records every ATen op and
 * autograd node that `fn` runs (forward and backward) and writes a chrome trace. A PyTorch script
 * run under `torch.autograd.profiler.profile(use_kineto=False)` writes the same format, so the two
 * can be compared op for op with `scripts/dev/op-profile-compare.py`. Timings include the
 * profiler's own overhead (large for ops called per batch item, such as bmm's selects).
 */
import { native } from './native.js';

/** Run `fn` with the op profiler on and write the trace to `tracePath` (also when `fn` throws). */
export function profileOps<T>(tracePath: string, fn: () => T): T {
  native().profileStart(tracePath);
  try { return fn(); } finally { native().profileStop(); }
}
