/**
 * Model Genesis (Zhou et al., Medical Image Analysis 2021) as PyMIC chains its transforms in
 * PyMIC_examples seg_self_sup/lung/config/luna_pretrain/unet3d_genesis.cfg:
 *   LocalShuffling -> NonLinearTransform -> InOutPainting, label = the crop before them
 * (SelfReconstructionLabel); the network restores the crop through tanh with an L1 loss.
 *
 * - Local shuffling (p): randint(blockCount) blocks at random corners; each block's voxels are
 *   read from the uncorrupted crop and written back in a random permutation.
 * - Non-linear transform (p): the crop is min-max normalised to [0, 1]; `blocks` random blocks
 *   (read from the normalised crop before any of them changed) are each mapped through their own
 *   cubic Bezier curve through (0,0), two random control points and (1,1), sampled at 10000 points
 *   and applied by linear interpolation; with probability 1/2 only the x samples are sorted (the
 *   curve is traversed backwards, an intensity inversion), else both; then back to the crop's
 *   range. PyMIC draws `for n in range(lo, hi)`: hi − lo blocks, not randint(lo, hi) — the
 *   config takes that count. blocks = 0 maps the whole crop through one curve.
 * - In-/out-painting (p): with probability inP, randint(inBlockCount) blocks at corners
 *   randint(3, S − size − 3) are filled with uniform noise in [-1, 1); otherwise the crop is
 *   replaced by uniform noise in [-1, 1) except randint(outBlockCount) blocks of size
 *   crop − outMargin, which keep the input.
 * Noise in [-1, 1) assumes the CT window normalisation (the reference's).
 *
 * misfm's one deviation: the non-linear transform rewrites only the voxels of its blocks; PyMIC
 * re-scales the whole crop, which changes the others by float rounding only.
 */
import type { GenesisConfig } from '../config/types.js';
import type { Rng } from '../util/rng.js';
import { blockIndices, checkFits, randomCorner, readBlock, writeBlock, type Triple3 } from './blocks.js';
import { reconstructionMethod, type Corrupted } from './reconstruction.js';

/** Samples of the Bezier curve (PyMIC's bezier_curve(points, nTimes=10000)). */
export const BEZIER_SAMPLES = 10_000;

/** Local pixel shuffling of `crop` (not modified). */
export function localShuffle(crop: Float32Array, shape: Triple3, rng: Rng, o: GenesisConfig['localShuffle']): Float32Array {
  checkFits('ssl.genesis.localShuffle.blockSize', shape, o.blockSize);
  const out = Float32Array.from(crop);
  const n = rng.randint(o.blockCount[0], o.blockCount[1]);
  for (let i = 0; i < n; i++) {
    const at = randomCorner(rng, shape, o.blockSize);
    writeBlock(out, shape, at, o.blockSize, rng.shuffle(readBlock(crop, shape, at, o.blockSize)));
  }
  return out;
}

/**
 * The x and y samples of the cubic Bezier curve through (0,0), p1, p2, (1,1) with PyMIC's index
 * convention: point i has weight C(3,i)·t^(3−i)·(1−t)^i, t = linspace(0, 1, n) (so t = 0 is (1,1)).
 */
export function bezierCurve(p1: readonly [number, number], p2: readonly [number, number], n = BEZIER_SAMPLES): { x: Float64Array; y: Float64Array } {
  const px = [0, p1[0], p2[0], 1], py = [0, p1[1], p2[1], 1];
  const x = new Float64Array(n), y = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const t = n === 1 ? 0 : k / (n - 1), s = 1 - t;
    const b = [t * t * t, 3 * t * t * s, 3 * t * s * s, s * s * s];
    x[k] = px[0]! * b[0]! + px[1]! * b[1]! + px[2]! * b[2]! + px[3]! * b[3]!;
    y[k] = py[0]! * b[0]! + py[1]! * b[1]! + py[2]! * b[2]! + py[3]! * b[3]!;
  }
  return { x, y };
}

/** numpy.interp: piecewise-linear through (xs, ys) (xs ascending), clamped to the end values. */
export function interp(v: number, xs: Float64Array, ys: Float64Array): number {
  const n = xs.length;
  if (!(v > xs[0]!)) return ys[0]!;
  if (v >= xs[n - 1]!) return ys[n - 1]!;
  let lo = 0, hi = n - 1; // xs[lo] < v <= xs[hi]
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (xs[mid]! < v) lo = mid; else hi = mid;
  }
  const dx = xs[hi]! - xs[lo]!;
  return dx > 0 ? ys[lo]! + ((v - xs[lo]!) * (ys[hi]! - ys[lo]!)) / dx : ys[hi]!;
}

/** One random monotone-or-inverting intensity curve on [0, 1] (PyMIC apply_nonlinear_transform's draws). */
export function randomCurve(rng: Rng): (v: number) => number {
  const p1: [number, number] = [rng.uniform(), rng.uniform()], p2: [number, number] = [rng.uniform(), rng.uniform()];
  const { x, y } = bezierCurve(p1, p2);
  const flip = rng.uniform() < 0.5;
  x.sort();
  if (!flip) y.sort();
  return (v) => interp(v, x, y);
}

/** The non-linear intensity transform, in place on `img` (applied with probability p). */
export function nonLinear(img: Float32Array, shape: Triple3, rng: Rng, o: GenesisConfig['nonLinear']): void {
  if (rng.uniform() > o.p) return;
  let lo = Infinity, hi = -Infinity;
  for (const v of img) { if (v < lo) lo = v; if (v > hi) hi = v; }
  if (!(lo < hi)) return;
  const range = hi - lo;
  const map = (idx: ArrayLike<number>, src: Float32Array, curve: (v: number) => number): void => {
    for (let i = 0; i < idx.length; i++) { const j = idx[i]!; img[j] = curve((src[j]! - lo) / range) * range + lo; }
  };
  if (o.blocks === 0) {
    const all = Uint32Array.from({ length: img.length }, (_, i) => i);
    map(all, Float32Array.from(img), randomCurve(rng));
    return;
  }
  checkFits('ssl.genesis.nonLinear.blockSize', shape, o.blockSize);
  const src = Float32Array.from(img);
  for (let n = 0; n < o.blocks; n++) {
    const at = randomCorner(rng, shape, o.blockSize);
    map(blockIndices(shape, at, o.blockSize), src, randomCurve(rng));
  }
}

/** In-painting or out-painting (applied with probability p); returns the result (may be `img` itself). */
export function inOutPaint(img: Float32Array, shape: Triple3, rng: Rng, o: GenesisConfig['inOutPaint']): Float32Array {
  if (rng.uniform() > o.p) return img;
  if (rng.uniform() < o.inP) {
    checkFits('ssl.genesis.inOutPaint.inBlockSize', shape, o.inBlockSize, 3);
    const n = rng.randint(o.inBlockCount[0], o.inBlockCount[1]);
    const size = o.inBlockSize, vox = size[0] * size[1] * size[2];
    for (let i = 0; i < n; i++) {
      const at = randomCorner(rng, shape, size, 3);
      const noise = new Float32Array(vox);
      for (let k = 0; k < vox; k++) noise[k] = rng.uniform() * 2 - 1;
      writeBlock(img, shape, at, size, noise);
    }
    return img;
  }
  const size: [number, number, number] = [shape[0] - o.outMargin[0], shape[1] - o.outMargin[1], shape[2] - o.outMargin[2]];
  if (size.some((s) => s < 1)) checkFits('ssl.genesis.inOutPaint.outMargin', shape, o.outMargin);
  checkFits('ssl.genesis.inOutPaint.outMargin', shape, size, 3);
  const out = new Float32Array(img.length);
  for (let k = 0; k < out.length; k++) out[k] = rng.uniform() * 2 - 1;
  const n = rng.randint(o.outBlockCount[0], o.outBlockCount[1]);
  for (let i = 0; i < n; i++) {
    const at = randomCorner(rng, shape, size, 3);
    writeBlock(out, shape, at, size, readBlock(img, shape, at, size));
  }
  return out;
}

/** The whole Model Genesis corruption of `crop` (not modified). */
export function genesisCorrupt(crop: Float32Array, shape: Triple3, rng: Rng, o: GenesisConfig): Float32Array {
  const shuffled = rng.uniform() > o.localShuffle.p ? Float32Array.from(crop) : localShuffle(crop, shape, rng, o.localShuffle);
  nonLinear(shuffled, shape, rng, o.nonLinear);
  return inOutPaint(shuffled, shape, rng, o.inOutPaint);
}

export const genesisMethod = reconstructionMethod('genesis',
  'Model Genesis: restore a crop after local shuffling, a non-linear intensity curve and in-/out-painting',
  'Zhou et al., MedIA 2021; PyMIC LocalShuffling, NonLinearTransform, InOutPainting + SelfSupModelGenesis (MAE, tanh)',
  (cfg) => ({
    activation: 'tanh',
    corrupt: (crop, shape, rng): Corrupted => ({ image: genesisCorrupt(crop, shape, rng, cfg.ssl.genesis) }),
  }));
