/**
 * The preprocessing applied once, at prepare time, before a volume goes into the cache.
 *
 * Settings are plain data (they travel to worker threads and into the manifest): reorientation
 * to a canonical axis order, an optional CT body crop, optional resampling to a target spacing,
 * an optional user step from an ES module, and the voxel type of the cache (int16 for CT in HU,
 * float32 otherwise, integer images that fit int16 kept as int16). Image and label go through
 * the same geometric steps, the label with nearest-neighbour interpolation.
 */
import { createHash } from 'node:crypto';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MisfmError } from '../util/errors.js';
import type { Vec3, Volume, VoxelArray } from '../io/volume.js';
import { reorient } from '../transforms/orientation.js';
import { bodyBox } from '../transforms/body-crop.js';
import { cropToBox } from '../transforms/box.js';
import { CACHE_VERSION } from './format.js';

/** Preprocessing settings (all optional; defaults in comments). */
export interface PreprocessSpec {
  /** Target orientation code (nibabel letters, e.g. 'LPS', 'RAS'), or false to keep the stored axis order. Default 'LPS'. */
  reorient?: string | false;
  /** Crop CT volumes to the bounding box of the body (removes air, table). Default false. */
  bodyCrop?: boolean;
  /** Resample to this spacing (x, y, z) in mm; default: keep the original spacing. */
  spacing?: Vec3;
  /** 'ct' (HU), 'other', or 'auto' (DICOM Modality; else CT when the 0.5th percentile is below -500). Default 'auto'. */
  modality?: 'auto' | 'ct' | 'other';
  /** Cache voxel type: 'auto' (int16 for CT, integers that fit int16 as int16, else float32), 'int16' or 'float32'. */
  dtype?: 'auto' | 'int16' | 'float32';
  /**
   * An ES module (absolute path or file: URL) exporting
   * `preprocess(image: Volume, label: Volume | undefined, ctx: { id: string; modality: 'ct' | 'other' })`
   * returning `{ image, label }` (or a promise of it); run after the built-in steps. Functions
   * cannot be sent to worker threads, so custom steps are named by module.
   */
  module?: string;
}

/** Version of the prepare algorithm; bump when cached content for the same settings changes. */
export const PREPARE_VERSION = 1;

/** Settings with every default filled in. */
export type NormalizedSpec = Required<Omit<PreprocessSpec, 'spacing' | 'module'>> & Pick<PreprocessSpec, 'spacing' | 'module'>;

/** Settings with defaults filled in, in a fixed key order (the manifest and the fingerprint use it). */
export function normalizeSpec(s: PreprocessSpec = {}): NormalizedSpec {
  const out: NormalizedSpec = {
    reorient: s.reorient ?? 'LPS',
    bodyCrop: s.bodyCrop ?? false,
    modality: s.modality ?? 'auto',
    dtype: s.dtype ?? 'auto',
  };
  if (s.spacing !== undefined) {
    if (s.spacing.length !== 3 || s.spacing.some((v) => !(v > 0) || !Number.isFinite(v))) {
      throw new MisfmError('ARGUMENT', `spacing must be three positive numbers (x,y,z mm), got ${JSON.stringify(s.spacing)}`);
    }
    out.spacing = [...s.spacing];
  }
  if (s.module !== undefined) out.module = s.module.startsWith('file:') ? s.module : pathToFileURL(path.resolve(s.module)).href;
  return out;
}

/**
 * A short stable hash of the settings (and of the user module's source, so that editing it
 * re-prepares every case); part of every case fingerprint.
 */
export function specKey(s: PreprocessSpec): string {
  const n = normalizeSpec(s);
  const h = createHash('sha1').update(JSON.stringify({ v: PREPARE_VERSION, cache: CACHE_VERSION, ...n }));
  if (n.module !== undefined) {
    const file = fileURLToPath(n.module);
    try {
      h.update(fs.readFileSync(file));
    } catch (err) {
      throw new MisfmError('ARGUMENT', `cannot read the preprocessing module: ${err instanceof Error ? err.message : String(err)}`, { file, cause: err });
    }
  }
  return h.digest('hex').slice(0, 16);
}

export interface Pair {
  image: Volume;
  label: Volume | undefined;
}

/** True when two spacings are equal to within 1e-6 relative (resampling would be the identity). */
export function sameSpacing(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => Math.abs(x - b[i]!) <= 1e-6 * Math.max(Math.abs(x), Math.abs(b[i]!)));
}

type UserStep = (image: Volume, label: Volume | undefined, ctx: { id: string; modality: 'ct' | 'other' }) => Pair | Promise<Pair>;

const userSteps = new Map<string, Promise<UserStep>>();

function loadUserStep(url: string): Promise<UserStep> {
  let p = userSteps.get(url);
  if (p === undefined) {
    p = import(url).then((mod: Record<string, unknown>) => {
      const fn = mod['preprocess'];
      if (typeof fn !== 'function') throw new MisfmError('ARGUMENT', `preprocessing module ${url} does not export a function "preprocess"`);
      return fn as UserStep;
    }, (err: unknown) => {
      throw new MisfmError('ARGUMENT', `cannot load preprocessing module ${url}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    });
    userSteps.set(url, p);
  }
  return p;
}

/** 0.5th percentile of a strided sample: cheap CT detection (air is about -1000 HU). */
export function lowPercentile(data: VoxelArray): number {
  const m = Math.min(data.length, 100000);
  const step = data.length / m;
  const s = new Float64Array(m);
  for (let k = 0; k < m; k++) s[k] = data[Math.floor(k * step)]!;
  s.sort();
  return s[Math.floor(0.005 * (m - 1))] ?? 0;
}

/** Decide the modality from the settings, a DICOM hint and the intensities. */
export function decideModality(setting: PreprocessSpec['modality'], hint: string | undefined, image: Volume): 'ct' | 'other' {
  if (setting === 'ct' || setting === 'other') return setting;
  if (hint !== undefined && hint !== '') return hint.toUpperCase() === 'CT' ? 'ct' : 'other';
  return lowPercentile(image.data) < -500 ? 'ct' : 'other';
}

function isIntegral(d: VoxelArray): boolean {
  return !(d instanceof Float32Array || d instanceof Float64Array);
}

/** Cast the image to its cache voxel type. CT: int16 (rounded, clamped to the int16 range). */
export function castImage(v: Volume, modality: 'ct' | 'other', dtype: NonNullable<PreprocessSpec['dtype']>): Volume {
  const d = v.data;
  let want: 'int16' | 'float32';
  if (dtype !== 'auto') want = dtype;
  else if (modality === 'ct') want = 'int16';
  else {
    let fits = isIntegral(d);
    if (fits && !(d instanceof Int16Array || d instanceof Int8Array || d instanceof Uint8Array)) {
      for (let i = 0; i < d.length && fits; i++) if (d[i]! < -32768 || d[i]! > 32767) fits = false;
    }
    want = fits ? 'int16' : 'float32';
  }
  if (want === 'int16') {
    if (d instanceof Int16Array) return v;
    const out = new Int16Array(d.length);
    for (let i = 0; i < d.length; i++) {
      const x = Math.round(d[i]!);
      out[i] = x < -32768 ? -32768 : x > 32767 ? 32767 : x;
    }
    return { ...v, data: out };
  }
  return d instanceof Float32Array ? v : { ...v, data: Float32Array.from(d) };
}

/**
 * Cast a label map to the smallest integer type holding its values (uint8, int16 or int32).
 * Throws when a voxel is not a whole number or does not fit int32.
 */
export function castLabel(v: Volume, file: string): Volume {
  const d = v.data;
  let lo = 0, hi = 0;
  for (let i = 0; i < d.length; i++) {
    const x = d[i]!;
    if (!Number.isInteger(x)) throw new MisfmError('DATA', `label map has a non-integer value ${x} at voxel ${i}: not a label map`, { file });
    if (x < lo) lo = x;
    else if (x > hi) hi = x;
  }
  if (lo < -(2 ** 31) || hi >= 2 ** 31) throw new MisfmError('DATA', `label values ${lo}..${hi} do not fit int32`, { file });
  if (lo >= 0 && hi <= 255) return d instanceof Uint8Array ? v : { ...v, data: Uint8Array.from(d) };
  if (lo >= -32768 && hi <= 32767) return d instanceof Int16Array ? v : { ...v, data: Int16Array.from(d) };
  return d instanceof Int32Array ? v : { ...v, data: Int32Array.from(d) };
}

/**
 * Run the geometric steps and the user step on an image and its (grid-aligned) label.
 * Returns the processed pair and the image's spacing and size before resampling (the dataset
 * plan's fingerprint); casting is left to the caller.
 */
export async function applyPreprocess(pair: Pair, spec: PreprocessSpec, ctx: { id: string; modality: 'ct' | 'other' }): Promise<Pair & { native: { spacing: Vec3; size: Vec3 } }> {
  const s = normalizeSpec(spec);
  let { image, label } = pair;
  if (s.reorient !== false) {
    image = reorient(image, s.reorient).volume;
    if (label !== undefined) label = reorient(label, s.reorient).volume;
  }
  if (s.bodyCrop && ctx.modality === 'ct') {
    // The box is found on the image and applied to both, so the label stays on the image grid.
    const box = bodyBox(image);
    image = cropToBox(image, box);
    if (label !== undefined) label = cropToBox(label, box);
  }
  const native = { spacing: [...image.spacing] as Vec3, size: [...image.size] as Vec3 };
  // A case already at the target spacing is left as it is (resampling would only add rounding).
  if (s.spacing !== undefined && !sameSpacing(image.spacing, s.spacing)) {
    // Loaded on demand: the resampler pulls in the engine, which the default path does not need.
    const { resampleToSpacing } = await import('../transforms/resample.js');
    image = resampleToSpacing(image, s.spacing, { interpolation: 'linear', backend: 'js' });
    if (label !== undefined) label = resampleToSpacing(label, s.spacing, { interpolation: 'nearest', backend: 'js' });
  }
  if (s.module !== undefined) {
    const step = await loadUserStep(s.module);
    const r = await step(image, label, ctx);
    image = r.image;
    label = r.label;
  }
  return { image, label, native };
}
