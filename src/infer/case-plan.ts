/**
 * What a prediction will do, said before it does it: the input's spacing and size, the spacing
 * and size the network works at, the number of windows, and warnings when the input is far from
 * what the model saw in training (another spacing by more than 2x, another modality, a field of
 * view smaller than one window, or no recorded spacing at all). Pure: `predictCase` fills it in
 * and the CLI prints it with a time estimate from the first measured window.
 */
import type { Vec3 } from '../io/volume.js';
import type { Triple3 } from './windows.js';

/** What the training data of a checkpoint looked like (from the dataset plan it recorded). */
export interface TrainingDataSummary {
  /** The spacing the training cache was prepared at (x, y, z mm), or null for native spacings. */
  spacing: Vec3 | null;
  /** Smallest and largest native spacing per axis (x, y, z) mm. */
  spacingRange: { min: Vec3; max: Vec3 } | null;
  modalities: { ct: number; other: number } | null;
}

export interface CasePlan {
  /** (x, y, z) mm, in the model's axis order (after reorientation), before resampling. */
  inputSpacing: Vec3;
  /** (x, y, z) voxels of the input file. */
  inputSize: Vec3;
  /** The spacing the network works at, or null for the input's own. */
  modelSpacing: Vec3 | null;
  /** (x, y, z) voxels of the working grid (after crop and resampling). */
  workSize: Vec3;
  window: Triple3;
  /** Network windows (distinct positions; TTA multiplies the passes). */
  windows: number;
  warnings: string[];
}

/** More than this factor between the input's and the model's spacing on an axis is warned about. */
export const SPACING_WARN_FACTOR = 2;

const mm = (v: readonly number[]): string => v.map((x) => Number(x.toFixed(3))).join(',');

export interface WarningInputs {
  inputSpacing: Vec3;
  modelSpacing: Vec3 | null;
  /** 'misfm' when the checkpoint recorded its preprocessing. */
  checkpointKind: 'misfm' | 'pytorch' | 'safetensors';
  training: TrainingDataSummary | null;
  inputModality: 'ct' | 'other';
  /** Working grid (D, H, W) and window (D, H, W). */
  workShape: Triple3;
  window: Triple3;
}

/** The warnings of a case (empty when the input looks like the training data). */
export function predictionWarnings(w: WarningInputs): string[] {
  const out: string[] = [];
  const ratio = (a: number, b: number): number => Math.max(a / b, b / a);
  if (w.modelSpacing !== null) {
    const far = [0, 1, 2].filter((a) => ratio(w.inputSpacing[a]!, w.modelSpacing![a]!) > SPACING_WARN_FACTOR);
    if (far.length > 0) {
      out.push(`input spacing ${mm(w.inputSpacing)} mm is more than ${SPACING_WARN_FACTOR}x from the model's ${mm(w.modelSpacing)} mm on axis ${far.map((a) => 'xyz'[a]).join(',')}: ` +
        'it is resampled, but detail finer than the model\'s spacing is lost and coarser input is only interpolated');
    }
  } else {
    const r = w.training?.spacingRange ?? null;
    const trained = w.training?.spacing ?? null;
    if (trained !== null) {
      // A model trained at one spacing, asked to predict at the input's own (--spacing native).
      const far = [0, 1, 2].filter((a) => ratio(w.inputSpacing[a]!, trained[a]!) > SPACING_WARN_FACTOR);
      if (far.length > 0) {
        out.push(`the model was trained at ${mm(trained)} mm but predicts at the input's own spacing ${mm(w.inputSpacing)} mm, more than ${SPACING_WARN_FACTOR}x apart on axis ${far.map((a) => 'xyz'[a]).join(',')}: ` +
          'structures appear at a scale it never saw (leave out --spacing native to resample)');
      }
    } else if (r !== null) {
      const far = [0, 1, 2].filter((a) => w.inputSpacing[a]! > SPACING_WARN_FACTOR * r.max[a]! || w.inputSpacing[a]! * SPACING_WARN_FACTOR < r.min[a]!);
      if (far.length > 0) {
        out.push(`the model predicts at the input's own spacing ${mm(w.inputSpacing)} mm, more than ${SPACING_WARN_FACTOR}x outside the training data's ${mm(r.min)}..${mm(r.max)} mm on axis ${far.map((a) => 'xyz'[a]).join(',')}: ` +
          'structures appear at a scale it never saw (give --spacing X,Y,Z to resample)');
      }
    } else {
      out.push(w.checkpointKind === 'misfm'
        ? `the checkpoint records no training spacing: predicting at the input's own spacing ${mm(w.inputSpacing)} mm (give --spacing X,Y,Z if it was trained at another)`
        : `a ${w.checkpointKind} checkpoint records no spacing: predicting at the input's own spacing ${mm(w.inputSpacing)} mm (give --spacing X,Y,Z if the model was trained at a fixed spacing)`);
    }
  }
  const m = w.training?.modalities ?? null;
  if (m !== null && m.ct + m.other > 0) {
    const seen = w.inputModality === 'ct' ? m.ct : m.other;
    if (seen === 0) out.push(`the input looks like ${w.inputModality === 'ct' ? 'CT (HU)' : 'a non-CT image'}, but the model was trained on ${w.inputModality === 'ct' ? 'non-CT images' : 'CT'} only`);
  }
  const small = [0, 1, 2].filter((a) => w.workShape[a]! < w.window[a]!);
  if (small.length > 0) {
    out.push(`the field of view (${w.workShape.join('x')} voxels D,H,W at the model's spacing) is smaller than one window (${w.window.join('x')}) along ${small.map((a) => 'DHW'[a]).join(',')}: ` +
      'the image is padded and the network sees mostly padding there');
  }
  return out;
}

/** "0.81,0.81,2.5 mm -> 2.25,2.25,2.25 mm, 512x512x3 -> 184x184x3 voxels, 12 windows". */
export function describeCasePlan(p: CasePlan): string {
  const sp = p.modelSpacing === null ? `${mm(p.inputSpacing)} mm (native)` : `${mm(p.inputSpacing)} mm -> ${mm(p.modelSpacing)} mm`;
  return `${sp}, ${p.inputSize.join('x')} -> ${p.workSize.join('x')} voxels, ${p.windows} window${p.windows === 1 ? '' : 's'} of ${p.window.join('x')}`;
}
