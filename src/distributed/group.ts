/**
 * A c10d process group (Gloo on CPU, NCCL in CUDA builds) with promise-returning collectives.
 *
 * The collectives run on the backend's own threads; JS is never blocked. A rank that dies or
 * stops answering makes the pending collective fail within the group's timeout (Gloo notices a
 * closed connection at once), and the error names the operation and this rank.
 */
import { native, type GroupHandle } from '../engine/native.js';
import { Tensor } from '../engine/tensor.js';
import { MisfmError } from '../util/errors.js';
import type { DistEnv } from './env.js';

export type Backend = 'gloo' | 'nccl';
export type ReduceOp = 'sum' | 'max' | 'min' | 'product';

export interface GroupOptions {
  /** Default 'gloo' (CPU tensors). */
  backend?: Backend;
  /** Rendezvous and collective timeout in ms. Default 300000 (5 min), or MISFM_DIST_TIMEOUT_MS. */
  timeoutMs?: number;
}

function defaultTimeout(): number {
  const v = process.env['MISFM_DIST_TIMEOUT_MS'];
  return v !== undefined && /^\d+$/.test(v) && Number(v) > 0 ? Number(v) : 300_000;
}

/** The backends this build of the addon can create. */
export function availableBackends(): { gloo: boolean; nccl: boolean } {
  return native().distBackends();
}

export class ProcessGroup {
  private handle: GroupHandle | null;
  private constructor(handle: GroupHandle, readonly rank: number, readonly size: number, readonly backend: Backend, readonly timeoutMs: number) {
    this.handle = handle;
  }

  /**
   * Rendezvous through the TCPStore at env.masterAddr:masterPort (rank 0 hosts it) and create the
   * group. The key layout is torch.distributed's default group, so PyTorch ranks can join.
   */
  static async init(env: DistEnv, o: GroupOptions = {}): Promise<ProcessGroup> {
    const backend = o.backend ?? 'gloo';
    const timeoutMs = o.timeoutMs ?? defaultTimeout();
    try {
      const h = await native().distInit({ host: env.masterAddr, port: env.masterPort, rank: env.rank, worldSize: env.worldSize, timeoutMs, backend });
      return new ProcessGroup(h, env.rank, env.worldSize, backend, timeoutMs);
    } catch (err) {
      throw new MisfmError('DISTRIBUTED', `rank ${env.rank} of ${env.worldSize}: cannot join the group at ${env.masterAddr}:${env.masterPort}: ${(err as Error).message}`, { cause: err });
    }
  }

  private live(op: string): GroupHandle {
    if (this.handle === null) throw new MisfmError('DISTRIBUTED', `${op}: the process group was destroyed`);
    return this.handle;
  }

  private async run<T>(op: string, p: () => Promise<T>): Promise<T> {
    try {
      return await p();
    } catch (err) {
      if (err instanceof MisfmError) throw err;
      throw new MisfmError('DISTRIBUTED', `rank ${this.rank}: ${op} failed (a peer rank died or timed out after ${this.timeoutMs} ms?): ${(err as Error).message}`, { cause: err });
    }
  }

  /** In-place all-reduce of a contiguous tensor (Gloo has no average: sum and divide). */
  allReduce(t: Tensor, op: ReduceOp = 'sum'): Promise<void> {
    const g = this.live('allReduce');
    return this.run('allReduce', () => native().distAllReduce(g, t.handle, op));
  }

  /**
   * In-place all-reduce that blocks this thread until done: only for reductions inside a
   * synchronous computation (SyncBatchNorm's forward and backward).
   */
  allReduceBlocking(t: Tensor, op: ReduceOp = 'sum'): void {
    const g = this.live('allReduce');
    try {
      native().distAllReduceBlocking(g, t.handle, op);
    } catch (err) {
      throw new MisfmError('DISTRIBUTED', `rank ${this.rank}: allReduce failed (a peer rank died or timed out after ${this.timeoutMs} ms?): ${(err as Error).message}`, { cause: err });
    }
  }

  /** In-place broadcast from `root`. */
  broadcast(t: Tensor, root = 0): Promise<void> {
    const g = this.live('broadcast');
    return this.run('broadcast', () => native().distBroadcast(g, t.handle, root));
  }

  /** Every rank's tensor, in rank order (new tensors; the caller disposes them). */
  async allGather(t: Tensor): Promise<Tensor[]> {
    const g = this.live('allGather');
    const hs = await this.run('allGather', () => native().distAllGather(g, t.handle));
    return hs.map((h) => new Tensor(h));
  }

  barrier(): Promise<void> {
    const g = this.live('barrier');
    return this.run('barrier', () => native().distBarrier(g));
  }

  /** Close the group's connections (and the store, on rank 0). Idempotent. */
  destroy(): void {
    if (this.handle === null) return;
    native().distDestroy(this.handle);
    this.handle = null;
  }
}
