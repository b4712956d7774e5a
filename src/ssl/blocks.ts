/**
 * Box helpers for the corruptions of the reconstruction pretext methods: read, write and place
 * axis-aligned blocks in a flat (D, H, W) C-order array (W fastest).
 */
import { ConfigError } from '../util/errors.js';
import type { Rng } from '../util/rng.js';

export type Triple3 = readonly [number, number, number];

/** A copy of the block of `size` at corner `at`. */
export function readBlock(src: Float32Array, shape: Triple3, at: Triple3, size: Triple3): Float32Array {
  const [, H, W] = shape;
  const out = new Float32Array(size[0] * size[1] * size[2]);
  let o = 0;
  for (let d = 0; d < size[0]; d++) {
    for (let h = 0; h < size[1]; h++) {
      const row = ((at[0] + d) * H + at[1] + h) * W + at[2];
      out.set(src.subarray(row, row + size[2]), o);
      o += size[2];
    }
  }
  return out;
}

/** Write `data` (a block of `size`, C-order) into `dst` at corner `at`. */
export function writeBlock(dst: Float32Array, shape: Triple3, at: Triple3, size: Triple3, data: Float32Array): void {
  const [, H, W] = shape;
  let o = 0;
  for (let d = 0; d < size[0]; d++) {
    for (let h = 0; h < size[1]; h++) {
      const row = ((at[0] + d) * H + at[1] + h) * W + at[2];
      dst.set(data.subarray(o, o + size[2]), row);
      o += size[2];
    }
  }
}

/** Flat indices of the voxels of a block, in C order. */
export function blockIndices(shape: Triple3, at: Triple3, size: Triple3): Uint32Array {
  const [, H, W] = shape;
  const out = new Uint32Array(size[0] * size[1] * size[2]);
  let o = 0;
  for (let d = 0; d < size[0]; d++) for (let h = 0; h < size[1]; h++) for (let w = 0; w < size[2]; w++) out[o++] = ((at[0] + d) * H + at[1] + h) * W + at[2] + w;
  return out;
}

/** Check that blocks of `size` fit in `shape` with `margin` voxels kept free on both sides (ConfigError on `key`). */
export function checkFits(key: string, shape: Triple3, size: Triple3, margin = 0): void {
  for (let a = 0; a < 3; a++) {
    if (shape[a]! - size[a]! - 2 * margin < 0) {
      throw new ConfigError(key, `blocks of [${size.join(',')}]${margin > 0 ? ` with a margin of ${margin}` : ''} do not fit the crop [${shape.join(',')}] (data.patchSize)`);
    }
  }
}

/** A random corner: randint(margin, S − size − margin) per axis, in (D, H, W) order (PyMIC's draws). */
export function randomCorner(rng: Rng, shape: Triple3, size: Triple3, margin = 0): [number, number, number] {
  return [0, 1, 2].map((a) => rng.randint(margin, shape[a]! - size[a]! - margin)) as [number, number, number];
}

/** Whether two blocks of the same size overlap. */
export function overlaps(a: Triple3, b: Triple3, size: Triple3): boolean {
  return [0, 1, 2].every((i) => Math.abs(a[i]! - b[i]!) < size[i]!);
}
