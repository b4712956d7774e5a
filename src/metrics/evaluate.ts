/**
 * Multi-class, multi-case evaluation of label maps, following PyMIC's `evaluation_seg.evaluation`:
 * each class is a label value or a list of values merged into one foreground, metrics are binary
 * per class, the per-case mean over classes is added when there is more than one class, and mean
 * and (population) std are taken over cases.
 *
 * Undefined values (NaN: e.g. RVE with an empty ground truth, or ASSD in `raw` mode with an empty
 * surface) are left out of means and standard deviations; every statistic carries the count `n` of
 * values it was computed from, so dropped cases stay visible. In `reference` mode all surface
 * metrics are finite and the numbers equal PyMIC's.
 */
import type { Box3, LabelArray, Shape3, Spacing3 } from './types.js';
import { boxShape, checkShape, checkSpacing } from './types.js';
import type { MetricMode, MetricName, SurfaceMetricOptions } from './binary.js';
import { binaryMetrics, parseMetricName, surfaceOptions } from './binary.js';
import { growBox } from './box.js';
import { MisfmError } from '../util/errors.js';

/** A class: one label value, or several values merged into one foreground. */
export type LabelSpec = number | readonly number[];

export interface EvaluateOptions {
  labels: readonly LabelSpec[];
  /** Class names, one per label spec; default PyMIC's: "3", or "class_1_2" for a merged list. */
  names?: readonly string[];
  metrics: readonly (MetricName | string)[];
  /** `reference` (default): PyMIC's empty-surface constants and clipping. `raw`: neither. */
  mode?: MetricMode;
  /** Override the clipping of the chosen mode. */
  clip?: boolean;
  /** NSD tolerance in mm (default 2). */
  nsdTolerance?: number;
}

/** Options after validation, recorded in every report so numbers can be interpreted later. */
export interface EvaluationSettings {
  classes: { name: string; labels: number[] }[];
  metrics: MetricName[];
  mode: MetricMode;
  surface: SurfaceMetricOptions;
  nsdTolerance: number;
  /** Set when the predictions were probability maps binarised at this value (evaluate --threshold). */
  predictionThreshold?: number;
}

export type MetricValues = Record<MetricName, number>;

export interface CaseResult {
  case: string;
  /** Metric values per class, in the order of `settings.classes`. */
  classes: MetricValues[];
  /** Mean over classes (finite values only); present when there is more than one class. */
  average?: MetricValues;
}

export interface MetricStats { mean: number; std: number; n: number }

export interface EvaluationSummary {
  /** Class names in order, followed by "average" when there is more than one class. */
  rows: string[];
  /** stats[row][metric]. */
  stats: Record<string, Record<MetricName, MetricStats>>;
}

export interface EvaluationReport {
  settings: EvaluationSettings;
  cases: CaseResult[];
  summary: EvaluationSummary;
}

/** PyMIC's default class name. */
export function defaultClassName(spec: LabelSpec): string {
  return typeof spec === 'number' ? String(spec) : `class_${spec.join('_')}`;
}

/** Validate options and fill in defaults. */
export function resolveSettings(opts: EvaluateOptions): EvaluationSettings {
  if (opts.labels.length === 0) throw new MisfmError('ARGUMENT', 'evaluate: no labels given');
  const classes = opts.labels.map((spec, i) => {
    const labels = typeof spec === 'number' ? [spec] : [...spec];
    if (labels.length === 0 || !labels.every((v) => Number.isFinite(v))) {
      throw new MisfmError('ARGUMENT', `evaluate: label ${i + 1} must be a number or a non-empty list of numbers, got ${JSON.stringify(spec)}`);
    }
    return { name: opts.names?.[i] ?? defaultClassName(spec), labels };
  });
  if (opts.names !== undefined && opts.names.length !== opts.labels.length) {
    throw new MisfmError('ARGUMENT', `evaluate: ${opts.names.length} class names for ${opts.labels.length} labels`);
  }
  const names = new Set(classes.map((c) => c.name));
  if (names.size !== classes.length || names.has('average')) {
    throw new MisfmError('ARGUMENT', `evaluate: class names must be unique and not 'average': ${classes.map((c) => c.name).join(', ')}`);
  }
  if (opts.metrics.length === 0) throw new MisfmError('ARGUMENT', 'evaluate: no metrics given');
  const metrics = [...new Set(opts.metrics.map(parseMetricName))];
  const mode = opts.mode ?? 'reference';
  if (mode !== 'reference' && mode !== 'raw') throw new MisfmError('ARGUMENT', `evaluate: mode must be 'reference' or 'raw', got '${String(mode)}'`);
  const nsdTolerance = opts.nsdTolerance ?? 2;
  if (!(nsdTolerance >= 0) || !Number.isFinite(nsdTolerance)) {
    throw new MisfmError('ARGUMENT', `evaluate: NSD tolerance must be a non-negative number of mm, got ${nsdTolerance}`);
  }
  return { classes, metrics, mode, surface: surfaceOptions(mode, opts.clip), nsdTolerance };
}

/**
 * Per-class bounding boxes of a label map in one pass: boxes[c] covers every voxel whose value
 * belongs to class c (undefined when there is none).
 */
function classBoxes(arr: LabelArray, shape: Shape3, classOf: Map<number, number[]>, nClasses: number): (Box3 | undefined)[] {
  const [D, H, W] = shape;
  const lo = new Int32Array(nClasses * 3).fill(0x7fffffff);
  const hi = new Int32Array(nClasses * 3).fill(-1);
  let lastV = NaN;
  let cls: number[] | undefined;
  let i = 0;
  for (let z = 0; z < D; z++) {
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++, i++) {
        const v = arr[i]!;
        // Label maps are long runs of equal values: cache the last lookup.
        if (v !== lastV) { lastV = v; cls = classOf.get(v); }
        if (cls === undefined) continue;
        for (const c of cls) {
          const k = c * 3;
          if (z < lo[k]!) lo[k] = z;
          if (z > hi[k]!) hi[k] = z;
          if (y < lo[k + 1]!) lo[k + 1] = y;
          if (y > hi[k + 1]!) hi[k + 1] = y;
          if (x < lo[k + 2]!) lo[k + 2] = x;
          if (x > hi[k + 2]!) hi[k + 2] = x;
        }
      }
    }
  }
  const out: (Box3 | undefined)[] = [];
  for (let c = 0; c < nClasses; c++) {
    const k = c * 3;
    out.push(hi[k]! < 0 ? undefined : { z0: lo[k]!, z1: hi[k]! + 1, y0: lo[k + 1]!, y1: hi[k + 1]! + 1, x0: lo[k + 2]!, x1: hi[k + 2]! + 1 });
  }
  return out;
}

/** Binary mask of the voxels of `box` whose value is in `values`. */
function cropLabelMask(arr: LabelArray, shape: Shape3, box: Box3, values: ReadonlySet<number>): Uint8Array {
  const [, H, W] = shape;
  const [bd, bh, bw] = boxShape(box);
  const m = new Uint8Array(bd * bh * bw);
  let lastV = NaN, lastIn = false, j = 0;
  for (let z = box.z0; z < box.z1; z++) {
    for (let y = box.y0; y < box.y1; y++) {
      const row = (z * H + y) * W;
      for (let x = box.x0; x < box.x1; x++, j++) {
        const v = arr[row + x]!;
        if (v !== lastV) { lastV = v; lastIn = values.has(v); }
        if (lastIn) m[j] = 1;
      }
    }
  }
  return m;
}

function unionBox(a: Box3 | undefined, b: Box3 | undefined): Box3 | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return {
    z0: Math.min(a.z0, b.z0), z1: Math.max(a.z1, b.z1), y0: Math.min(a.y0, b.y0),
    y1: Math.max(a.y1, b.y1), x0: Math.min(a.x0, b.x0), x1: Math.max(a.x1, b.x1),
  };
}

/**
 * Evaluate one case: every class of `settings` on prediction vs ground truth (C-order label maps
 * of the same shape (D,H,W), spacing (z,y,x) mm).
 *
 * Each class is evaluated on the bounding box of its voxels in both maps grown by one voxel
 * (clipped to the array). That is exact: the one-voxel background margin makes the crop's border
 * behave like PyMIC's zero border value wherever the crop is not the array border itself.
 */
export function evaluateCase(
  caseName: string, pred: LabelArray, gt: LabelArray, shape: Shape3, spacing: Spacing3,
  settings: EvaluationSettings,
): CaseResult {
  checkShape(`evaluate ${caseName}: prediction`, shape, pred.length);
  checkShape(`evaluate ${caseName}: ground truth`, shape, gt.length);
  checkSpacing(`evaluate ${caseName}`, spacing);
  const nC = settings.classes.length;
  const classOf = new Map<number, number[]>();
  settings.classes.forEach((c, ci) => {
    for (const v of c.labels) {
      const list = classOf.get(v) ?? [];
      if (!list.includes(ci)) list.push(ci);
      classOf.set(v, list);
    }
  });
  const pBoxes = classBoxes(pred, shape, classOf, nC);
  const gBoxes = classBoxes(gt, shape, classOf, nC);
  const opts = { ...settings.surface, nsdTolerance: settings.nsdTolerance };
  const classes: MetricValues[] = settings.classes.map((c, ci) => {
    const u = unionBox(pBoxes[ci], gBoxes[ci]);
    // Both empty: a 1-voxel background crop gives the empty-mask values through the same code.
    const box: Box3 = u === undefined ? { z0: 0, z1: 1, y0: 0, y1: 1, x0: 0, x1: 1 } : growBox(u, shape, 1);
    const values = new Set(c.labels);
    const s = u === undefined ? new Uint8Array(1) : cropLabelMask(pred, shape, box, values);
    const g = u === undefined ? new Uint8Array(1) : cropLabelMask(gt, shape, box, values);
    return binaryMetrics(s, g, boxShape(box), spacing, settings.metrics, opts);
  });
  const result: CaseResult = { case: caseName, classes };
  if (nC > 1) {
    const avg = {} as MetricValues;
    for (const m of settings.metrics) avg[m] = finiteStats(classes.map((v) => v[m])).mean;
    result.average = avg;
  }
  return result;
}

/** Mean and population std (numpy's default ddof=0) of the finite values; NaN when there are none. */
export function finiteStats(values: readonly number[]): MetricStats {
  const f = values.filter((v) => Number.isFinite(v));
  if (f.length === 0) return { mean: NaN, std: NaN, n: 0 };
  const mean = f.reduce((a, b) => a + b, 0) / f.length;
  const variance = f.reduce((a, b) => a + (b - mean) * (b - mean), 0) / f.length;
  return { mean, std: Math.sqrt(variance), n: f.length };
}

/** Mean/std over cases per class (and for the per-case average row). */
export function summarize(cases: readonly CaseResult[], settings: EvaluationSettings): EvaluationSummary {
  const rows = settings.classes.map((c) => c.name);
  const stats: EvaluationSummary['stats'] = {};
  settings.classes.forEach((c, ci) => {
    const r = {} as Record<MetricName, MetricStats>;
    for (const m of settings.metrics) r[m] = finiteStats(cases.map((k) => k.classes[ci]?.[m] ?? NaN));
    stats[c.name] = r;
  });
  if (settings.classes.length > 1) {
    rows.push('average');
    const r = {} as Record<MetricName, MetricStats>;
    for (const m of settings.metrics) r[m] = finiteStats(cases.map((k) => k.average?.[m] ?? NaN));
    stats['average'] = r;
  }
  return { rows, stats };
}

/** Evaluate in-memory cases and summarise them. */
export function evaluateCases(
  cases: readonly { name: string; pred: LabelArray; gt: LabelArray; shape: Shape3; spacing: Spacing3 }[],
  opts: EvaluateOptions,
): EvaluationReport {
  const settings = resolveSettings(opts);
  const results = cases.map((c) => evaluateCase(c.name, c.pred, c.gt, c.shape, c.spacing, settings));
  return { settings, cases: results, summary: summarize(results, settings) };
}
