/**
 * The training data loader: batches of random crops (pretraining) or image/label patches with
 * foreground oversampling (segmentation) from a volume cache, made by background worker threads
 * and delivered in order through a bounded prefetch queue.
 *
 * Determinism: sample s (counted from 0 for a seed) always comes from the same case with the same
 * crop, flips and intensities, whatever the number of workers or their timing: the case is fixed
 * by the seed's epoch permutation (epoch = floor(s / cases)), everything else by the sample's own
 * generator (see sampler.ts). Resuming is therefore just { seed, nextIndex } (`state()`).
 *
 * Memory is bounded: at most `prefetch` batches exist at a time (being made or waiting to be
 * consumed); a new one is requested only when the consumer takes one.
 */
import { augmentActive, checkAugment, type AugmentSpec } from './augment.js';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { MisfmError, type ErrorCode } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { readCacheHeader } from './format.js';
import { checkIntensitySpec, DEFAULT_FLIP, type FlipSpec, type IntensitySpec } from './intensity.js';
import { readyCases, type CachedCase } from './manifest.js';
import type { Box3, ReadStrategy } from './reader.js';
import type { RawBatch, SampleCase, SampleInfo, SamplerConfig } from './sampler.js';
import type { BatchTask } from './loader-worker.js';
import { keepAlive } from './pool.js';

export interface LoaderOptions {
  /** Cache folder (with manifest.json), as written by `prepare`. */
  cache: string;
  /** 'pretrain' (image crops) or 'segment' (image + label, foreground oversampling). Default 'pretrain'. */
  mode?: 'pretrain' | 'segment';
  /** Crop size (D, H, W). Default [64, 128, 128]. */
  cropSize?: Box3;
  /** Samples per batch. Default 2. */
  batchSize?: number;
  /** Seed of the whole sample sequence. Default 0. */
  seed?: number;
  /** First sample index (to resume: `state().nextIndex`). Default 0. */
  startIndex?: number;
  /** Stop after this many samples from startIndex (the last batch may be smaller). Default: endless. */
  numSamples?: number;
  /** Worker threads. Default: cores - 1 (at least 1, at most 8). */
  workers?: number;
  /** Batches made ahead of the consumer, at most. Default 2 * workers. */
  prefetch?: number;
  /** Padding of volumes smaller than the crop. Default constant air (-1000 HU) for CT, the case minimum otherwise. */
  pad?: SamplerConfig['pad'];
  /** Intensity transform. Default ct-window [-1000, 1000] -> [-1, 1]. */
  intensity?: IntensitySpec;
  /** Random flips; false for none. Default all three axes, p = 0.5. */
  flip?: FlipSpec | false;
  /** Segment mode: probability of a crop centred on foreground. Default 1/3 (nnU-Net's share). */
  foregroundP?: number;
  /** Segment mode: label value -> class index (others become 0). Default: values as stored. */
  labelMap?: Record<number, number>;
  /**
   * Segment mode: per-case label maps (case id -> label value -> class index), for datasets whose
   * labels differ; a listed case uses its own instead of `labelMap`, and its foreground crops
   * centre only on values its map sends to a class (RandCropByLabelClasses on the mapped labels).
   */
  caseLabelMaps?: Record<string, Record<number, number>>;
  /** Segment mode: intensity/texture augmentation of each crop. Default none. */
  augment?: AugmentSpec;
  /** Only these cases (ids). Default: every usable case. */
  caseIds?: readonly string[];
  /** Case order: 'epoch' (each case once per epoch, shuffled per epoch) or 'random' (with replacement). Default 'epoch'. */
  sampling?: 'epoch' | 'random';
  /** Cache read pattern (default auto). */
  strategy?: ReadStrategy;
  /**
   * Data-parallel shard: rank r of W draws global samples start+r, start+r+W, ... so that the
   * ranks' batches together are the single-process sequence of W x batchSize samples. Default none.
   */
  shard?: { rank: number; worldSize: number };
}

/** One batch: N samples stacked, shape [N, 1, D, H, W]. */
export interface Batch {
  /** Index of the first sample. */
  firstIndex: number;
  shape: [number, number, number, number, number];
  image: Float32Array;
  /** Segment mode: labels on the same grid. */
  label?: Int16Array;
  samples: SampleInfo[];
  /** How long the consumer waited for this batch in next() (ms). */
  waitMs: number;
  /** Worker time spent making it (ms). */
  workMs: number;
}

/** Everything needed to continue the sample sequence exactly. */
export interface LoaderState {
  seed: number;
  nextIndex: number;
}

export interface LoaderStats {
  batches: number;
  samples: number;
  /** Total and mean time the consumer waited in next() (ms). */
  waitMs: number;
  meanWaitMs: number;
  /** Most batches that existed at once (never more than prefetch). */
  maxOutstanding: number;
  /** Total worker time (ms). */
  workMs: number;
}

interface Pending {
  resolve: (b: RawBatch & { workMs: number }) => void;
  reject: (e: Error) => void;
  promise: Promise<RawBatch & { workMs: number }>;
  worker: number;
}

function defaultWorkers(): number {
  return Math.max(1, Math.min(8, os.availableParallelism() - 1));
}

/**
 * Serves batches from a cache. Create with `Loader.open`, consume with `for await` or `next()`,
 * and `close()` when done (also closes on the end of a finite sequence).
 */
export class Loader implements AsyncIterable<Batch> {
  readonly cases: readonly CachedCase[];
  readonly batchSize: number;
  readonly cropSize: Box3;
  private readonly opts: LoaderOptions;
  private readonly seed: number;
  private readonly startIndex: number;
  private readonly endIndex: number;
  private readonly shardRank: number;
  private readonly shardSize: number;
  private readonly prefetch: number;
  private readonly workers: Worker[] = [];
  private readonly inflight: number[] = [];
  private readonly pending = new Map<number, Pending>();
  private readonly caseRoot: Rng;
  private readonly perms = new Map<number, Uint32Array>();
  private nextDispatch = 0;
  private nextDeliver = 0;
  private failure: Error | undefined;
  private closed = false;
  private readonly st = { batches: 0, samples: 0, waitMs: 0, maxOutstanding: 0, workMs: 0 };

  private constructor(opts: LoaderOptions, cases: CachedCase[], config: SamplerConfig) {
    this.opts = opts;
    this.cases = cases;
    this.batchSize = opts.batchSize ?? 2;
    this.cropSize = config.cropSize;
    this.seed = config.seed;
    this.startIndex = opts.startIndex ?? 0;
    this.endIndex = opts.numSamples !== undefined ? this.startIndex + opts.numSamples : Infinity;
    this.shardRank = opts.shard?.rank ?? 0;
    this.shardSize = opts.shard?.worldSize ?? 1;
    const nw = opts.workers ?? defaultWorkers();
    this.prefetch = Math.max(1, opts.prefetch ?? 2 * nw);
    this.caseRoot = new Rng(this.seed).fork(0);
    for (let i = 0; i < nw; i++) this.spawn(config);
    this.pump();
  }

  /** Read the manifest, check the options and cache files, and start the workers. */
  static async open(opts: LoaderOptions): Promise<Loader> {
    const mode = opts.mode ?? 'pretrain';
    const cropSize = opts.cropSize ?? [64, 128, 128];
    if (cropSize.length !== 3 || cropSize.some((c) => !Number.isInteger(c) || c < 1)) {
      throw new MisfmError('ARGUMENT', `cropSize must be three positive integers (D,H,W), got ${JSON.stringify(cropSize)}`);
    }
    const bs = opts.batchSize ?? 2;
    if (!Number.isInteger(bs) || bs < 1) throw new MisfmError('ARGUMENT', `batchSize must be a positive integer, got ${bs}`);
    if (opts.workers !== undefined && (!Number.isInteger(opts.workers) || opts.workers < 1)) throw new MisfmError('ARGUMENT', `workers must be a positive integer, got ${opts.workers}`);
    const seed = opts.seed ?? 0;
    if (!Number.isSafeInteger(seed) || !Number.isSafeInteger(opts.startIndex ?? 0) || (opts.startIndex ?? 0) < 0) {
      throw new MisfmError('ARGUMENT', 'seed and startIndex must be safe integers (startIndex >= 0)');
    }
    if (opts.shard !== undefined && !(Number.isInteger(opts.shard.worldSize) && opts.shard.worldSize >= 1 && Number.isInteger(opts.shard.rank) && opts.shard.rank >= 0 && opts.shard.rank < opts.shard.worldSize)) {
      throw new MisfmError('ARGUMENT', `shard must be {rank, worldSize} with 0 <= rank < worldSize, got ${JSON.stringify(opts.shard)}`);
    }
    const fgP = opts.foregroundP ?? 1 / 3;
    if (!(fgP >= 0 && fgP <= 1)) throw new MisfmError('ARGUMENT', `foregroundP must be in [0, 1], got ${fgP}`);
    let intensity = opts.intensity ?? { name: 'ct-window' };
    checkIntensitySpec(intensity);
    if (intensity.name === 'custom' && !intensity.module.startsWith('file:')) {
      // Workers resolve specifiers relative to their own file: make paths absolute here.
      intensity = { ...intensity, module: pathToFileURL(path.resolve(intensity.module)).href };
    }
    const flip = opts.flip ?? DEFAULT_FLIP;
    if (flip !== false && !(flip.p >= 0 && flip.p <= 1)) throw new MisfmError('ARGUMENT', `flip.p must be in [0, 1], got ${flip.p}`);
    const cases = readyCases(opts.cache, { needLabels: mode === 'segment', ...(opts.caseIds !== undefined ? { ids: opts.caseIds } : {}) });
    // Headers are checked here (cheaply) so a damaged file fails at open, naming it.
    for (const c of cases) {
      const files: [string, number[]][] = [[c.imageFile, c.image.shape]];
      if (mode === 'segment' && c.labelFile !== undefined) files.push([c.labelFile, c.label!.shape]);
      for (const [f, want] of files) {
        const h = readCacheHeader(f);
        if (h.shape.some((v, a) => v !== want[a])) {
          throw new MisfmError('DATA', `cache file is ${h.shape.join('x')} but the manifest says ${want.join('x')} (stale file?); re-run \`misfm prepare\``, { file: f });
        }
      }
    }
    if (mode === 'segment' && opts.labelMap === undefined) {
      const wide = cases.find((c) => opts.caseLabelMaps?.[c.id] === undefined && Object.keys(c.label?.stats.classes ?? {}).some((v) => Number(v) < -32768 || Number(v) > 32767));
      if (wide !== undefined) throw new MisfmError('DATA', `case ${wide.id} has label values outside int16; pass labelMap`);
    }
    const config: SamplerConfig = {
      mode, cropSize: [...cropSize], seed, pad: opts.pad ?? { mode: 'constant' }, intensity, flip, foregroundP: fgP,
      ...(opts.labelMap !== undefined ? { labelMap: Object.entries(opts.labelMap).map(([k, v]) => [Number(k), v] as [number, number]) } : {}),
      ...(opts.strategy !== undefined ? { strategy: opts.strategy } : {}),
      ...(augmentActive(opts.augment) ? { augment: checkAugment(opts.augment) } : {}),
    };
    return new Loader(opts, cases, config);
  }

  /** Where the sequence stands: pass `nextIndex` as startIndex (same seed) to continue exactly. */
  state(): LoaderState {
    // With a shard this is the global position: the same on every rank that has taken as many batches.
    return { seed: this.seed, nextIndex: Math.min(this.endIndex, this.startIndex + this.nextDeliver * this.batchSize * this.shardSize) };
  }

  /** Global index of this rank's local sample number `j` (counted from startIndex). */
  private globalIndex(j: number): number {
    return this.startIndex + j * this.shardSize + this.shardRank;
  }

  stats(): LoaderStats {
    return { ...this.st, meanWaitMs: this.st.batches > 0 ? this.st.waitMs / this.st.batches : 0 };
  }

  /** Batches requested but not yet taken by the consumer (bounded by prefetch). */
  get outstanding(): number {
    return this.nextDispatch - this.nextDeliver;
  }

  /** The case index of sample `s` (deterministic in seed and s). */
  caseOf(s: number): number {
    const n = this.cases.length;
    if ((this.opts.sampling ?? 'epoch') === 'random') return this.caseRoot.fork(s).randint(0, n - 1);
    const e = Math.floor(s / n);
    let perm = this.perms.get(e);
    if (perm === undefined) {
      perm = this.caseRoot.fork(e).shuffle(Uint32Array.from({ length: n }, (_, i) => i));
      this.perms.set(e, perm);
      for (const k of this.perms.keys()) if (k < e - 1) this.perms.delete(k);
    }
    return perm[s - e * n]!;
  }

  /** The next batch; rejects with the worker's error (naming the file) if making it failed. */
  async next(): Promise<IteratorResult<Batch, undefined>> {
    const t0 = performance.now();
    if (this.failure !== undefined) throw this.failure;
    const first = this.globalIndex(this.nextDeliver * this.batchSize);
    if (first >= this.endIndex || this.closed) {
      await this.close();
      return { done: true, value: undefined };
    }
    const p = this.pending.get(this.nextDeliver);
    if (p === undefined) throw new MisfmError('ARGUMENT', 'loader: batch was not requested (closed?)');
    let raw;
    try {
      raw = await keepAlive(p.promise);
    } catch (err) {
      this.failure = err instanceof Error ? err : new Error(String(err));
      await this.close();
      throw this.failure;
    }
    this.pending.delete(this.nextDeliver);
    this.nextDeliver++;
    const waitMs = performance.now() - t0;
    this.st.batches++;
    this.st.samples += raw.samples.length;
    this.st.waitMs += waitMs;
    this.st.workMs += raw.workMs;
    this.pump();
    const [d, h, w] = this.cropSize;
    const batch: Batch = {
      firstIndex: first, shape: [raw.samples.length, 1, d, h, w], image: raw.image, samples: raw.samples, waitMs, workMs: raw.workMs,
    };
    if (raw.label !== undefined) batch.label = raw.label;
    return { done: false, value: batch };
  }

  /** The next batch, or undefined at the end of a finite sequence. */
  async nextBatch(): Promise<Batch | undefined> {
    const r = await this.next();
    return r.done === true ? undefined : r.value;
  }

  [Symbol.asyncIterator](): AsyncIterator<Batch, undefined> {
    return { next: () => this.next(), return: async () => { await this.close(); return { done: true, value: undefined }; } };
  }

  /** Stop the workers. Pending batches are dropped. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await keepAlive(Promise.all(this.workers.map((w) => w.terminate())));
  }

  private spawn(config: SamplerConfig): void {
    const i = this.workers.length;
    const w = new Worker(new URL('./loader-worker.js', import.meta.url), { workerData: config });
    w.on('message', (msg: { batch: number; error?: { code: string; message: string; file?: string } } & RawBatch & { workMs: number }) => {
      this.inflight[i]!--;
      const p = this.pending.get(msg.batch);
      if (p === undefined) return;
      if (msg.error !== undefined) {
        const e = msg.error;
        p.reject(new MisfmError(e.code as ErrorCode, e.message, e.file !== undefined ? { file: e.file } : undefined));
      } else {
        p.resolve(msg);
      }
    });
    const die = (err: unknown): void => {
      if (this.closed) return;
      const e = new MisfmError('DATA', `loader worker ${i} stopped: ${err instanceof Error ? err.message : String(err)}`);
      for (const p of this.pending.values()) if (p.worker === i) p.reject(e);
    };
    w.on('error', die);
    w.on('exit', (code) => { if (code !== 0) die(new Error(`exit code ${code}`)); });
    // Never keeps the process alive by itself (a consumer may stop without close()); next()
    // holds the event loop while it waits.
    w.unref();
    this.workers.push(w);
    this.inflight.push(0);
  }

  /** Request batches until `prefetch` exist. */
  private pump(): void {
    if (this.closed) return;
    while (this.nextDispatch - this.nextDeliver < this.prefetch) {
      const b = this.nextDispatch;
      const first = this.globalIndex(b * this.batchSize);
      if (first >= this.endIndex) break;
      const indices: number[] = [];
      const cases: SampleCase[] = [];
      for (let k = 0; k < this.batchSize; k++) {
        const s = this.globalIndex(b * this.batchSize + k);
        if (s >= this.endIndex) break;
        indices.push(s);
        cases.push(toSampleCase(this.cases[this.caseOf(s)]!, this.opts.caseLabelMaps));
      }
      // Least-loaded worker: balances uneven batch costs; results are re-ordered by batch number.
      let wi = 0;
      for (let k = 1; k < this.workers.length; k++) if (this.inflight[k]! < this.inflight[wi]!) wi = k;
      let resolve!: Pending['resolve'], reject!: Pending['reject'];
      const promise = new Promise<RawBatch & { workMs: number }>((res, rej) => { resolve = res; reject = rej; });
      // Marked handled now: a later batch may fail while the consumer still awaits an earlier one.
      promise.catch(() => undefined);
      this.pending.set(b, { resolve, reject, promise, worker: wi });
      this.inflight[wi]!++;
      this.workers[wi]!.postMessage({ batch: b, indices, cases } satisfies BatchTask);
      this.nextDispatch++;
    }
    this.st.maxOutstanding = Math.max(this.st.maxOutstanding, this.nextDispatch - this.nextDeliver);
  }
}

/** Sample k of a batch as its own arrays (views, no copy) with shape [1, D, H, W]. */
export function sampleView(batch: Batch, k: number): { image: Float32Array; label?: Int16Array; shape: [number, number, number, number]; info: SampleInfo } {
  const [n, , d, h, w] = batch.shape;
  if (!Number.isInteger(k) || k < 0 || k >= n) throw new MisfmError('ARGUMENT', `sampleView: sample ${k} of a batch of ${n}`);
  const m = d * h * w;
  const out: { image: Float32Array; label?: Int16Array; shape: [number, number, number, number]; info: SampleInfo } = {
    image: batch.image.subarray(k * m, (k + 1) * m), shape: [1, d, h, w], info: batch.samples[k]!,
  };
  if (batch.label !== undefined) out.label = batch.label.subarray(k * m, (k + 1) * m);
  return out;
}

function toSampleCase(c: CachedCase, maps?: Record<string, Record<number, number>>): SampleCase {
  const s: SampleCase = { id: c.id, imageFile: c.imageFile, modality: c.modality };
  const m = maps?.[c.id];
  if (m !== undefined) s.labelMap = Object.entries(m).map(([k, v]) => [Number(k), v]);
  if (c.labelFile !== undefined) s.labelFile = c.labelFile;
  if (c.foregroundFile !== undefined) s.foregroundFile = c.foregroundFile;
  if (c.stats !== undefined) s.stats = c.stats;
  return s;
}
