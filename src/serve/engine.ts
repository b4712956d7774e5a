/**
 * The server's one job queue on the engine. Jobs from every tab and script run one at a time on
 * a single engine thread (./engine-worker.ts), so concurrent sessions share libtorch's threads
 * instead of oversubscribing the cores. Each job's state and progress are published to listeners
 * (the server pushes them to pages as server-sent events). A job whose HTTP client went away still
 * runs to its end and its result is kept; a crashed engine thread fails its job and is restarted.
 */
import { Worker } from 'node:worker_threads';
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import { MisfmError } from '../util/errors.js';
import type { EngineReply, EngineRequest } from './engine-protocol.js';

export type JobState = 'queued' | 'running' | 'done' | 'failed';

/** What listeners of 'job' receive. */
export interface JobEvent {
  job: number;
  kind: string;
  session: string | null;
  state: JobState;
  done: number;
  total: number;
  /** Jobs ahead of this one when it was queued. */
  position: number;
  queuedAt: number;
  startedAt: number | null;
  endedAt: number | null;
  error?: string;
}

interface Pending {
  event: JobEvent;
  req: EngineRequest;
  resolve: (r: unknown) => void;
  reject: (e: Error) => void;
}

export interface EngineOptions {
  /** libtorch threads of the engine thread (null: libtorch's default / MISFM_NUM_THREADS). */
  threads: number | null;
  /** Module exporting openVista3dSession (default: src/infer/vista3d/session.js). */
  vista3dModule?: string;
}

export class Engine extends EventEmitter {
  private worker: Worker | null = null;
  private readonly queue: Pending[] = [];
  private running: Pending | null = null;
  private nextId = 1;
  private closed = false;
  /** Jobs finished (done or failed) since start. */
  finished = 0;

  constructor(private readonly opts: EngineOptions) { super(); }

  get queued(): number { return this.queue.length; }
  get busy(): boolean { return this.running !== null; }

  /** Queue a request; resolves with its result once it ran. */
  submit(kind: string, session: string | null, req: EngineRequest): Promise<unknown> {
    if (this.closed) return Promise.reject(new MisfmError('ENGINE', 'the server is shutting down'));
    return new Promise((resolve, reject) => {
      const event: JobEvent = {
        job: this.nextId++, kind, session, state: 'queued', done: 0, total: 0,
        position: this.queue.length + (this.running === null ? 0 : 1), queuedAt: Date.now(), startedAt: null, endedAt: null,
      };
      this.queue.push({ event, req, resolve, reject });
      this.emit('job', { ...event });
      this.pump();
    });
  }

  private ensureWorker(): Worker {
    if (this.worker !== null) return this.worker;
    const file = fileURLToPath(new URL('./engine-worker.js', import.meta.url));
    const vista3dModule = this.opts.vista3dModule ?? fileURLToPath(new URL('../infer/vista3d/session.js', import.meta.url));
    const w = new Worker(file, { workerData: { threads: this.opts.threads, vista3dModule } });
    w.on('message', (m: { id: number } & EngineReply) => this.onReply(m));
    w.on('error', (err) => this.onCrash(err));
    w.on('exit', (code) => { if (this.worker === w) { this.worker = null; if (!this.closed) this.onCrash(new Error(`engine thread exited with code ${code}`)); } });
    this.worker = w;
    return w;
  }

  private pump(): void {
    if (this.running !== null || this.closed) return;
    const p = this.queue.shift();
    if (p === undefined) return;
    this.running = p;
    p.event.state = 'running';
    p.event.startedAt = Date.now();
    this.emit('job', { ...p.event });
    this.ensureWorker().postMessage({ id: p.event.job, req: p.req });
  }

  private onReply(m: { id: number } & EngineReply): void {
    const p = this.running;
    if (p === null || p.event.job !== m.id) return;
    if (m.type === 'progress') {
      p.event.done = m.done;
      p.event.total = m.total;
      this.emit('job', { ...p.event });
      return;
    }
    this.finish(p, m.type === 'done' ? null : new MisfmError(m.code === 'INTERNAL' ? 'ENGINE' : (m.code as 'ENGINE'), m.message), m.type === 'done' ? m.result : undefined);
  }

  private onCrash(err: Error): void {
    const p = this.running;
    if (this.worker !== null) { const w = this.worker; this.worker = null; void w.terminate(); }
    if (p !== null) this.finish(p, new MisfmError('ENGINE', `engine thread failed: ${err.message}`));
  }

  private finish(p: Pending, err: Error | null, result?: unknown): void {
    this.running = null;
    this.finished++;
    p.event.state = err === null ? 'done' : 'failed';
    p.event.endedAt = Date.now();
    if (err !== null) p.event.error = err.message;
    this.emit('job', { ...p.event });
    if (err === null) p.resolve(result); else p.reject(err);
    this.pump();
  }

  /** Fail queued jobs and stop the engine thread. */
  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.queue.splice(0)) p.reject(new MisfmError('ENGINE', 'the server is shutting down'));
    const w = this.worker;
    this.worker = null;
    if (w !== null) await w.terminate();
    if (this.running !== null) { const p = this.running; this.running = null; p.reject(new MisfmError('ENGINE', 'the server is shutting down')); }
  }
}
