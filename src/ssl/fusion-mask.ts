/**
 * Volume Fusion (VolF) sample generation: the discrete fusion-level map, the fusion itself, and
 * the choice of foreground partner inside a batch. Pure TypeScript on flat arrays in (D, H, W)
 * C-order (W fastest), so it runs in data-loader workers without the tensor engine.
 *
 * Default mode 'blocks' is the batch-level PyMIC algorithm that matches the MIS-FM paper
 * (spec 2.1); mode 'grid' is the later regular-grid variant (PyMIC >= v0.5.0, spec 2.1 bullets).
 * Random draws are made in the reference order, so a Python `random`-driven port with the same
 * stream would produce the same map.
 */
import { MisfmError } from '../util/errors.js';
import type { Rng } from '../util/rng.js';

/** (D, H, W) triple. */
export type Triple = readonly [number, number, number];

/** The random draws fusion needs; an `Rng` fits, and tests can script the draws. */
export type FusionRandom = Pick<Rng, 'randint' | 'shuffle'>;

/** Options shared by both modes. */
interface FusionCommon {
  /** K: number of non-zero fusion levels; the map holds 0..K and alpha = level / K. Default 4. */
  levels?: number;
}

/** Random overlapping blocks (the 2024 batch-level algorithm, the paper's version). */
export interface FusionBlocksOptions extends FusionCommon {
  mode?: 'blocks';
  /** [min, max] number of blocks M, inclusive. Default [10, 40]. */
  blockCount?: readonly [number, number];
  /** Smallest full block size per axis, inclusive. Default [8, 8, 8]. */
  sizeMin?: Triple;
  /** Largest full block size per axis, inclusive. Default [40, 80, 80]. */
  sizeMax?: Triple;
}

/** Regular grid of equal blocks, a fixed share of them foreground (the later journal version). */
export interface FusionGridOptions extends FusionCommon {
  mode: 'grid';
  /** Smallest block size per axis, inclusive. Default [5, 8, 8]. */
  sizeMin?: Triple;
  /** Largest block size per axis, inclusive. Default [20, 32, 32]. */
  sizeMax?: Triple;
  /** Share of grid cells that get a non-zero level: int(nBlocks * ratio) cells. Default 0.7. */
  foregroundRatio?: number;
}

export type FusionMaskOptions = FusionBlocksOptions | FusionGridOptions;

export const FUSION_DEFAULTS = {
  levels: 4,
  blockCount: [10, 40] as const,
  blocksSizeMin: [8, 8, 8] as const,
  blocksSizeMax: [40, 80, 80] as const,
  gridSizeMin: [5, 8, 8] as const,
  gridSizeMax: [20, 32, 32] as const,
  foregroundRatio: 0.7,
};

function argError(message: string): MisfmError {
  return new MisfmError('ARGUMENT', `fusionLevelMap: ${message}`);
}

function checkShape(shape: Triple): void {
  if (shape.length !== 3 || !shape.every((v) => Number.isSafeInteger(v) && v > 0)) {
    throw argError(`crop size must be three positive integers (D,H,W), got [${shape.join(',')}]`);
  }
}

function checkSizes(sizeMin: Triple, sizeMax: Triple): void {
  for (let a = 0; a < 3; a++) {
    const lo = sizeMin[a];
    const hi = sizeMax[a];
    if (lo === undefined || hi === undefined || !Number.isSafeInteger(lo) || !Number.isSafeInteger(hi) || lo < 1 || hi < lo) {
      throw argError(`block sizes need 1 <= sizeMin <= sizeMax per axis, got sizeMin [${sizeMin.join(',')}], sizeMax [${sizeMax.join(',')}]`);
    }
  }
}

function checkLevels(k: number): void {
  if (!Number.isSafeInteger(k) || k < 1 || k > 255) throw argError(`levels (K) must be an integer in 1..255, got ${k}`);
}

/** Fill the box [d0,d1) x [h0,h1) x [w0,w1) of a (D,H,W) map with `value`. */
function fillBox(map: Uint8Array, H: number, W: number,
  d0: number, d1: number, h0: number, h1: number, w0: number, w1: number, value: number): void {
  for (let d = d0; d < d1; d++) {
    for (let h = h0; h < h1; h++) {
      const row = (d * H + h) * W;
      map.fill(value, row + w0, row + w1);
    }
  }
}

/**
 * Generate one discrete fusion-level map for a crop of size `shape` = (D, H, W).
 *
 * mode 'blocks' (default), per spec 2.1: M ~ randint(blockCount); for each block draw the full
 * size (d, h, w) ~ randint(sizeMin, sizeMax) per axis, the centre (dc, hc, wc) ~ randint(0, D-1)
 * etc., start = c - size//2, end = min(D, start + size) computed before clamping start to 0,
 * then value ~ randint(1, K); later blocks overwrite earlier ones.
 *
 * mode 'grid': one block size per sample ~ randint(sizeMin, sizeMax), grid offset ~ randint(0,
 * D % db) per axis, int(nBlocks * foregroundRatio) cells chosen by shuffling, each filled with
 * randint(1, K) in (d, h, w) cell order. Cells past the last whole block stay 0.
 *
 * Returns a Uint8Array of D*H*W levels in 0..K, C-order (W fastest).
 */
export function fusionLevelMap(shape: Triple, rng: FusionRandom, options: FusionMaskOptions = {}): Uint8Array {
  checkShape(shape);
  const K = options.levels ?? FUSION_DEFAULTS.levels;
  checkLevels(K);
  return options.mode === 'grid' ? gridMap(shape, rng, K, options) : blocksMap(shape, rng, K, options);
}

function blocksMap(shape: Triple, rng: FusionRandom, K: number, options: FusionBlocksOptions): Uint8Array {
  const [D, H, W] = shape;
  const [mLo, mHi] = options.blockCount ?? FUSION_DEFAULTS.blockCount;
  if (!Number.isSafeInteger(mLo) || !Number.isSafeInteger(mHi) || mLo < 0 || mHi < mLo) {
    throw argError(`blockCount must be integers 0 <= min <= max, got [${mLo},${mHi}]`);
  }
  const sizeMin = options.sizeMin ?? FUSION_DEFAULTS.blocksSizeMin;
  const sizeMax = options.sizeMax ?? FUSION_DEFAULTS.blocksSizeMax;
  checkSizes(sizeMin, sizeMax);
  const map = new Uint8Array(D * H * W);
  const M = rng.randint(mLo, mHi);
  for (let i = 0; i < M; i++) {
    const sd = rng.randint(sizeMin[0], sizeMax[0]);
    const sh = rng.randint(sizeMin[1], sizeMax[1]);
    const sw = rng.randint(sizeMin[2], sizeMax[2]);
    const dc = rng.randint(0, D - 1);
    const hc = rng.randint(0, H - 1);
    const wc = rng.randint(0, W - 1);
    const d0 = dc - Math.floor(sd / 2);
    const h0 = hc - Math.floor(sh / 2);
    const w0 = wc - Math.floor(sw / 2);
    // End is computed from the unclamped start: a block hanging over the front border loses
    // those voxels rather than being shifted inward (reference behaviour).
    const d1 = Math.min(D, d0 + sd);
    const h1 = Math.min(H, h0 + sh);
    const w1 = Math.min(W, w0 + sw);
    const value = rng.randint(1, K);
    fillBox(map, H, W, Math.max(0, d0), d1, Math.max(0, h0), h1, Math.max(0, w0), w1, value);
  }
  return map;
}

function gridMap(shape: Triple, rng: FusionRandom, K: number, options: FusionGridOptions): Uint8Array {
  const [D, H, W] = shape;
  const sizeMin = options.sizeMin ?? FUSION_DEFAULTS.gridSizeMin;
  const sizeMax = options.sizeMax ?? FUSION_DEFAULTS.gridSizeMax;
  checkSizes(sizeMin, sizeMax);
  const ratio = options.foregroundRatio ?? FUSION_DEFAULTS.foregroundRatio;
  if (!(ratio >= 0 && ratio <= 1)) throw argError(`foregroundRatio must be in [0, 1], got ${ratio}`);
  const db = rng.randint(sizeMin[0], sizeMax[0]);
  const hb = rng.randint(sizeMin[1], sizeMax[1]);
  const wb = rng.randint(sizeMin[2], sizeMax[2]);
  const dOff = rng.randint(0, D % db);
  const hOff = rng.randint(0, H % hb);
  const wOff = rng.randint(0, W % wb);
  const dn = Math.floor(D / db);
  const hn = Math.floor(H / hb);
  const wn = Math.floor(W / wb);
  const nBlocks = dn * hn * wn;
  const nFg = Math.floor(nBlocks * ratio);
  const isFg = new Uint8Array(nBlocks);
  isFg.fill(1, 0, nFg);
  rng.shuffle(isFg);
  const map = new Uint8Array(D * H * W);
  for (let d = 0; d < dn; d++) {
    for (let h = 0; h < hn; h++) {
      for (let w = 0; w < wn; w++) {
        if (isFg[(d * hn + h) * wn + w] === 0) continue;
        const d0 = d * db + dOff;
        const h0 = h * hb + hOff;
        const w0 = w * wb + wOff;
        fillBox(map, H, W, d0, d0 + db, h0, h0 + hb, w0, w0 + wb, rng.randint(1, K));
      }
    }
  }
  return map;
}

/**
 * Fuse a background and a foreground crop with a level map: alpha = level / K and
 * out = alpha * fg + (1 - alpha) * bg.
 *
 * Exact definition (float32 arithmetic with a rounding after every operation, as PyTorch does on
 * float32 tensors): a = f32(level / K); out = f32(f32(a * fg) + f32(f32(1 - a) * bg)). Hence
 * level 0 gives bg and level K gives fg bit for bit. Writes into `out` when given (it may alias
 * `bg` or `fg`) and returns it.
 */
export function fuse(bg: Float32Array, fg: Float32Array, levels: Uint8Array, K: number, out?: Float32Array): Float32Array {
  checkLevels(K);
  const n = levels.length;
  if (bg.length !== n || fg.length !== n || (out !== undefined && out.length !== n)) {
    throw new MisfmError('ARGUMENT', `fuse: bg (${bg.length}), fg (${fg.length}), levels (${n})${out !== undefined ? ` and out (${out.length})` : ''} must have equal lengths`);
  }
  // Per-level coefficients once, so the inner loop is two multiplies and an add.
  const a = new Float32Array(K + 1);
  const b = new Float32Array(K + 1);
  for (let k = 0; k <= K; k++) {
    a[k] = Math.fround(k / K);
    b[k] = Math.fround(1 - (a[k] as number));
  }
  const dst = out ?? new Float32Array(n);
  const f = Math.fround;
  for (let i = 0; i < n; i++) {
    const k = levels[i] as number;
    if (k > K) throw new MisfmError('ARGUMENT', `fuse: level ${k} at index ${i} exceeds K=${K}`);
    dst[i] = f(f((a[k] as number) * (fg[i] as number)) + f((b[k] as number) * (bg[i] as number)));
  }
  return dst;
}

/** How the samples of one batch are paired: see `pairForeground`. */
export interface ForegroundPairing {
  /** partner[n] = batch index whose crop is the foreground of sample n: (n - 1 + N) % N. */
  partner: number[];
  /**
   * Batch indices n whose cyclic partner is the same scan (always so when N == 1): the caller
   * must draw a crop of a different scan as their foreground, or the sample would fuse a volume
   * with itself.
   */
  needsDifferentScan: number[];
}

/**
 * Pick foreground partners for a batch whose samples come from scans `scanIds` (any comparable
 * id, one per sample): the previous sample cyclically, as the reference's torch.roll(x, 1, 0).
 */
export function pairForeground(scanIds: readonly (string | number)[]): ForegroundPairing {
  const N = scanIds.length;
  if (N === 0) throw new MisfmError('ARGUMENT', 'pairForeground: empty batch');
  const partner: number[] = [];
  const needsDifferentScan: number[] = [];
  for (let n = 0; n < N; n++) {
    const p = (n - 1 + N) % N;
    partner.push(p);
    if (scanIds[p] === scanIds[n]) needsDifferentScan.push(n);
  }
  return { partner, needsDifferentScan };
}

/**
 * Draw a scan index in [0, scanCount) different from `exclude`, uniformly over the others.
 * For foreground partners flagged by `pairForeground`.
 */
export function drawDifferentScan(rng: FusionRandom, scanCount: number, exclude: number): number {
  if (!Number.isSafeInteger(scanCount) || scanCount < 2) {
    throw new MisfmError('DATA', `Volume Fusion needs at least 2 scans to fuse different volumes, got ${scanCount}`);
  }
  if (!Number.isSafeInteger(exclude) || exclude < 0 || exclude >= scanCount) {
    throw new MisfmError('ARGUMENT', `drawDifferentScan: exclude must be in [0, ${scanCount}), got ${exclude}`);
  }
  const r = rng.randint(0, scanCount - 2);
  return r >= exclude ? r + 1 : r;
}
