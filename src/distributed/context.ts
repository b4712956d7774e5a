/**
 * What a training task needs to know about a distributed run: the group, this rank, and helpers
 * to shard work and reduce results. `joinFromEnvironment()` is how commands enter a run.
 */
import os from 'node:os';
import { fromTypedArray, setNumThreads } from '../engine/creation.js';
import { readDistEnv, type DistEnv } from './env.js';
import { ProcessGroup, type Backend } from './group.js';

export interface DistributedContext {
  group: ProcessGroup;
  rank: number;
  worldSize: number;
  env: DistEnv;
  /** Gradient bucket size in bytes (DDP's 25 MiB unless configured). */
  bucketBytes?: number;
}

/** Element-wise sum over ranks of a float64 array (validation counts, losses). */
export async function reduceSum(ctx: DistributedContext | null | undefined, values: Float64Array): Promise<Float64Array> {
  if (ctx == null || ctx.worldSize === 1) return values;
  const t = fromTypedArray(values, [values.length]);
  try {
    await ctx.group.allReduce(t, 'sum');
    return t.data() as Float64Array;
  } finally {
    t.dispose();
  }
}

/** The items of `items` that rank r of W handles (r, r+W, ...). */
export function shardItems<T>(ctx: DistributedContext | null | undefined, items: readonly T[]): T[] {
  if (ctx == null || ctx.worldSize === 1) return [...items];
  return items.filter((_, i) => i % ctx.worldSize === ctx.rank);
}

/** Whether this process writes logs, progress and checkpoints (rank 0, or a single process). */
export function isMainRank(ctx: DistributedContext | null | undefined): boolean {
  return ctx == null || ctx.rank === 0;
}

/**
 * Join the run described by the environment (RANK, WORLD_SIZE, ... as set by `misfm launch`,
 * torchrun or srun), or return null for a single process. CPU ranks use Gloo; MISFM_DIST_BACKEND
 * may name 'nccl' in a CUDA build.
 */
export async function joinFromEnvironment(env: NodeJS.ProcessEnv = process.env): Promise<DistributedContext | null> {
  const d = readDistEnv(env);
  if (d === null) return null;
  // `misfm launch` sets MISFM_NUM_THREADS; under torchrun/srun share this node's cores between its ranks.
  if (env['MISFM_NUM_THREADS'] === undefined) setNumThreads(Math.max(1, Math.floor(os.availableParallelism() / d.localWorldSize)));
  const backend = (env['MISFM_DIST_BACKEND'] ?? 'gloo') as Backend;
  const group = await ProcessGroup.init(d, { backend });
  return { group, rank: d.rank, worldSize: d.worldSize, env: d };
}

/**
 * Run `work` on rank 0 only (preparing a shared cache, say) while the other ranks wait at a
 * barrier, then compute their result with `elsewhere`. Single process: just `work`. A failure on
 * rank 0 ends its process, and the waiting ranks then fail at the barrier naming it.
 */
export async function onMainRank<T>(ctx: DistributedContext | null | undefined, work: () => Promise<T>, elsewhere: () => T): Promise<T> {
  if (ctx == null || ctx.worldSize === 1) return work();
  if (ctx.rank === 0) {
    const r = await work();
    await ctx.group.barrier();
    return r;
  }
  await ctx.group.barrier();
  return elsewhere();
}
