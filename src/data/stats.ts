/**
 * Per-case statistics recorded in the manifest at prepare time: intensity summary of the image
 * (exact min/max/mean/std, percentiles on a sample), label classes with voxel counts, and the
 * intensity of the labelled foreground (what nnU-Net's CT normalisation is computed from).
 */
import type { VoxelArray } from '../io/volume.js';

export interface IntensityStats {
  min: number;
  max: number;
  mean: number;
  std: number;
  /** 0.5th percentile of a sample of at most `sampled` voxels. */
  p00_5: number;
  /** 99.5th percentile of the same sample. */
  p99_5: number;
  /** Voxels in the percentile sample. */
  sampled: number;
}

export interface LabelStats {
  /** Voxel count per label value present, background (0) included, keys as decimal strings. */
  classes: Record<string, number>;
  /** Fraction of voxels with a non-zero label. */
  foregroundFraction: number;
}

/** Percentile sample size: enough for 0.5/99.5 to within a few hundredths of a percent. */
export const PERCENTILE_SAMPLE = 200_000;

/** Linear-interpolated percentile (numpy's default) of a sorted array. */
export function percentileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const pos = (q / 100) * (n - 1);
  const i = Math.floor(pos);
  const f = pos - i;
  const a = sorted[i]!;
  return i + 1 < n ? a + f * (sorted[i + 1]! - a) : a;
}

/**
 * Evenly strided sample of at most `max` values of `data`, optionally only where `mask` != 0.
 * A stride (not random choice) keeps prepare deterministic and costs one pass.
 */
function strideSample(data: VoxelArray, max: number, mask?: VoxelArray, maskCount?: number): Float64Array {
  const n = mask === undefined ? data.length : (maskCount ?? 0);
  const step = Math.max(1, n / max);
  const out = new Float64Array(Math.min(n, max));
  if (mask === undefined) {
    for (let k = 0; k < out.length; k++) out[k] = data[Math.floor(k * step)]!;
    return out;
  }
  let k = 0, next = 0, seen = 0;
  for (let i = 0; i < data.length && k < out.length; i++) {
    if (mask !== undefined && mask[i] === 0) continue;
    if (seen >= next) {
      out[k++] = data[i]!;
      next += step;
    }
    seen++;
  }
  return out.subarray(0, k);
}

function summarise(sample: Float64Array, min: number, max: number, sum: number, sumSq: number, n: number): IntensityStats {
  sample.sort();
  const mean = n > 0 ? sum / n : NaN;
  const variance = n > 0 ? Math.max(0, sumSq / n - mean * mean) : NaN;
  return {
    min, max, mean, std: Math.sqrt(variance),
    p00_5: percentileSorted(sample, 0.5), p99_5: percentileSorted(sample, 99.5), sampled: sample.length,
  };
}

/** Intensity statistics of all voxels (percentiles on a strided sample). */
export function intensityStats(data: VoxelArray, sampleSize = PERCENTILE_SAMPLE): IntensityStats {
  let min = Infinity, max = -Infinity, sum = 0, sumSq = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
    sumSq += v * v;
  }
  return summarise(strideSample(data, sampleSize), min, max, sum, sumSq, data.length);
}

/** Intensity statistics of the voxels whose label is non-zero; undefined when there are none. */
export function foregroundIntensityStats(data: VoxelArray, label: VoxelArray, sampleSize = PERCENTILE_SAMPLE): IntensityStats | undefined {
  let min = Infinity, max = -Infinity, sum = 0, sumSq = 0, n = 0;
  for (let i = 0; i < data.length; i++) {
    if (label[i] === 0) continue;
    const v = data[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
    sumSq += v * v;
    n++;
  }
  if (n === 0) return undefined;
  return summarise(strideSample(data, sampleSize, label, n), min, max, sum, sumSq, n);
}

/** Voxel counts per label value. Label values must be integers. */
export function labelCounts(label: VoxelArray): Map<number, number> {
  const counts = new Map<number, number>();
  // Dense counting for small non-negative values (the usual case), a Map otherwise.
  const dense = new Float64Array(65536);
  for (let i = 0; i < label.length; i++) {
    const v = label[i]!;
    if (v >= 0 && v < 65536) dense[v]!++;
    else counts.set(v, (counts.get(v) ?? 0) + 1);
  }
  for (let v = 0; v < dense.length; v++) if (dense[v]! > 0) counts.set(v, dense[v]!);
  return new Map([...counts.entries()].sort((a, b) => a[0] - b[0]));
}

export function labelStats(counts: Map<number, number>, total: number): LabelStats {
  const classes: Record<string, number> = {};
  let fg = 0;
  for (const [v, c] of counts) {
    classes[String(v)] = c;
    if (v !== 0) fg += c;
  }
  return { classes, foregroundFraction: total > 0 ? fg / total : 0 };
}
