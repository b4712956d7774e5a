/**
 * The dataset plan: what `prepare` learns about a dataset (its fingerprint: per-case spacing,
 * size, orientation, modality and intensities) and what it decides from it (the target spacing,
 * and for networks whose input size is free, a patch size that fits a memory budget). It is
 * written as versioned JSON beside the cache (`plan.json`) and copied into each run, so that a
 * checkpoint trained through it carries the spacing that `predict` resamples every input to.
 *
 * The spacing rule is nnU-Net's (ExperimentPlanner.determine_fullres_target_spacing): the median
 * spacing per axis, except for anisotropic datasets (the coarsest median axis more than 3x the
 * finest other one AND fewer than a third of the voxels of the smallest other axis), where that
 * axis takes the 10th percentile of its spacings, but never finer than the other axes (nnU-Net
 * adds 1e-5 to that floor, kept here so plans agree numerically).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MisfmError } from '../util/errors.js';
import { writeJsonAtomic } from '../util/atomic.js';
import type { Vec3 } from '../io/volume.js';
import { percentileSorted, type IntensityStats } from './stats.js';
import type { CaseRecord } from './manifest.js';

export const PLAN_NAME = 'plan.json';
export const PLAN_FORMAT = 'misfm-plan';
export const PLAN_VERSION = 1;
/** nnU-Net's ANISO_THRESHOLD. */
export const ANISOTROPY_THRESHOLD = 3;
/** Percentile of the coarse axis' spacings used for anisotropic datasets (nnU-Net: 10). */
export const ANISOTROPIC_PERCENTILE = 10;

/** One case as the plan sees it: geometry after reorientation (and body crop), before resampling. */
export interface CaseGeometry {
  id: string;
  /** (x, y, z) mm in the cache's axis order. */
  spacing: Vec3;
  /** (x, y, z) voxels. */
  size: Vec3;
  /** Orientation code of the source file (e.g. 'RAS', 'LPS'). */
  orientation: string;
  modality: 'ct' | 'other';
}

/** How a spacing was decided. */
export type SpacingRule = 'median' | 'anisotropic';

export interface SpacingDecision {
  /** (x, y, z) mm. */
  target: Vec3;
  rule: SpacingRule;
  medianSpacing: Vec3;
  medianSize: Vec3;
  /** Axis (0 = x, 1 = y, 2 = z) given the lower percentile, for the anisotropic rule. */
  lowResAxis: number | null;
  /** One sentence: why this spacing. */
  reason: string;
}

function median(values: number[]): number {
  return percentileSorted([...values].sort((a, b) => a - b), 50);
}

const fmt = (v: readonly number[]): string => v.map((x) => Number(x.toFixed(4))).join(',');

/**
 * The target spacing of a dataset by nnU-Net's rule (see the module comment). Spacings and sizes
 * are per case, (x, y, z), in one common axis order. Throws for an empty list.
 */
export function planSpacing(cases: readonly { spacing: Vec3; size: Vec3 }[]): SpacingDecision {
  if (cases.length === 0) throw new MisfmError('DATA', 'cannot plan a spacing for a dataset without readable cases');
  const axis = (a: number, of: 'spacing' | 'size'): number[] => cases.map((c) => c[of][a]!);
  const medianSpacing = [0, 1, 2].map((a) => median(axis(a, 'spacing'))) as Vec3;
  const medianSize = [0, 1, 2].map((a) => median(axis(a, 'size'))) as Vec3;
  const target = [...medianSpacing] as Vec3;
  // argmax picks the first of equal maxima, as numpy does.
  let worst = 0;
  for (let a = 1; a < 3; a++) if (target[a]! > target[worst]!) worst = a;
  const others = [0, 1, 2].filter((a) => a !== worst);
  const otherMaxSpacing = Math.max(...others.map((a) => target[a]!));
  const otherMinSize = Math.min(...others.map((a) => medianSize[a]!));
  const anisoSpacing = target[worst]! > ANISOTROPY_THRESHOLD * otherMaxSpacing;
  const anisoVoxels = medianSize[worst]! * ANISOTROPY_THRESHOLD < otherMinSize;
  if (anisoSpacing && anisoVoxels) {
    let t = percentileSorted(axis(worst, 'spacing').sort((a, b) => a - b), ANISOTROPIC_PERCENTILE);
    if (t < otherMaxSpacing) t = Math.max(otherMaxSpacing, t) + 1e-5;
    target[worst] = t;
    return {
      target, rule: 'anisotropic', medianSpacing, medianSize, lowResAxis: worst,
      reason: `anisotropic dataset (median ${fmt(medianSpacing)} mm, ${fmt(medianSize)} voxels): axis ${'xyz'[worst]} takes the ${ANISOTROPIC_PERCENTILE}th percentile of its spacings, the others the median`,
    };
  }
  return { target, rule: 'median', medianSpacing, medianSize, lowResAxis: null, reason: `median spacing of ${cases.length} case(s)` };
}

/** Pooled intensity summary of several cases (mean/std exact from the per-case moments). */
export interface PooledIntensity {
  cases: number;
  voxels: number;
  mean: number;
  std: number;
  /** Median over the cases of their 0.5th / 99.5th percentiles (the cases' samples are not kept). */
  p00_5: number;
  p99_5: number;
  min: number;
  max: number;
}

/** Pool per-case statistics; `weights` are the voxel counts behind each. Undefined for none. */
export function poolIntensity(stats: readonly { s: IntensityStats; n: number }[]): PooledIntensity | undefined {
  const use = stats.filter((x) => x.n > 0 && Number.isFinite(x.s.mean));
  if (use.length === 0) return undefined;
  let n = 0, sum = 0, sumSq = 0;
  for (const { s, n: k } of use) {
    n += k;
    sum += s.mean * k;
    sumSq += (s.std * s.std + s.mean * s.mean) * k;
  }
  const mean = sum / n;
  return {
    cases: use.length, voxels: n, mean, std: Math.sqrt(Math.max(0, sumSq / n - mean * mean)),
    p00_5: median(use.map((x) => x.s.p00_5)), p99_5: median(use.map((x) => x.s.p99_5)),
    min: Math.min(...use.map((x) => x.s.min)), max: Math.max(...use.map((x) => x.s.max)),
  };
}

/** Where the spacing a cache uses came from. */
export type SpacingSource = 'plan' | 'explicit' | 'native';

/** The plan file. */
export interface DatasetPlan {
  format: typeof PLAN_FORMAT;
  version: number;
  createdAt: string;
  fingerprint: {
    cases: CaseGeometry[];
    medianSpacing: Vec3;
    medianSize: Vec3;
    /** Smallest and largest spacing per axis (x, y, z). */
    spacingRange: { min: Vec3; max: Vec3 };
    modalities: { ct: number; other: number };
    /** CT: intensity of the labelled foreground (nnU-Net's CT normalisation statistics), or of whole images when unlabelled. */
    intensity: { of: 'foreground' | 'image'; stats: PooledIntensity } | null;
  };
  spacing: {
    /** The spacing the cache is prepared at (x, y, z mm), or null for native spacing. */
    target: Vec3 | null;
    source: SpacingSource;
    /** What the rule chose (recorded also when the target was given explicitly). */
    planned: Vec3;
    rule: SpacingRule;
    reason: string;
  };
  /** Added by the training commands: the network's input size (fixed) or the planned patch size (free). */
  network?: NetworkPlan;
}

/** The patch part of a plan, filled by the training commands (they know the network). */
export interface NetworkPlan {
  model: string;
  /** 'fixed': the network accepts one input size (PCT-Net); 'free': any multiple of `divisor`. */
  inputSize: 'fixed' | 'free';
  /** (D, H, W). */
  patchSize: [number, number, number];
  /** The patch size the run trains with (the config's data.patchSize). */
  used: [number, number, number];
  divisor: [number, number, number];
  /** Estimated training memory of one batch at `patchSize` (MiB) and the budget it was fitted to. */
  estimatedMiB: number;
  budgetMiB: number;
}

/** The fingerprint and plan of the cases of a prepare run (ok records with a native geometry). */
export function buildPlan(records: readonly CaseRecord[], spacing: { target: Vec3 | null; source: SpacingSource }): DatasetPlan | undefined {
  const cases: CaseGeometry[] = [];
  for (const r of records) {
    if (r.status !== 'ok' || r.native === undefined) continue;
    cases.push({ id: r.id, spacing: r.native.spacing, size: r.native.size, orientation: r.native.orientation, modality: r.modality ?? 'other' });
  }
  if (cases.length === 0) return undefined;
  const d = planSpacing(cases);
  const ct = records.filter((r) => r.status === 'ok' && r.modality === 'ct');
  const fg = ct.filter((r) => r.foregroundStats !== undefined && r.label !== undefined);
  const fgVoxels = (r: CaseRecord): number => Object.entries(r.label!.stats.classes).reduce((s, [k, v]) => s + (k === '0' ? 0 : v), 0);
  let intensity: DatasetPlan['fingerprint']['intensity'] = null;
  const pooledFg = poolIntensity(fg.map((r) => ({ s: r.foregroundStats!, n: fgVoxels(r) })));
  if (pooledFg !== undefined) intensity = { of: 'foreground', stats: pooledFg };
  else {
    const pooled = poolIntensity(ct.filter((r) => r.stats !== undefined && r.image !== undefined).map((r) => ({ s: r.stats!, n: r.image!.shape.reduce((a, b) => a * b, 1) })));
    if (pooled !== undefined) intensity = { of: 'image', stats: pooled };
  }
  const axisMin = [0, 1, 2].map((a) => Math.min(...cases.map((c) => c.spacing[a]!))) as Vec3;
  const axisMax = [0, 1, 2].map((a) => Math.max(...cases.map((c) => c.spacing[a]!))) as Vec3;
  return {
    format: PLAN_FORMAT, version: PLAN_VERSION, createdAt: new Date().toISOString(),
    fingerprint: {
      cases, medianSpacing: d.medianSpacing, medianSize: d.medianSize, spacingRange: { min: axisMin, max: axisMax },
      modalities: { ct: cases.filter((c) => c.modality === 'ct').length, other: cases.filter((c) => c.modality !== 'ct').length },
      intensity,
    },
    spacing: { target: spacing.target, source: spacing.source, planned: d.target, rule: d.rule, reason: d.reason },
  };
}

export function writePlan(dir: string, plan: DatasetPlan): string {
  const file = path.join(dir, PLAN_NAME);
  writeJsonAtomic(file, plan, 1);
  return file;
}

/** The plan of a cache or run folder, or undefined when it has none. Throws naming the file when it is damaged. */
export function readPlan(dir: string): DatasetPlan | undefined {
  const file = path.join(dir, PLAN_NAME);
  if (!fs.existsSync(file)) return undefined;
  let p: Partial<DatasetPlan>;
  try {
    p = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<DatasetPlan>;
  } catch (err) {
    throw new MisfmError('DATA', `plan is not valid JSON (${err instanceof Error ? err.message : String(err)})`, { file, cause: err });
  }
  if (typeof p !== 'object' || p === null || p.format !== PLAN_FORMAT || typeof p.spacing !== 'object' || typeof p.fingerprint !== 'object') {
    throw new MisfmError('DATA', `not a misfm plan (expected "format": "${PLAN_FORMAT}" with "spacing" and "fingerprint")`, { file });
  }
  if (p.version !== PLAN_VERSION) throw new MisfmError('DATA', `plan version ${String(p.version)} is not supported (expected ${PLAN_VERSION})`, { file });
  return p as DatasetPlan;
}

/** One line: "2.25,2.25,2.25 mm (median spacing of 2 case(s))". */
export function describeSpacing(s: DatasetPlan['spacing']): string {
  if (s.target === null) return `native spacing (the plan's would be ${fmt(s.planned)} mm: ${s.reason})`;
  if (s.source === 'explicit') return `${fmt(s.target)} mm (requested, not planned; the plan's would be ${fmt(s.planned)} mm)`;
  return `${fmt(s.target)} mm (${s.reason})`;
}

// ------------------------------------------------------------------ patch size for free networks

/**
 * Training activations kept per voxel and feature channel, in float32 values: each of the ~4 conv
 * blocks touching a resolution level (2 in the encoder, 2 in the decoder) keeps its conv, norm and
 * activation outputs for backward (x3), plus their gradients during backward (x2): 4*3*2 = 24.
 * An estimate, deliberately on the safe side; it orders patch sizes correctly, the absolute
 * figure is approximate.
 */
export const ACTIVATION_FACTOR = 24;

/** Estimated training memory (bytes) of a batch for a U-Net-like encoder-decoder. */
export function estimateTrainingBytes(patch: readonly number[], featureChns: readonly number[], batchSize: number): number {
  const voxels = patch.reduce((a, b) => a * b, 1);
  let perVoxel = 0;
  featureChns.forEach((c, level) => { perVoxel += c / 8 ** level; });
  return batchSize * voxels * perVoxel * 4 * ACTIVATION_FACTOR;
}

export interface PatchPlanOptions {
  /** Target spacing (x, y, z) mm. */
  spacing: Vec3;
  /** Median size (x, y, z) of the cases at the target spacing. */
  medianSize: Vec3;
  /** Size divisor (D, H, W) of the network. */
  divisor: readonly number[];
  featureChns: readonly number[];
  batchSize: number;
  budgetBytes: number;
  /** Upper bound of the patch voxel count before the memory fit (nnU-Net starts from 256^3). */
  maxVoxels?: number;
}

/**
 * A patch size (D, H, W) for a network whose input size is free, as nnU-Net plans it: the aspect
 * ratio follows the spacing (equal extent in mm per axis), clipped to the median image size, each
 * axis a multiple of the network's divisor; the axis with the largest extent in mm is shrunk by
 * one divisor step until the estimated training memory fits the budget.
 */
export function planPatchSize(o: PatchPlanOptions): { patchSize: [number, number, number]; estimatedBytes: number } {
  const sp = [o.spacing[2], o.spacing[1], o.spacing[0]];
  const med = [o.medianSize[2], o.medianSize[1], o.medianSize[0]];
  const inv = sp.map((s) => 1 / s);
  const maxVoxels = o.maxVoxels ?? 256 ** 3;
  const scale = Math.cbrt(maxVoxels / (inv[0]! * inv[1]! * inv[2]!));
  const div = [0, 1, 2].map((a) => Math.max(1, o.divisor[a] ?? 1));
  const roundDown = (x: number, a: number): number => Math.max(div[a]!, Math.floor(x / div[a]!) * div[a]!);
  // Clip to the median size rounded up to the divisor, so a small image still fills one patch.
  const patch = [0, 1, 2].map((a) => roundDown(Math.min(inv[a]! * scale, Math.ceil(med[a]! / div[a]!) * div[a]!), a));
  let bytes = estimateTrainingBytes(patch, o.featureChns, o.batchSize);
  while (bytes > o.budgetBytes) {
    // Shrink the axis with the largest extent in mm that can still shrink.
    let pick = -1;
    for (let a = 0; a < 3; a++) if (patch[a]! > div[a]! && (pick < 0 || patch[a]! * sp[a]! > patch[pick]! * sp[pick]!)) pick = a;
    if (pick < 0) break;
    patch[pick] = patch[pick]! - div[pick]!;
    bytes = estimateTrainingBytes(patch, o.featureChns, o.batchSize);
  }
  return { patchSize: [patch[0]!, patch[1]!, patch[2]!], estimatedBytes: bytes };
}
