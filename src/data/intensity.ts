/**
 * On-the-fly intensity transforms and flips, applied by loader workers while converting a raw
 * crop to float32. Transforms are named with parameters (plain data), because functions cannot
 * be posted to worker threads; a custom transform is an ES module the worker imports.
 *
 *   ct-window  clip to [lo, hi] (default [-1000, 1000] HU) and map linearly to [outLo, outHi]
 *              (default [-1, 1]): the MIS-FM pretraining normalisation (spec 2.2).
 *   zscore     (v - mean) / std; mean/std default to the case's statistics from the manifest
 *              (whole-volume), as nnU-Net does for non-CT images.
 *   none       values as stored, as float32.
 *   custom     `module` exports `intensity(raw, out, ctx)` filling `out` (same length, same
 *              (D,H,W) order) from `raw`; flips are applied afterwards.
 * Flips: each enabled axis (D, H, W) flipped with probability p (default all three, p = 0.5;
 * the PyMIC reference skips depth by mistake, here all three are flipped).
 */
import { MisfmError } from '../util/errors.js';
import type { VoxelArray } from '../io/volume.js';
import type { IntensityStats } from './stats.js';

export type IntensitySpec =
  | { name: 'ct-window'; lo?: number; hi?: number; outLo?: number; outHi?: number }
  | { name: 'zscore'; mean?: number; std?: number }
  | { name: 'none' }
  | { name: 'custom'; module: string; params?: unknown };

/** Flip settings: per axis (D, H, W) whether it may flip, and the probability. */
export interface FlipSpec {
  axes: [boolean, boolean, boolean];
  p: number;
}

export const DEFAULT_FLIP: FlipSpec = { axes: [true, true, true], p: 0.5 };

/** out = clamp(v, lo, hi) * a + b: the built-in transforms are all of this form. */
export interface AffineClamp {
  lo: number;
  hi: number;
  a: number;
  b: number;
}

/** The clamped affine map of a built-in transform for one case. */
export function affineFor(spec: IntensitySpec, stats: Pick<IntensityStats, 'mean' | 'std'> | undefined, caseId: string): AffineClamp {
  switch (spec.name) {
    case 'ct-window': {
      const lo = spec.lo ?? -1000, hi = spec.hi ?? 1000, ol = spec.outLo ?? -1, oh = spec.outHi ?? 1;
      if (!(hi > lo)) throw new MisfmError('ARGUMENT', `ct-window: need lo < hi, got [${lo}, ${hi}]`);
      const a = (oh - ol) / (hi - lo);
      return { lo, hi, a, b: ol - lo * a };
    }
    case 'zscore': {
      const mean = spec.mean ?? stats?.mean, std = spec.std ?? stats?.std;
      if (mean === undefined || std === undefined) throw new MisfmError('DATA', `zscore: case ${caseId} has no intensity statistics in the manifest; give mean and std`);
      const s = Math.max(std, 1e-8);
      return { lo: -Infinity, hi: Infinity, a: 1 / s, b: -mean / s };
    }
    case 'none':
      return { lo: -Infinity, hi: Infinity, a: 1, b: 0 };
    case 'custom':
      throw new MisfmError('ARGUMENT', 'custom intensity transforms have no affine form');
  }
}

/** Check a spec's shape early (on the main thread) so that mistakes fail before workers start. */
export function checkIntensitySpec(spec: IntensitySpec): void {
  const names = ['ct-window', 'zscore', 'none', 'custom'];
  if (typeof spec !== 'object' || spec === null || !names.includes((spec as { name?: string }).name ?? '')) {
    throw new MisfmError('ARGUMENT', `intensity transform must be one of ${names.join(', ')}, got ${JSON.stringify(spec)}`);
  }
  if (spec.name === 'ct-window') affineFor(spec, undefined, '');
  if (spec.name === 'custom' && typeof spec.module !== 'string') throw new MisfmError('ARGUMENT', 'custom intensity transform needs "module"');
}

/**
 * Apply `map` (an affine clamp) to the float crop `src` (d,h,w) IN PLACE, then write it into
 * `out` at `outOffset` flipped along the axes set in `flip`. Written as one flat loop plus native
 * row copies (`reverse`, `set`): about twice as fast as a nested per-voxel loop, and float32 only,
 * so the loop stays monomorphic (callers convert integer crops with one `Float32Array.set`).
 */
export function flipInto(src: Float32Array, shape: readonly [number, number, number], flip: readonly [boolean, boolean, boolean],
  out: Float32Array, outOffset: number, map?: AffineClamp): void {
  const [d, h, w] = shape;
  if (map !== undefined && !(map.a === 1 && map.b === 0 && map.lo === -Infinity && map.hi === Infinity)) {
    const { lo, hi, a, b } = map;
    for (let i = 0; i < src.length; i++) src[i] = Math.min(Math.max(src[i]!, lo), hi) * a + b;
  }
  let o = outOffset;
  for (let z = 0; z < d; z++) {
    const sz = flip[0] ? d - 1 - z : z;
    for (let y = 0; y < h; y++) {
      const sy = flip[1] ? h - 1 - y : y;
      const row = (sz * h + sy) * w;
      const r = src.subarray(row, row + w);
      if (flip[2]) r.reverse();
      out.set(r, o);
      o += w;
    }
  }
}

/** Labels: copy the integer crop `src` (d,h,w) into `out` at `outOffset`, flipped like the image. */
export function flipLabelsInto(src: VoxelArray, shape: readonly [number, number, number], flip: readonly [boolean, boolean, boolean],
  out: Int16Array, outOffset: number): void {
  const [d, h, w] = shape;
  let o = outOffset;
  const row = new Int16Array(w);
  for (let z = 0; z < d; z++) {
    const sz = flip[0] ? d - 1 - z : z;
    for (let y = 0; y < h; y++) {
      const sy = flip[1] ? h - 1 - y : y;
      const r = (sz * h + sy) * w;
      // Native conversion of one row, then an in-order or reversed copy.
      row.set(src.subarray(r, r + w));
      if (flip[2]) row.reverse();
      out.set(row, o);
      o += w;
    }
  }
}

/** Signature of a custom intensity module's `intensity` export. */
export type CustomIntensity = (raw: VoxelArray, out: Float32Array, ctx: { caseId: string; shape: [number, number, number]; stats?: IntensityStats; params?: unknown }) => void;
