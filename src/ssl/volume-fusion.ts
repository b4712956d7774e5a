/**
 * Volume Fusion batches (spec 2.1): each crop is fused voxel-wise with a crop from a different scan
 * through a discrete fusion-level map, x = a·fg + (1−a)·bg with a = level/K, and the network learns
 * to segment the K+1 levels.
 *
 * Foreground partners follow the reference (the previous sample of the batch, cyclically) except
 * where that partner comes from the same scan (always for a batch of 1): then a crop from a
 * different scan is drawn from a second, independent sample stream. Every random choice depends on
 * (seed, sample index), so batches are reproducible and resumable from their positions.
 */
import { Loader, type Batch as RawLoaderBatch, type LoaderOptions, type LoaderState } from '../data/loader.js';
import { fusionLevelMap, fuse, pairForeground, type FusionMaskOptions } from './fusion-mask.js';
import { Rng } from '../util/rng.js';
import { fromTypedArray } from '../engine/creation.js';
import * as F from '../engine/functional.js';
import type { Tensor } from '../engine/tensor.js';
import { MisfmError } from '../util/errors.js';

/** A fused batch in plain arrays: image [N,1,D,H,W] and levels [N,D,H,W] (0..K). */
export interface FusedArrays {
  shape: [number, number, number, number, number];
  image: Float32Array;
  levels: Uint8Array;
  /** Scan ids of background and foreground of each sample. */
  pairs: [string, string][];
}

export interface FusionStreamState { main: LoaderState; partner: LoaderState | null; }

export interface FusionStreamOptions {
  loader: LoaderOptions;
  /** K fusion levels and the mask generator settings. */
  levels: number;
  mask: FusionMaskOptions;
  seed: number;
  /** Resume positions (from state()). */
  resume?: FusionStreamState | null;
  /** Cases foreground partners may come from when a batch neighbour cannot serve (default: the loader's). */
  partnerCaseIds?: readonly string[];
}

/** Produces fused batches from a cache. */
export class FusionStream {
  private partner: Loader | null = null;
  private constructor(private readonly main: Loader, private readonly o: FusionStreamOptions) {}

  static async open(o: FusionStreamOptions): Promise<FusionStream> {
    const main = await Loader.open({ ...o.loader, mode: 'pretrain', seed: o.seed, startIndex: o.resume?.main.nextIndex ?? 0 });
    const scans = new Set([...main.cases.map((c) => c.id), ...(o.partnerCaseIds ?? [])]);
    if (scans.size < 2) {
      await main.close();
      throw new MisfmError('DATA', `Volume Fusion needs at least 2 scans (foreground and background come from different scans); the cache has ${scans.size}`);
    }
    const s = new FusionStream(main, o);
    if (o.resume?.partner != null) s.partner = await s.openPartner(o.resume.partner.nextIndex);
    return s;
  }

  private openPartner(start: number): Promise<Loader> {
    // A separate stream (its own seed) with batch 1, opened only when a partner is needed.
    const { numSamples: _n, caseIds, ...base } = this.o.loader;
    const ids = this.o.partnerCaseIds ?? caseIds;
    return Loader.open({ ...base, ...(ids !== undefined ? { caseIds: ids } : {}), mode: 'pretrain', seed: this.o.seed + 1_000_003, batchSize: 1, workers: 1, prefetch: 1, startIndex: start, sampling: 'random' });
  }

  state(): FusionStreamState {
    return { main: this.main.state(), partner: this.partner?.state() ?? null };
  }

  private async differentScanCrop(exclude: string): Promise<{ data: Float32Array; caseId: string }> {
    if (this.partner === null) this.partner = await this.openPartner(0);
    for (let tries = 0; tries < 1000; tries++) {
      const b = await this.partner.nextBatch();
      if (b === undefined) break;
      const s = b.samples[0]!;
      if (s.caseId !== exclude) return { data: b.image, caseId: s.caseId };
    }
    throw new MisfmError('DATA', `could not draw a crop from a scan other than ${exclude}`);
  }

  /** The next fused batch as arrays. */
  async nextArrays(): Promise<FusedArrays & { waitMs: number }> {
    const b: RawLoaderBatch | undefined = await this.main.nextBatch();
    if (b === undefined) throw new MisfmError('DATA', 'the data loader ended unexpectedly');
    const [n, , d, h, w] = b.shape;
    const vox = d * h * w;
    const ids = b.samples.map((s) => s.caseId);
    const { partner, needsDifferentScan } = pairForeground(ids);
    const needs = new Set(needsDifferentScan);
    const image = new Float32Array(n * vox);
    const levels = new Uint8Array(n * vox);
    const pairs: [string, string][] = [];
    for (let i = 0; i < n; i++) {
      const bg = b.image.subarray(i * vox, (i + 1) * vox);
      let fg: Float32Array, fgId: string;
      if (needs.has(i)) ({ data: fg, caseId: fgId } = await this.differentScanCrop(ids[i]!));
      else { const p = partner[i]!; fg = b.image.subarray(p * vox, (p + 1) * vox); fgId = ids[p]!; }
      const rng = new Rng(this.o.seed).fork(2).fork(b.samples[i]!.index);
      const lv = fusionLevelMap([d, h, w], rng, this.o.mask);
      levels.set(lv, i * vox);
      fuse(bg, fg, lv, this.o.levels, image.subarray(i * vox, (i + 1) * vox));
      pairs.push([ids[i]!, fgId]);
    }
    return { shape: [n, 1, d, h, w], image, levels, pairs, waitMs: b.waitMs };
  }

  async close(): Promise<void> {
    await this.main.close();
    await this.partner?.close();
  }
}

/** Engine tensors for a fused batch: image [N,1,D,H,W] and one-hot target [N,K+1,D,H,W]. */
export function fusedToTensors(a: FusedArrays, levels: number): { image: Tensor; target: Tensor } {
  const image = fromTypedArray(a.image, a.shape);
  const [n, , d, h, w] = a.shape;
  const lv = fromTypedArray(a.levels, [n, d, h, w]);
  const target = F.oneHot(lv, levels + 1);
  lv.dispose();
  return { image, target };
}
