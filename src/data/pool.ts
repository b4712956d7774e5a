/**
 * A small worker_threads pool: tasks go to idle workers in submission order; a worker that dies
 * (uncaught error, out of memory, native abort) fails only its task in flight, through
 * `onCrash`, and is replaced.
 */
import { Worker } from 'node:worker_threads';

interface Slot<T, R> {
  worker: Worker;
  busy: { id: number; task: T; resolve: (r: R) => void } | undefined;
}

/**
 * Await `p` while holding a timer, so that the event loop stays alive until it settles. Needed
 * because the workers here are unref'd (an abandoned loader or pool must not keep the process
 * running), and neither a pending promise nor an unref'd worker's reply or exit counts as work.
 */
export async function keepAlive<T>(p: Promise<T>): Promise<T> {
  const timer = setInterval(() => undefined, 1 << 30);
  try {
    return await p;
  } finally {
    clearInterval(timer);
  }
}

export interface PoolOptions<T, R> {
  /** Worker module (an ES module that answers { id, task } with { id, result }). */
  url: URL;
  size: number;
  /** Data passed to each worker as workerData. */
  workerData?: unknown;
  /** The result for a task whose worker died. */
  onCrash: (task: T, reason: string) => R;
}

export class TaskPool<T, R> {
  private readonly opts: PoolOptions<T, R>;
  private readonly slots: Slot<T, R>[] = [];
  private readonly queue: { id: number; task: T; resolve: (r: R) => void }[] = [];
  private nextId = 0;
  private closed = false;

  constructor(opts: PoolOptions<T, R>) {
    this.opts = opts;
    for (let i = 0; i < Math.max(1, opts.size); i++) this.slots.push(this.spawn());
  }

  /** Run a task on the next free worker. */
  run(task: T): Promise<R> {
    return keepAlive(new Promise<R>((resolve) => {
      this.queue.push({ id: this.nextId++, task, resolve });
      this.pump();
    }));
  }

  /** Terminate all workers (tasks in flight are abandoned). */
  async close(): Promise<void> {
    this.closed = true;
    await keepAlive(Promise.all(this.slots.map((s) => s.worker.terminate())));
  }

  private spawn(): Slot<T, R> {
    const worker = new Worker(this.opts.url, { workerData: this.opts.workerData });
    const slot: Slot<T, R> = { worker, busy: undefined };
    worker.on('message', (msg: { id: number; result: R }) => {
      const b = slot.busy;
      if (b === undefined || b.id !== msg.id) return;
      slot.busy = undefined;
      b.resolve(msg.result);
      this.pump();
    });
    const die = (reason: string): void => {
      const b = slot.busy;
      slot.busy = undefined;
      const i = this.slots.indexOf(slot);
      if (i >= 0 && !this.closed) this.slots[i] = this.spawn();
      if (b !== undefined) b.resolve(this.opts.onCrash(b.task, reason));
      this.pump();
    };
    worker.on('error', (err) => die(`worker crashed: ${err instanceof Error ? err.message : String(err)}`));
    worker.on('exit', (code) => { if (!this.closed && slot.busy !== undefined) die(`worker exited with code ${code}`); });
    // Workers never keep the process alive by themselves; run() holds it while tasks are pending.
    worker.unref();
    return slot;
  }

  private pump(): void {
    for (const s of this.slots) {
      if (this.queue.length === 0) return;
      if (s.busy !== undefined) continue;
      const job = this.queue.shift()!;
      s.busy = job;
      s.worker.postMessage({ id: job.id, task: job.task });
    }
  }
}
