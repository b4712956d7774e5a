/**
 * The window plan of a sliding-window pass: which windows run, in which order, with which weight
 * multiplicity, over an image padded up to the window where needed. Pure bookkeeping on (D,H,W)
 * triples; ./sliding-window.ts does the tensor work.
 */
import { MisfmError } from '../util/errors.js';
import { gaussianImportanceMap, overlapToStride, padToWindow, windowStarts, type PadToWindow, type Triple3 } from './windows.js';

/**
 * How repeated window starts (the clamped last window of an axis, spec 3.2) are treated:
 * - 'reference': every start of the reference loop is computed and added, duplicates included
 *   (bit-for-bit the reference's order and weighting).
 * - 'weighted': each distinct window is computed once and added with its multiplicity as a
 *   factor, so the weighting equals the reference's with fewer network passes (the default for
 *   production; results differ from 'reference' only by float rounding).
 * - 'once': each distinct window computed and weighted once (MONAI / nnU-Net behaviour).
 */
export type DuplicateMode = 'reference' | 'weighted' | 'once';

/** Blending of overlapping windows. */
export type BlendMode = 'gaussian' | 'constant';

/** Geometry options shared by every sliding-window entry point. */
export interface WindowPlanOptions {
  /** Window [D,H,W]: the network input size. Never shrunk: smaller images are padded. */
  window: Triple3;
  /** Explicit stride [D,H,W]; wins over `overlap`. */
  stride?: Triple3;
  /** Fractional overlap used when `stride` is not given (default 0.5, the reference's stride = window/2). */
  overlap?: number | Triple3;
  /** Duplicate handling (see DuplicateMode). */
  duplicates?: DuplicateMode;
  /** 'gaussian' (default, reference) or 'constant' (plain average). */
  blend?: BlendMode;
  /** Gaussian sigma as a fraction of the window size (default 1/8, reference). */
  sigmaScale?: number;
  /**
   * Process windows sorted (stably) by their start on this axis (0 = D, 1 = H, 2 = W). Sorting by
   * W (axis 2) keeps the reference order, whose outer loop is W. Changes only float rounding.
   */
  sortAxis?: 0 | 1 | 2;
}

/** One window of the plan. */
export interface PlannedWindow {
  /** Start in the padded image, (d, h, w). */
  start: [number, number, number];
  /** Weight factor (the multiplicity in 'weighted' mode, else 1). */
  count: number;
}

/** A complete plan. */
export interface WindowPlan {
  window: Triple3;
  stride: [number, number, number];
  /** Padding of the image up to the window (zeros where none is needed). */
  pad: PadToWindow;
  /** Original image size (D,H,W). */
  imageSize: Triple3;
  windows: PlannedWindow[];
  /** Number of windows the reference loop runs for this image (duplicates included). */
  referenceCount: number;
  /** Importance map, C-order [D,H,W] of the window. */
  weights: Float32Array;
}

/** Build the plan for an image of `imageSize` (D,H,W). Throws a MisfmError for invalid settings. */
export function planWindows(imageSize: Triple3, o: WindowPlanOptions): WindowPlan {
  const pad = padToWindow(imageSize, o.window);
  const stride: [number, number, number] = o.stride !== undefined ? [o.stride[0], o.stride[1], o.stride[2]] : overlapToStride(o.window, o.overlap ?? 0.5);
  const all = windowStarts(pad.paddedSize, o.window, stride);
  const mode = o.duplicates ?? 'reference';
  let windows: PlannedWindow[];
  if (mode === 'reference') {
    windows = all.map((start) => ({ start, count: 1 }));
  } else if (mode === 'weighted' || mode === 'once') {
    const byKey = new Map<string, PlannedWindow>();
    windows = [];
    for (const s of all) {
      const key = s.join(',');
      const seen = byKey.get(key);
      if (seen !== undefined) { if (mode === 'weighted') seen.count++; continue; }
      const w = { start: s, count: 1 };
      byKey.set(key, w);
      windows.push(w);
    }
  } else {
    throw new MisfmError('ARGUMENT', `sliding window: duplicates must be 'reference', 'weighted' or 'once', got '${String(mode)}'`);
  }
  if (o.sortAxis !== undefined) {
    const a = o.sortAxis;
    if (a !== 0 && a !== 1 && a !== 2) throw new MisfmError('ARGUMENT', `sliding window: sortAxis must be 0, 1 or 2, got ${String(a)}`);
    // Array.prototype.sort is stable: windows with equal starts on `a` keep the reference order.
    windows = [...windows].sort((x, y) => x.start[a] - y.start[a]);
  }
  const blend = o.blend ?? 'gaussian';
  let weights: Float32Array;
  if (blend === 'gaussian') weights = gaussianImportanceMap(o.window, o.sigmaScale ?? 1 / 8);
  else if (blend === 'constant') weights = new Float32Array(o.window[0] * o.window[1] * o.window[2]).fill(1);
  else throw new MisfmError('ARGUMENT', `sliding window: blend must be 'gaussian' or 'constant', got '${String(blend)}'`);
  return { window: o.window, stride, pad, imageSize, windows, referenceCount: all.length, weights };
}
