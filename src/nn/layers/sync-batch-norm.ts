/**
 * Batch normalisation whose batch statistics span every process of a data-parallel run
 * (torch.nn.SyncBatchNorm). The cross-process sums come from a `StatsReducer` the caller injects
 * (a blocking all-reduce), so this layer knows nothing about process groups.
 *
 * Forward: per-channel sum, sum of squares and count are summed over processes (float64), giving
 * the global mean and biased variance; running statistics get the unbiased variance as in
 * PyTorch. Backward: sum(dy) and sum(dy * (x - mean)) are summed over processes, so the input
 * gradient is the one a single process with the whole batch would get; the weight and bias
 * gradients stay local (the data-parallel gradient average combines them), as PyTorch does.
 */
import type { Tensor } from '../../engine/tensor.js';
import { cat, fromTypedArray, noGrad } from '../../engine/creation.js';
import { customFunction } from '../../engine/checkpoint.js';

/** Sums a float64 tensor in place over every process; blocking. */
export type StatsReducer = (t: Tensor) => void;

export interface SyncBatchNormArgs {
  weight: Tensor | null;
  bias: Tensor | null;
  runningMean: Tensor | null;
  runningVar: Tensor | null;
  momentum: number;
  eps: number;
  /** Update running statistics (false while a checkpointed segment is recomputed). */
  update: boolean;
}

/** Channel-wise view shape [1, C, 1, ...] for an input of rank n. */
function channelShape(c: number, n: number): number[] {
  return [1, c, ...Array<number>(n - 2).fill(1)];
}

export function syncBatchNorm(x: Tensor, a: SyncBatchNormArgs, reduce: StatsReducer): Tensor {
  const C = x.shape[1]!;
  const dims = [0, ...Array.from({ length: x.ndim - 2 }, (_, i) => i + 2)];
  const shape = channelShape(C, x.ndim);
  const localCount = x.numel / C;
  // Global statistics (no grad: the backward below accounts for them explicitly).
  const { mean, invstd, count } = noGrad(() => {
    const xd = x.to('float64');
    const stats = cat([xd.sum(dims), xd.square().sum(dims), fromTypedArray(Float64Array.of(localCount), [1])], 0);
    xd.dispose();
    reduce(stats);
    const s = stats.narrow(0, 0, C), ss = stats.narrow(0, C, C);
    const n = (stats.data() as Float64Array)[2 * C]!;
    const m = s.div(n);
    const variance = ss.div(n).sub(m.square());
    if (a.update && a.runningMean !== null && a.runningVar !== null) {
      a.runningMean.mul_(1 - a.momentum).add_(m.to(x.dtype).mul(a.momentum));
      a.runningVar.mul_(1 - a.momentum).add_(variance.mul(n / Math.max(1, n - 1)).to(x.dtype).mul(a.momentum));
    }
    const is = variance.add(a.eps).rsqrt();
    const out = { mean: m.to(x.dtype), invstd: is.to(x.dtype), count: n };
    for (const t of [stats, s, ss, m, variance, is]) t.dispose();
    return out;
  });
  const w = a.weight, b = a.bias;
  const inputs = [x, mean, invstd, ...(w !== null ? [w] : []), ...(b !== null ? [b] : [])];
  const [y] = customFunction(inputs, ([xi, mu, is, ...wb]) => {
    let out = xi!.sub(mu!.view(shape)).mul(is!.view(shape));
    if (w !== null) out = out.mul(wb[0]!.view(shape));
    if (b !== null) out = out.add(wb[w !== null ? 1 : 0]!.view(shape));
    return [out];
  }, ([xi, mu, is, ...wb], [dy]) => {
    if (dy === null || dy === undefined) return inputs.map(() => null);
    const xmu = xi!.sub(mu!.view(shape));
    const sumDy = dy.sum(dims), sumDyXmu = dy.mul(xmu).sum(dims);
    const global = cat([sumDy, sumDyXmu], 0).to('float64');
    reduce(global);
    const g = global.to(dy.dtype);
    const meanDy = g.narrow(0, 0, C).div(count), meanDyXmu = g.narrow(0, C, C).div(count);
    let scale = is!;
    if (w !== null) scale = scale.mul(wb[0]!);
    const dx = dy.sub(meanDy.view(shape)).sub(xmu.mul(is!.square().mul(meanDyXmu).view(shape))).mul(scale.view(shape));
    const grads: (Tensor | null)[] = [dx, null, null];
    if (w !== null) grads.push(sumDyXmu.mul(is!));
    if (b !== null) grads.push(sumDy.clone());
    return grads;
  });
  mean.dispose(); invstd.dispose();
  return y!;
}
