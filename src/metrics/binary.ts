/**
 * Binary segmentation metrics, matching PyMIC's `pymic/util/evaluation_seg.py` (current code):
 * Dice, IoU, relative volume error, volume, ASSD, HD95, and normalised surface Dice (NSD).
 *
 * Surface metrics work on the edge voxels of each mask (see surface.ts) and the exact Euclidean
 * distance between voxel centres with the (z,y,x) spacing. Two behaviours for the cases PyMIC
 * special-cases are offered, chosen explicitly through {@link SurfaceMetricOptions}:
 *
 * - `reference` (the default; reproduces PyMIC and therefore the paper's numbers):
 *   both surfaces empty gives ASSD 0 / HD95 0, one empty gives ASSD 20 / HD95 100, and the values
 *   are then clipped to min(ASSD, 20) and min(HD95, 50).
 * - `raw`: no clipping, and ASSD/HD95 are NaN when either surface is empty (undefined).
 *
 * The two knobs (`empty`, `clip`) can also be set separately.
 */
import type { Box3, Shape3, Spacing3 } from './types.js';
import { boxShape, checkShape, checkSpacing } from './types.js';
import { boundingBox, cropMask, growBox, isFullBox } from './box.js';
import { squaredEdt } from './edt.js';
import { countNonzero, surfaceOf } from './surface.js';
import { MisfmError } from '../util/errors.js';

/** How ASSD/HD95/NSD treat empty surfaces: PyMIC's constants, or NaN (undefined). */
export type EmptyPolicy = 'pymic' | 'nan';

export interface SurfaceMetricOptions {
  empty: EmptyPolicy;
  /** Clip ASSD at 20 and HD95 at 50 (PyMIC's outlier rejection). */
  clip: boolean;
}

/** Named presets: `reference` = PyMIC current code, `raw` = unclipped, NaN when undefined. */
export type MetricMode = 'reference' | 'raw';

export const REFERENCE_OPTIONS: Readonly<SurfaceMetricOptions> = Object.freeze({ empty: 'pymic', clip: true });
export const RAW_OPTIONS: Readonly<SurfaceMetricOptions> = Object.freeze({ empty: 'nan', clip: false });

/** PyMIC's values for one empty surface, and its clipping thresholds. */
export const PYMIC_ASSD_ONE_EMPTY = 20;
export const PYMIC_HD95_ONE_EMPTY = 100;
export const PYMIC_ASSD_CLIP = 20;
export const PYMIC_HD95_CLIP = 50;

/** Options of a preset, with the clipping optionally overridden. */
export function surfaceOptions(mode: MetricMode, clip?: boolean): SurfaceMetricOptions {
  const base = mode === 'reference' ? REFERENCE_OPTIONS : RAW_OPTIONS;
  return { empty: base.empty, clip: clip ?? base.clip };
}

/** The PyMIC smoothing constant of Dice and IoU. */
const SMOOTH = 1e-5;

function checkPair(op: string, s: Uint8Array, g: Uint8Array): void {
  if (s.length !== g.length) {
    throw new MisfmError('SHAPE', `${op}: segmentation has ${s.length} voxels but ground truth has ${g.length}`);
  }
}

/** Voxel counts |S|, |G|, |S∩G|, |S∪G| of two binary masks (nonzero = foreground). */
export function overlapCounts(s: Uint8Array, g: Uint8Array): { s: number; g: number; both: number; either: number } {
  checkPair('overlapCounts', s, g);
  let ns = 0, ng = 0, both = 0;
  for (let i = 0; i < s.length; i++) {
    const a = s[i] !== 0, b = g[i] !== 0;
    if (a) ns++;
    if (b) ng++;
    if (a && b) both++;
  }
  return { s: ns, g: ng, both, either: ns + ng - both };
}

/** Dice `(2|S∩G| + 1e-5) / (|S| + |G| + 1e-5)`; 1 when both masks are empty. */
export function dice(s: Uint8Array, g: Uint8Array): number {
  const c = overlapCounts(s, g);
  return (2 * c.both + SMOOTH) / (c.s + c.g + SMOOTH);
}

/** IoU `(|S∩G| + 1e-5) / (|S∪G| + 1e-5)`; 1 when both masks are empty. */
export function iou(s: Uint8Array, g: Uint8Array): number {
  const c = overlapCounts(s, g);
  return (c.both + SMOOTH) / (c.either + SMOOTH);
}

/** Relative volume error `| |S| - |G| | / |G|`; NaN when G is empty (PyMIC asserts instead). */
export function relativeVolumeError(s: Uint8Array, g: Uint8Array): number {
  const c = overlapCounts(s, g);
  return c.g === 0 ? NaN : Math.abs(c.s - c.g) / c.g;
}

/**
 * Directed surface distances between two masks: `sToG[i]` is the distance (mm) from the i-th
 * edge voxel of S (in C order) to the nearest edge voxel of G, and `gToS` the reverse. A list is
 * all Infinity when the other surface is empty.
 */
export interface SurfaceDistances {
  sToG: Float64Array;
  gToS: Float64Array;
}

/**
 * The masks restricted to the bounding box of their union grown by one voxel: exact for every
 * metric here, since all foreground is inside and the extra background layer makes the crop's
 * border behave like the zero border of the erosion wherever it is not the array border itself.
 * Returns undefined when both masks are empty.
 */
function cropPair(s: Uint8Array, g: Uint8Array, shape: Shape3): { s: Uint8Array; g: Uint8Array; shape: Shape3 } | undefined {
  const tight = boundingBox(shape, s, g);
  if (tight === undefined) return undefined;
  const box = growBox(tight, shape, 1);
  if (isFullBox(box, shape)) return { s, g, shape };
  return { s: cropMask(s, shape, box), g: cropMask(g, shape, box), shape: boxShape(box) };
}

/**
 * Compute {@link SurfaceDistances}. Everything runs on the bounding box of the two masks (see
 * cropPair), and the distance transforms only over the bounding box of the two surfaces, which is
 * exact because every feature voxel is inside it.
 */
export function surfaceDistances(s: Uint8Array, g: Uint8Array, shape: Shape3, spacing: Spacing3): SurfaceDistances {
  checkShape('surfaceDistances', shape, s.length);
  checkPair('surfaceDistances', s, g);
  checkSpacing('surfaceDistances', spacing);
  const crop = cropPair(s, g, shape);
  if (crop === undefined) return { sToG: new Float64Array(0), gToS: new Float64Array(0) };
  return croppedSurfaceDistances(crop.s, crop.g, crop.shape, spacing);
}

function croppedSurfaceDistances(s: Uint8Array, g: Uint8Array, shape: Shape3, spacing: Spacing3): SurfaceDistances {
  const es = surfaceOf(s, shape);
  const eg = surfaceOf(g, shape);
  const ns = countNonzero(es), ng = countNonzero(eg);
  const sToG = new Float64Array(ns), gToS = new Float64Array(ng);
  if (ns === 0 || ng === 0) {
    sToG.fill(Infinity); gToS.fill(Infinity);
    return { sToG, gToS };
  }
  const box = boundingBox(shape, es, eg)!;
  const [bd, bh, bw] = boxShape(box);
  const buf = new Float64Array(bd * bh * bw);
  sampleAt(squaredEdt(eg, shape, spacing, box, buf), es, shape, box, sToG);
  sampleAt(squaredEdt(es, shape, spacing, box, buf), eg, shape, box, gToS);
  return { sToG, gToS };
}

/** Writes sqrt(sq) at each nonzero voxel of `where` (all inside `box`) into `out`, in C order. */
function sampleAt(sq: Float64Array, where: Uint8Array, shape: Shape3, box: Box3, out: Float64Array): void {
  const [, H, W] = shape;
  const bh = box.y1 - box.y0, bw = box.x1 - box.x0;
  let k = 0;
  for (let z = box.z0; z < box.z1; z++) {
    for (let y = box.y0; y < box.y1; y++) {
      const row = (z * H + y) * W;
      const boxRow = ((z - box.z0) * bh + (y - box.y0)) * bw - box.x0;
      for (let x = box.x0; x < box.x1; x++) {
        if (where[row + x] !== 0) out[k++] = Math.sqrt(sq[boxRow + x]!);
      }
    }
  }
}

/** `sorted(values)[int(len * q)]`: PyMIC's percentile rule (no interpolation); NaN when empty. */
export function indexPercentile(values: Float64Array, q = 0.95): number {
  if (values.length === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.floor(values.length * q)]!;
}

/** The value for empty surfaces under `opts`, or undefined when both surfaces are present. */
function emptyValue(d: SurfaceDistances, oneEmpty: number, opts: SurfaceMetricOptions): number | undefined {
  const ns = d.sToG.length, ng = d.gToS.length;
  if (ns > 0 && ng > 0) return undefined;
  if (opts.empty === 'nan') return NaN;
  return ns + ng === 0 ? 0 : oneEmpty;
}

/** Average symmetric surface distance (mm): mean of both directed lists pooled together. */
export function assd(d: SurfaceDistances, opts: SurfaceMetricOptions = REFERENCE_OPTIONS): number {
  let v = emptyValue(d, PYMIC_ASSD_ONE_EMPTY, opts);
  if (v === undefined) {
    let sum = 0;
    for (let i = 0; i < d.sToG.length; i++) sum += d.sToG[i]!;
    for (let i = 0; i < d.gToS.length; i++) sum += d.gToS[i]!;
    v = sum / (d.sToG.length + d.gToS.length);
  }
  return opts.clip ? Math.min(v, PYMIC_ASSD_CLIP) : v;
}

/** 95th-percentile Hausdorff distance (mm): max of the two directed `sorted[int(0.95 n)]`. */
export function hd95(d: SurfaceDistances, opts: SurfaceMetricOptions = REFERENCE_OPTIONS): number {
  let v = emptyValue(d, PYMIC_HD95_ONE_EMPTY, opts);
  if (v === undefined) v = Math.max(indexPercentile(d.sToG), indexPercentile(d.gToS));
  return opts.clip ? Math.min(v, PYMIC_HD95_CLIP) : v;
}

/**
 * Normalised surface Dice at tolerance `tau` mm: the fraction of both surfaces lying within tau of
 * the other, `(#{sToG <= tau} + #{gToS <= tau}) / (|dS| + |dG|)`. One empty surface gives 0 (no
 * point is within reach); both empty give 1 under the `pymic` policy and NaN under `nan`.
 */
export function nsd(d: SurfaceDistances, tau: number, opts: SurfaceMetricOptions = REFERENCE_OPTIONS): number {
  if (!(tau >= 0)) throw new MisfmError('ARGUMENT', `nsd: tolerance must be a non-negative number of mm, got ${tau}`);
  const n = d.sToG.length + d.gToS.length;
  if (n === 0) return opts.empty === 'nan' ? NaN : 1;
  let hit = 0;
  for (let i = 0; i < d.sToG.length; i++) if (d.sToG[i]! <= tau) hit++;
  for (let i = 0; i < d.gToS.length; i++) if (d.gToS[i]! <= tau) hit++;
  return hit / n;
}

/** Metric names understood by {@link binaryMetrics} and the evaluator. */
export type MetricName = 'dice' | 'iou' | 'assd' | 'hd95' | 'nsd' | 'rve' | 'volume';
export const METRIC_NAMES: readonly MetricName[] = ['dice', 'iou', 'assd', 'hd95', 'nsd', 'rve', 'volume'];

export interface BinaryMetricOptions extends SurfaceMetricOptions {
  /** NSD tolerance in mm (default 2). */
  nsdTolerance: number;
}

/** Parse a metric name (case-insensitive; `hausdorff95` is accepted for hd95). */
export function parseMetricName(name: string): MetricName {
  const m = name.trim().toLowerCase();
  if (m === 'hausdorff95') return 'hd95';
  if ((METRIC_NAMES as readonly string[]).includes(m)) return m as MetricName;
  throw new MisfmError('ARGUMENT', `unknown metric '${name}'; known: ${METRIC_NAMES.join(', ')}`);
}

/**
 * Several metrics of one binary pair, sharing the surface distances between ASSD/HD95/NSD.
 * `volume` is the ground-truth foreground volume in mm^3, as in PyMIC.
 */
export function binaryMetrics(
  s: Uint8Array, g: Uint8Array, shape: Shape3, spacing: Spacing3,
  metrics: readonly MetricName[], opts: Partial<BinaryMetricOptions> = {},
): Record<MetricName, number> {
  checkShape('binaryMetrics', shape, s.length);
  checkPair('binaryMetrics', s, g);
  checkSpacing('binaryMetrics', spacing);
  const o: BinaryMetricOptions = { ...REFERENCE_OPTIONS, nsdTolerance: 2, ...opts };
  const out = {} as Record<MetricName, number>;
  const crop = cropPair(s, g, shape);
  const c = crop === undefined ? { s: 0, g: 0, both: 0, either: 0 } : overlapCounts(crop.s, crop.g);
  let dist: SurfaceDistances | undefined;
  const distances = (): SurfaceDistances => (dist ??= crop === undefined
    ? { sToG: new Float64Array(0), gToS: new Float64Array(0) }
    : croppedSurfaceDistances(crop.s, crop.g, crop.shape, spacing));
  for (const m of metrics) {
    switch (m) {
      case 'dice': out.dice = (2 * c.both + SMOOTH) / (c.s + c.g + SMOOTH); break;
      case 'iou': out.iou = (c.both + SMOOTH) / (c.either + SMOOTH); break;
      case 'rve': out.rve = c.g === 0 ? NaN : Math.abs(c.s - c.g) / c.g; break;
      case 'volume': out.volume = c.g * spacing[0] * spacing[1] * spacing[2]; break;
      case 'assd': out.assd = assd(distances(), o); break;
      case 'hd95': out.hd95 = hd95(distances(), o); break;
      case 'nsd': out.nsd = nsd(distances(), o.nsdTolerance, o); break;
    }
  }
  return out;
}
