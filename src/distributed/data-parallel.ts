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
import { empty, noGrad } from '../engine/creation.js';
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
  constructor(private readonly group: ProcessGroup, params: readonly Tensor[], bucketBytes = DEFAULT_BUCKET_BYTES) {
    this.params = [...params];
    this.buckets = planBuckets(this.params.map((p) => p.numel * 4), bucketBytes);
  }

  /**
   * Replace every parameter's gradient by its mean over ranks. A parameter without a gradient
   * contributes zeros (all ranks must reduce the same buckets), as DDP without unused-parameter
   * detection would require.
   */
  async average(): Promise<GradientSyncStats> {
    const t0 = performance.now();
    const world = this.group.size;
    // Bucket buffers persist across steps (as DDP's reducer keeps its buckets): a fresh 25 MiB
    // buffer per bucket and step would be mapped and zeroed by the OS each time once the allocator
    // returns freed memory (glibc trims the heap top), which cost the all-reduce ~2x here.
    const flats = this.#buffers();
    let bytes = 0;
    noGrad(() => this.buckets.forEach((idx, b) => {
      const flat = flats[b]!;
      let off = 0;
      for (const i of idx) {
        const p = this.params[i]!;
        const n = p.numel;
        const part = flat.narrow(0, off, n);
        const g = p.grad;
        if (g !== null) { const v = g.reshape([-1]); part.copy_(v); v.dispose(); g.dispose(); } else part.zero_();
        part.dispose();
        off += n;
      }
      bytes += flat.numel * 4;
    }));
    await Promise.all(flats.map((flat) => this.group.allReduce(flat, 'sum')));
    noGrad(() => this.buckets.forEach((idx, b) => {
      const flat = flats[b]!;
      flat.div_(world);
      let off = 0;
      for (const i of idx) {
        const p = this.params[i]!;
        const n = p.numel;
        const part = flat.narrow(0, off, n).reshape(p.shape);
        const g = p.grad;
        if (g !== null) { g.copy_(part); g.dispose(); part.dispose(); } else { p.grad = part.clone(); part.dispose(); }
        off += n;
      }
    }));
    return { buckets: flats.length, bytes, ms: performance.now() - t0 };
  }

  #flats: Tensor[] | null = null;
  /** One contiguous float32 buffer per bucket, on the parameters' device, made on first use. */
  #buffers(): Tensor[] {
    if (this.#flats === null) {
      this.#flats = this.buckets.map((idx) => keep(empty([idx.reduce((s, i) => s + this.params[i]!.numel, 0)], { device: this.params[idx[0]!]!.device })));
    }
    return this.#flats;
  }

  /** Free the bucket buffers (they are made again on the next average). */
  dispose(): void {
    for (const t of this.#flats ?? []) t.dispose();
    this.#flats = null;
  }
}
