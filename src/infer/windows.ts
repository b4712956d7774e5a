/**
 * Sliding-window geometry for 3D inference (spec 3.2): window start positions, padding of
 * images smaller than the window, and the Gaussian importance map. Pure functions on (D, H, W)
 * triples; the tensor work (running the net, accumulating) lives in the inferer.
 */
import { MisfmError, ShapeError } from '../util/errors.js';

/** (D, H, W) triple. */
export type Triple3 = readonly [number, number, number];

function checkTriple(op: string, name: string, t: readonly number[], min: number): void {
  if (t.length !== 3 || !t.every((v) => Number.isSafeInteger(v) && v >= min)) {
    throw new ShapeError(op, `${name} must be three integers >= ${min} (D,H,W), got [${t.join(',')}]`);
  }
}

/** Options for `windowStarts`. */
export interface WindowStartOptions {
  /**
   * Drop repeated starts (keeping the first occurrence, order otherwise unchanged). Default
   * false: the reference keeps duplicates, so the clamped last window is weighted twice, and
   * parity with reference outputs needs that.
   */
  dedupe?: boolean;
}

/**
 * Window start positions (d, h, w), in the reference order: W outermost, D innermost,
 *   for w in range(0, W, sw): for h in range(0, H, sh): for d in range(0, D, sd):
 *     start = (min(d, D - wd), min(h, H - wh), min(w, W - ww)).
 * The window never shrinks (the network's input size is fixed): an axis where the image is
 * smaller than the window is an error; pad first with `padToWindow`.
 */
export function windowStarts(imageSize: Triple3, windowSize: Triple3, stride: Triple3,
  options: WindowStartOptions = {}): Array<[number, number, number]> {
  checkTriple('windowStarts', 'imageSize', imageSize, 1);
  checkTriple('windowStarts', 'windowSize', windowSize, 1);
  checkTriple('windowStarts', 'stride', stride, 1);
  const [D, H, W] = imageSize;
  const [wd, wh, ww] = windowSize;
  const [sd, sh, sw] = stride;
  if (D < wd || H < wh || W < ww) {
    throw new ShapeError('windowStarts', `image [${imageSize.join(',')}] is smaller than the window [${windowSize.join(',')}] on some axis; pad it with padToWindow first`);
  }
  const starts: Array<[number, number, number]> = [];
  const seen = options.dedupe === true ? new Set<number>() : undefined;
  for (let w = 0; w < W; w += sw) {
    for (let h = 0; h < H; h += sh) {
      for (let d = 0; d < D; d += sd) {
        const s: [number, number, number] = [Math.min(d, D - wd), Math.min(h, H - wh), Math.min(w, W - ww)];
        if (seen !== undefined) {
          const key = (s[0] * H + s[1]) * W + s[2];
          if (seen.has(key)) continue;
          seen.add(key);
        }
        starts.push(s);
      }
    }
  }
  return starts;
}

/** Padding that brings an image up to at least the window size. */
export interface PadToWindow {
  /** Voxels added before the image on each axis (D, H, W). */
  before: [number, number, number];
  /** Voxels added after the image on each axis. */
  after: [number, number, number];
  /** Size after padding: max(image, window) per axis. */
  paddedSize: [number, number, number];
}

/**
 * The window shrunk to the image along each axis where the image is smaller: the smallest multiple
 * of `divisor` that covers the image, never more than the window. MONAI pads such an axis up to the
 * window instead; on a thin slab (a 20-slice series at 3 mm is 14 voxels in a 64-voxel window) the
 * network then sees mostly padding, which it never saw in training, and finds nothing.
 */
export function fitWindowToImage(imageSize: Triple3, windowSize: Triple3, divisor: number): [number, number, number] {
  checkTriple('fitWindowToImage', 'imageSize', imageSize, 1);
  checkTriple('fitWindowToImage', 'windowSize', windowSize, 1);
  if (!Number.isInteger(divisor) || divisor < 1) throw new Error(`fitWindowToImage: divisor must be a positive integer, got ${divisor}`);
  return [0, 1, 2].map((a) => Math.min(windowSize[a]!, Math.ceil(imageSize[a]! / divisor) * divisor)) as [number, number, number];
}

/**
 * Pad amounts for an image smaller than the window on some axis. Symmetric: before =
 * floor(deficit / 2), after = the rest (the odd voxel goes at the end), so the image sits in the
 * middle of the window, where the Gaussian weight is largest. Axes already large enough get 0.
 * The caller pads (e.g. with the background value), runs the windows, then crops the prediction
 * back to [before, before + imageSize) per axis.
 */
export function padToWindow(imageSize: Triple3, windowSize: Triple3): PadToWindow {
  checkTriple('padToWindow', 'imageSize', imageSize, 1);
  checkTriple('padToWindow', 'windowSize', windowSize, 1);
  const before: [number, number, number] = [0, 0, 0];
  const after: [number, number, number] = [0, 0, 0];
  const paddedSize: [number, number, number] = [0, 0, 0];
  for (let a = 0; a < 3; a++) {
    const img = imageSize[a] as number;
    const win = windowSize[a] as number;
    const deficit = Math.max(0, win - img);
    const lead = Math.floor(deficit / 2);
    before[a] = lead;
    after[a] = deficit - lead;
    paddedSize[a] = img + deficit;
  }
  return { before, after, paddedSize };
}

/**
 * Stride from a fractional overlap: floor(window * (1 - overlap)), at least 1. `overlap` in
 * [0, 1), one value or one per axis. overlap 0.5 on [64,128,128] gives [32,64,64].
 */
export function overlapToStride(windowSize: Triple3, overlap: number | Triple3): [number, number, number] {
  checkTriple('overlapToStride', 'windowSize', windowSize, 1);
  const ov = typeof overlap === 'number' ? [overlap, overlap, overlap] : overlap;
  const out: [number, number, number] = [1, 1, 1];
  for (let a = 0; a < 3; a++) {
    const o = ov[a];
    if (o === undefined || !(o >= 0 && o < 1)) {
      throw new MisfmError('ARGUMENT', `overlapToStride: overlap must be >= 0 and < 1, got ${String(o)}`);
    }
    out[a] = Math.max(1, Math.floor((windowSize[a] as number) * (1 - o)));
  }
  return out;
}

/**
 * Normalised 1-D discrete Gaussian of length n centred at n//2 with sigma = n * sigmaScale:
 * k[i] = exp(-x^2 / 2 sigma^2) / sum for |x| <= r = int(4 sigma + 0.5), x = i - n//2, else 0.
 * This equals scipy's gaussian_filter(truncate=4, mode='constant') applied to a delta.
 */
function gaussian1d(n: number, sigmaScale: number): Float64Array {
  const sigma = n * sigmaScale;
  const r = Math.floor(4 * sigma + 0.5);
  const c = Math.floor(n / 2);
  // The kernel is normalised over its full support [-r, r], including taps that fall outside
  // the array (the filter sees zeros there), so the visible values do not sum to 1.
  let sum = 0;
  for (let x = -r; x <= r; x++) sum += Math.exp((-x * x) / (2 * sigma * sigma));
  const k = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const x = i - c;
    if (Math.abs(x) <= r) k[i] = Math.exp((-x * x) / (2 * sigma * sigma)) / sum;
  }
  return k;
}

/**
 * Gaussian importance map for window `size` (D, H, W): the separable product of 1-D normalised
 * discrete Gaussians (see gaussian1d) with sigma = size * sigmaScale per axis, not rescaled, as
 * the reference's __get_gaussian_weight_map. Float32Array, C-order (W fastest).
 */
export function gaussianImportanceMap(size: Triple3, sigmaScale = 1 / 8): Float32Array {
  checkTriple('gaussianImportanceMap', 'size', size, 1);
  if (!(sigmaScale > 0 && Number.isFinite(sigmaScale))) {
    throw new MisfmError('ARGUMENT', `gaussianImportanceMap: sigmaScale must be a positive number, got ${sigmaScale}`);
  }
  const [D, H, W] = size;
  const kd = gaussian1d(D, sigmaScale);
  const kh = gaussian1d(H, sigmaScale);
  const kw = gaussian1d(W, sigmaScale);
  const out = new Float32Array(D * H * W);
  let i = 0;
  for (let d = 0; d < D; d++) {
    for (let h = 0; h < H; h++) {
      const dh = (kd[d] as number) * (kh[h] as number);
      for (let w = 0; w < W; w++) out[i++] = dh * (kw[w] as number);
    }
  }
  return out;
}
