/**
 * Intensity preprocessing and augmentation. Every function returns a new float32 Volume on the
 * same grid and leaves its input untouched.
 *
 * * clipAndScale: clip to [lo, hi] then map linearly to [outLo, outHi] (VolF CT preprocessing
 *   [-1000, 1000] -> [-1, 1], PyMIC NormalizeWithMinMax).
 * * normalizeMeanStd: (x - mean) / (std + 1e-5), population std (PyMIC NormalizeWithMeanStd).
 * * ctNormalize / percentileZScore: nnU-Net CTNormalization (clip to the foreground 0.5/99.5
 *   percentiles, z-score with the foreground mean and std).
 * * adaptiveContrastAdjust, gammaCorrection, invertIntensity, randomVolfIntensity: the intensity
 *   augmentation of PyMIC's Crop4VolumeFusion (grid-variant VolF).
 *
 * Single-volume ops run as JS loops. On the 2-core development machine (256x256x128 voxels,
 * test/transforms/speed.test.ts with MISFM_BENCH=1) clip+scale took ~0.05-0.1 s in JS against
 * ~0.7-1.3 s on the engine with the copies in and out (~1 s tensor-only), mean/std ~0.3 s vs
 * ~0.6-1.1 s, and two percentiles ~0.4-0.8 s by quickselect vs ~2.3-4 s by kthvalue.
 * clipAndScaleTensor is the engine form for data that already lives in a tensor.
 */
import type { Volume, VoxelArray } from '../io/volume.js';
import type { Tensor } from '../engine/tensor.js';
import type { Rng } from '../util/rng.js';
import { MisfmError } from '../util/errors.js';
import { checkVolume, geometryOf } from './grid.js';

/** A foreground mask: a label Volume (non-zero = foreground) or one byte per voxel. */
export type Mask = Volume | Uint8Array;

function out32(v: Volume, data: Float32Array): Volume {
  return { data, ...geometryOf(v) };
}

function maskBytes(op: string, v: Volume, mask: Mask | undefined): VoxelArray | undefined {
  if (mask === undefined) return undefined;
  const m = mask instanceof Uint8Array ? mask : mask.data;
  if (m.length !== v.data.length) throw new MisfmError('ARGUMENT', `${op}: mask has ${m.length} voxels, the image ${v.data.length}`);
  return m;
}

// ---------------------------------------------------------------- clip and scale

export interface ClipScaleOptions {
  /** Clip window, default [-1000, 1000] (HU). */
  lo?: number;
  hi?: number;
  /** Output range of the window, default [-1, 1]. */
  outLo?: number;
  outHi?: number;
}

function clipScaleParams(o: ClipScaleOptions): [number, number, number, number] {
  const lo = o.lo ?? -1000, hi = o.hi ?? 1000, a = o.outLo ?? -1, b = o.outHi ?? 1;
  if (!(hi > lo) || ![lo, hi, a, b].every(Number.isFinite)) {
    throw new MisfmError('ARGUMENT', `clipAndScale: need finite lo < hi and a finite output range, got [${lo}, ${hi}] -> [${a}, ${b}]`);
  }
  return [lo, hi, a, (b - a) / (hi - lo)];
}

/** Clip to [lo, hi] then map linearly onto [outLo, outHi]. */
export function clipAndScale(v: Volume, o: ClipScaleOptions = {}): Volume {
  checkVolume('clipAndScale', v);
  const [lo, hi, a, k] = clipScaleParams(o);
  const src = v.data, n = src.length;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const x = src[i]!;
    out[i] = a + ((x < lo ? lo : x > hi ? hi : x) - lo) * k;
  }
  return out32(v, out);
}

/** clipAndScale on a tensor (any shape) on the engine; returns a new float32 tensor. */
export function clipAndScaleTensor(t: Tensor, o: ClipScaleOptions = {}): Tensor {
  const [lo, hi, a, k] = clipScaleParams(o);
  const f = t.dtype === 'float32' ? t : t.to('float32');
  const c = f.clamp(lo, hi);
  if (f !== t) f.dispose();
  const s = c.sub(lo);
  c.dispose();
  const m = s.mul(k);
  s.dispose();
  const r = m.add(a);
  m.dispose();
  return r;
}

// ---------------------------------------------------------------- statistics

/** Mean and population standard deviation (numpy's default) of the voxels where mask != 0. */
export function meanStd(data: ArrayLike<number>, mask?: ArrayLike<number>): { mean: number; std: number; count: number } {
  let n = 0, s = 0;
  for (let i = 0; i < data.length; i++) if (mask === undefined || mask[i] !== 0) { s += data[i]!; n++; }
  if (n === 0) return { mean: 0, std: 0, count: 0 };
  const mean = s / n;
  let q = 0;
  for (let i = 0; i < data.length; i++) if (mask === undefined || mask[i] !== 0) { const d = data[i]! - mean; q += d * d; }
  return { mean, std: Math.sqrt(q / n), count: n };
}

/** Three-way partition quickselect: a[k] ends in sorted position within [lo, hi]. */
function select(a: Float64Array | Float32Array, k: number, lo: number, hi: number): void {
  while (hi > lo) {
    // Median of three as pivot; the three-way split keeps long runs of equal values (CT air) linear.
    const mid = (lo + hi) >>> 1;
    const x = a[lo]!, y = a[mid]!, z = a[hi]!;
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : (x < z ? x : y < z ? z : y);
    let lt = lo, i = lo, gt = hi;
    while (i <= gt) {
      const v = a[i]!;
      if (v < pivot) { a[i] = a[lt]!; a[lt] = v; lt++; i++; } else if (v > pivot) { a[i] = a[gt]!; a[gt] = v; gt--; } else i++;
    }
    if (k < lt) hi = lt - 1; else if (k > gt) lo = gt + 1; else return;
  }
}

/**
 * Percentiles (q in [0, 100]) with numpy's default linear interpolation, over the voxels where
 * mask != 0 (all when no mask). O(n) selection on a copy; NaN-free input expected.
 */
export function percentiles(data: VoxelArray | ArrayLike<number>, qs: readonly number[], mask?: ArrayLike<number>): number[] {
  if (qs.some((q) => !(q >= 0 && q <= 100))) throw new MisfmError('ARGUMENT', `percentiles: q must be in [0, 100], got [${qs.join(', ')}]`);
  let count = data.length;
  if (mask !== undefined) { count = 0; for (let i = 0; i < mask.length; i++) if (mask[i] !== 0) count++; }
  if (count === 0) throw new MisfmError('ARGUMENT', 'percentiles: no voxels to take percentiles of (empty input or empty mask)');
  // float32 holds every 8/16-bit integer and float32 voxel exactly; wider types need float64.
  const narrow = data instanceof Float32Array || data instanceof Int16Array || data instanceof Uint16Array || data instanceof Int8Array || data instanceof Uint8Array;
  const a = narrow ? new Float32Array(count) : new Float64Array(count);
  if (mask === undefined) for (let i = 0; i < count; i++) a[i] = data[i]!;
  else { let t = 0; for (let i = 0; i < data.length; i++) if (mask[i] !== 0) a[t++] = data[i]!; }
  const order = qs.map((q, i) => ({ q, i })).sort((x, y) => x.q - y.q);
  const res = new Array<number>(qs.length);
  let from = 0;
  for (const { q, i } of order) {
    const pos = (q / 100) * (count - 1);
    const k = Math.floor(pos);
    const t = pos - k;
    select(a, k, from, count - 1);
    const lo = a[k]!;
    let hi = lo;
    if (t > 0) {
      // The next order statistic is the minimum of what lies above k.
      hi = Infinity;
      for (let j = k + 1; j < count; j++) if (a[j]! < hi) hi = a[j]!;
    }
    res[i] = t >= 0.5 ? hi - (hi - lo) * (1 - t) : lo + (hi - lo) * t;
    from = k;
  }
  return res;
}

// ---------------------------------------------------------------- normalisation

export interface MeanStdOptions {
  /** Use these instead of the volume's statistics. */
  mean?: number;
  std?: number;
  /** Statistics only over voxels > threshold (PyMIC mask_threshold). */
  maskThreshold?: number;
  /** With maskThreshold: voxels <= threshold become N(0,1) noise from this Rng (PyMIC's default). */
  randomBackground?: Rng;
  /** Added to std (default 1e-5). */
  eps?: number;
}

/** (x - mean) / (std + eps) with the volume's own mean and population std unless given. */
export function normalizeMeanStd(v: Volume, o: MeanStdOptions = {}): Volume {
  checkVolume('normalizeMeanStd', v);
  const src = v.data, n = src.length;
  let mean = o.mean, std = o.std;
  const thr = o.maskThreshold;
  if (mean === undefined || std === undefined) {
    let mask: Uint8Array | undefined;
    if (thr !== undefined) { mask = new Uint8Array(n); for (let i = 0; i < n; i++) mask[i] = src[i]! > thr ? 1 : 0; }
    const s = meanStd(src, mask);
    // PyMIC falls back to (0, 1) when the mask is empty.
    if (s.count === 0) { mean ??= 0; std ??= 1; } else { mean ??= s.mean; std ??= s.std; }
  }
  const k = 1 / (std + (o.eps ?? 1e-5));
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (src[i]! - mean) * k;
  if (thr !== undefined && o.randomBackground !== undefined) {
    const rng = o.randomBackground;
    for (let i = 0; i < n; i++) if (src[i]! <= thr) out[i] = rng.normal();
  }
  return out32(v, out);
}

/** Foreground intensity statistics, as nnU-Net's dataset fingerprint keeps them. */
export interface IntensityStats {
  mean: number;
  std: number;
  /** Lower / upper clip values (default the 0.5 and 99.5 percentiles). */
  lo: number;
  hi: number;
}

/** Mean, population std and the [lower, upper] percentiles of the (unclipped) foreground voxels. */
export function foregroundStats(v: Volume, mask?: Mask, o: { lower?: number; upper?: number } = {}): IntensityStats {
  checkVolume('foregroundStats', v);
  const m = maskBytes('foregroundStats', v, mask);
  const [lo, hi] = percentiles(v.data, [o.lower ?? 0.5, o.upper ?? 99.5], m);
  const s = meanStd(v.data, m);
  return { mean: s.mean, std: s.std, lo: lo!, hi: hi! };
}

/** nnU-Net CTNormalization: clip to [stats.lo, stats.hi], then (x - mean) / max(std, 1e-8). */
export function ctNormalize(v: Volume, stats: IntensityStats): Volume {
  checkVolume('ctNormalize', v);
  if (!(stats.hi >= stats.lo)) throw new MisfmError('ARGUMENT', `ctNormalize: clip range [${stats.lo}, ${stats.hi}] is empty`);
  const { lo, hi, mean } = stats;
  const k = 1 / Math.max(stats.std, 1e-8);
  const src = v.data, n = src.length;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) { const x = src[i]!; out[i] = ((x < lo ? lo : x > hi ? hi : x) - mean) * k; }
  return out32(v, out);
}

/**
 * Percentile clip + z-score with statistics from this volume's foreground (`mask`, e.g. its
 * label map; the whole volume without one). For nnU-Net's dataset-level behaviour compute
 * IntensityStats over the training set and call ctNormalize.
 */
export function percentileZScore(v: Volume, o: { mask?: Mask; lower?: number; upper?: number } = {}): { volume: Volume; stats: IntensityStats } {
  const stats = foregroundStats(v, o.mask, o);
  return { volume: ctNormalize(v, stats), stats };
}

// ---------------------------------------------------------------- VolF (grid variant) augmentation

/**
 * PyMIC adaptive_contrast_adjust: piecewise-linear map taking [min, v0] -> [0, 0.1],
 * [v0, v1] -> [0.1, 0.9], [v1, max] -> [0.9, 1], where v0/v1 are the p0/p1 percentiles.
 * (When v0 == v1 the middle segment maps to 0.1 instead of PyMIC's 0/0.)
 */
export function adaptiveContrastAdjust(v: Volume, p0: number, p1: number): Volume {
  checkVolume('adaptiveContrastAdjust', v);
  if (!(p0 <= p1)) throw new MisfmError('ARGUMENT', `adaptiveContrastAdjust: need p0 <= p1, got ${p0}, ${p1}`);
  const src = v.data, n = src.length;
  let mn = Infinity, mx = -Infinity;
  for (let i = 0; i < n; i++) { const x = src[i]!; if (x < mn) mn = x; if (x > mx) mx = x; }
  const [v0, v1] = percentiles(src, [p0, p1]) as [number, number];
  const kl = v0 > mn ? 0.1 / (v0 - mn) : 0, km = v1 > v0 ? 0.8 / (v1 - v0) : 0, ku = mx > v1 ? 0.1 / (mx - v1) : 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const x = src[i]!;
    out[i] = x < v0 ? (x - mn) * kl : x > v1 ? 0.9 + (x - v1) * ku : (x - v0) * km + 0.1;
  }
  return out32(v, out);
}

/** PyMIC gamma_correction for a given gamma: min-max to [0,1], power gamma, back to [min, max]. */
export function gammaCorrection(v: Volume, gamma: number): Volume {
  checkVolume('gammaCorrection', v);
  if (!(gamma > 0)) throw new MisfmError('ARGUMENT', `gammaCorrection: gamma must be > 0, got ${gamma}`);
  const src = v.data, n = src.length;
  let mn = Infinity, mx = -Infinity;
  for (let i = 0; i < n; i++) { const x = src[i]!; if (x < mn) mn = x; if (x > mx) mx = x; }
  const out = new Float32Array(n);
  if (!(mn < mx)) { out.set(src); return out32(v, out); }
  const r = mx - mn;
  for (let i = 0; i < n; i++) out[i] = Math.pow((src[i]! - mn) / r, gamma) * r + mn;
  return out32(v, out);
}

/** 1 - x (intensity inversion for images scaled to [0, 1]). */
export function invertIntensity(v: Volume): Volume {
  checkVolume('invertIntensity', v);
  const src = v.data, n = src.length;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = 1 - src[i]!;
  return out32(v, out);
}

/** The random draws of one randomVolfIntensity call. */
export interface VolfIntensityParams {
  /** Per patch: percentiles and gamma. */
  patches: { p0: number; p1: number; gamma: number }[];
  inverted: boolean;
}

export interface VolfIntensityOptions {
  /** Percentile ranges (PyMIC: p0 ~ U(0.1, 2), p1 ~ U(98, 99.9)). */
  p0Range?: [number, number];
  p1Range?: [number, number];
  /** Gamma range, default [0.7, 1.5]. */
  gammaRange?: [number, number];
  /** Probability of inverting all patches together, default 0.25. */
  invertProb?: number;
}

/**
 * Crop4VolumeFusion's intensity augmentation on the patches of one sample: each patch gets
 * adaptive_contrast_adjust(p0, p1) then gamma correction; then, with probability 0.25, every
 * patch is inverted (1 - x). Draw order per patch: p0, p1, gamma; then the inversion draw (gamma
 * is drawn even for constant patches, so the stream does not depend on the data).
 */
export function randomVolfIntensity(patches: readonly Volume[], rng: Rng, o: VolfIntensityOptions = {}): { volumes: Volume[]; params: VolfIntensityParams } {
  const [a0, b0] = o.p0Range ?? [0.1, 2];
  const [a1, b1] = o.p1Range ?? [98, 99.9];
  const [ga, gb] = o.gammaRange ?? [0.7, 1.5];
  const params: VolfIntensityParams = { patches: [], inverted: false };
  let volumes = patches.map((p) => {
    const p0 = rng.uniform(a0, b0), p1 = rng.uniform(a1, b1), gamma = rng.uniform(ga, gb);
    params.patches.push({ p0, p1, gamma });
    return gammaCorrection(adaptiveContrastAdjust(p, p0, p1), gamma);
  });
  params.inverted = rng.uniform() < (o.invertProb ?? 0.25);
  if (params.inverted) volumes = volumes.map(invertIntensity);
  return { volumes, params };
}
