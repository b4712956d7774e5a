/**
 * Data-parallel training semantics, as PyTorch's DistributedDataParallel: every rank starts from
 * rank 0's parameters and buffers, and after each backward the gradients are averaged across ranks
 * in buckets of about `bucketBytes`, so every rank takes the same optimizer step.
 *
 * Overlap with backward: libtorch runs the whole backward in one native call and the engine has no
 * per-parameter gradient hooks, so buckets start when backward returns. They are all launched at
 * once (Gloo works on them concurrently) in reverse parameter order, the order in which a hooked
 * implementation would have started them. The communication share of an iteration is measured in
 * `bench/allreduce.ts` (see ARCHITECTURE.md).
 */
import type { Tensor } from '../engine/tensor.js';
import { ITEMSIZE, type DType } from '../engine/dtype.js';
import { MisfmError } from '../util/errors.js';
import { empty, fromTypedArray, noGrad } from '../engine/creation.js';
import { keep } from '../engine/scope.js';
import type { Module } from '../nn/module.js';
import { BatchNorm2d, BatchNorm3d } from '../nn/layers/norm.js';
import type { ProcessGroup } from './group.js';

/**
 * Make every BatchNorm of `module` use batch statistics over all ranks in training
 * (torch.nn.SyncBatchNorm.convert_sync_batchnorm). Returns how many layers were converted.
 */
export function enableSyncBatchNorm(group: ProcessGroup, module: Module): number {
  let n = 0;
  const visit = (m: Module): void => {
    if (m instanceof BatchNorm3d || m instanceof BatchNorm2d) { m.statsReducer = (t) => group.allReduceBlocking(t, 'sum'); n++; }
    for (const c of m.children()) visit(c);
  };
  visit(module);
  return n;
}

/** PyTorch DDP's default bucket size. */
export const DEFAULT_BUCKET_BYTES = 25 * 2 ** 20;

/** Copy rank 0's parameters and buffers into every rank (in place; names in state-dict order). */
export async function broadcastModule(group: ProcessGroup, module: Module): Promise<void> {
  const tensors = [...module.namedParameters()].map(([, t]) => t).concat([...module.namedBuffers()].map(([, t]) => t));
  for (const t of tensors) await group.broadcast(t, 0);
}

/** Groups of parameter indices, each at most `bucketBytes` (a larger tensor gets a bucket alone). */
export function planBuckets(sizesBytes: readonly number[], bucketBytes: number): number[][] {
  const buckets: number[][] = [];
  let cur: number[] = [], bytes = 0;
  // Reverse order: the last layers' gradients are the first ready in backward.
  for (let i = sizesBytes.length - 1; i >= 0; i--) {
    const b = sizesBytes[i]!;
    if (cur.length > 0 && bytes + b > bucketBytes) { buckets.push(cur); cur = []; bytes = 0; }
    cur.push(i); bytes += b;
  }
  if (cur.length > 0) buckets.push(cur);
  return buckets;
}

export interface GradientSyncStats { buckets: number; bytes: number; ms: number }

/** Averages gradients across ranks after backward. */
export class GradientAverager {
  readonly buckets: number[][];
  private readonly params: Tensor[];
  private readonly dtype: DType;
  private readonly elementBytes: number;
  constructor(private readonly group: ProcessGroup, params: readonly Tensor[], bucketBytes = DEFAULT_BUCKET_BYTES) {
    this.params = [...params];
    const dtypes = new Set(this.params.map((p) => p.dtype));
    if (dtypes.size > 1) throw new MisfmError('DISTRIBUTED', `gradient averaging needs parameters of one dtype, got ${[...dtypes].join(', ')}`);
    this.dtype = this.params[0]?.dtype ?? 'float32';
    this.elementBytes = ITEMSIZE[this.dtype];
    this.buckets = planBuckets(this.params.map((p) => p.numel * this.elementBytes), bucketBytes);
  }

  /**
   * Replace every parameter's gradient by its mean over ranks. A parameter without a gradient on a
   * rank contributes zeros there (all ranks reduce the same buckets); one without a gradient on
   * every rank keeps none, as PyTorch DDP leaves globally unused parameters.
   *
   * Afterwards each gradient is a view into its bucket buffer (PyTorch DDP's
   * `gradient_as_bucket_view=True`), so the averaged values are not copied back. The optimizer
   * reads and clips them as usual; `zeroGrad` drops the views, and a backward without zeroGrad
   * accumulates into them in place.
   */
  async average(): Promise<GradientSyncStats> {
    const t0 = performance.now();
    const world = this.group.size;
    // Bucket buffers persist across steps (as DDP's reducer keeps its buckets): a fresh 25 MiB
    // buffer per bucket and step would be mapped and zeroed by the OS each time once the allocator
    // returns freed memory (glibc trims the heap top), which cost the all-reduce ~2x here.
    const { flats, views } = this.#buffers();
    const used = new Float32Array(this.params.length);
    noGrad(() => {
      for (let i = 0; i < this.params.length; i++) {
        const g = this.params[i]!.grad;
        // A gradient that already is the view (average() twice without backward) copies onto itself.
        if (g !== null) { views[i]!.copy_(g); g.dispose(); used[i] = 1; } else views[i]!.zero_();
      }
    });
    // Which parameters got a gradient on any rank (DDP's unused-parameter map), reduced alongside.
    // (On the parameters' device: NCCL reduces device tensors only.)
    const usedMap = fromTypedArray(used, [used.length], { device: this.params[0]?.device ?? 'cpu' });
    await Promise.all([...flats.map((flat) => this.group.allReduce(flat, 'sum')), this.group.allReduce(usedMap, 'sum')]);
    const anyRank = usedMap.data() as Float32Array;
    usedMap.dispose();
    noGrad(() => {
      for (const flat of flats) flat.div_(world);
      // A parameter no rank used keeps no gradient, as in PyTorch DDP (and in one process), so that
      // weight decay and momentum leave it alone exactly as a single process would.
      for (let i = 0; i < this.params.length; i++) this.params[i]!.grad = anyRank[i]! > 0 ? views[i]! : null;
    });
    const bytes = flats.reduce((s, f) => s + f.numel * this.elementBytes, 0);
    return { buckets: flats.length, bytes, ms: performance.now() - t0 };
  }

  #store: { flats: Tensor[]; views: Tensor[] } | null = null;
  /**
   * One contiguous buffer per bucket, of the parameters' dtype and device, and per parameter a view
   * of its slice with the parameter's shape; made on first use.
   */
  #buffers(): { flats: Tensor[]; views: Tensor[] } {
    if (this.#store === null) {
      const views = new Array<Tensor>(this.params.length);
      const flats = this.buckets.map((idx) => {
        const flat = keep(empty([idx.reduce((s, i) => s + this.params[i]!.numel, 0)], { dtype: this.dtype, device: this.params[idx[0]!]!.device }));
        let off = 0;
        for (const i of idx) {
          const p = this.params[i]!;
          const part = flat.narrow(0, off, p.numel);
          views[i] = keep(part.reshape(p.shape));
          part.dispose();
          off += p.numel;
        }
        return flat;
      });
      this.#store = { flats, views };
    }
    return this.#store;
  }

  /**
   * Drop this averager's handles on the bucket buffers (made again on the next average); gradients
   * that are views keep their memory alive until they are replaced.
   */
  dispose(): void {
    for (const t of [...(this.#store?.flats ?? []), ...(this.#store?.views ?? [])]) t.dispose();
    this.#store = null;
  }
}
