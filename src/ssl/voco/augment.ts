/**
 * VoCo's per-crop augmentation (spec 1.2, TPAMI VoCoAugmentation(aug=True)), applied to every crop
 * independently after its position label is fixed (labels are not adjusted, spec 10.1):
 * flips along each axis with p 0.2, a rotation by k·90° (k uniform in 1..3) in the H-W plane
 * (MONAI's X-Y plane) with p 0.2, and an intensity offset U(−0.1, 0.1) with p 0.5 (TPAMI; CVPR 0.1).
 */
import type { Rng } from '../../util/rng.js';

export interface CropAugment { flipP: number; rotP: number; shiftP: number; shiftOffset: number }

export const TPAMI_AUGMENT: CropAugment = { flipP: 0.2, rotP: 0.2, shiftP: 0.5, shiftOffset: 0.1 };
export const CVPR_AUGMENT: CropAugment = { flipP: 0.2, rotP: 0.2, shiftP: 0.1, shiftOffset: 0.1 };

function flip(src: Float32Array, d: number, h: number, w: number, axis: 0 | 1 | 2): Float32Array {
  const out = new Float32Array(src.length);
  for (let z = 0; z < d; z++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const zz = axis === 0 ? d - 1 - z : z, yy = axis === 1 ? h - 1 - y : y, xx = axis === 2 ? w - 1 - x : x;
    out[(z * h + y) * w + x] = src[(zz * h + yy) * w + xx]!;
  }
  return out;
}

/** k quarter turns in the H-W plane of a (d, s, s) crop. */
export function rot90HW(src: Float32Array, d: number, s: number, k: number): Float32Array {
  let cur = src;
  for (let t = 0; t < ((k % 4) + 4) % 4; t++) {
    const out = new Float32Array(cur.length);
    for (let z = 0; z < d; z++) for (let y = 0; y < s; y++) for (let x = 0; x < s; x++) {
      // out[y][x] = in[x][s-1-y]  (one counter-clockwise quarter turn)
      out[(z * s + y) * s + x] = cur[(z * s + x) * s + (s - 1 - y)]!;
    }
    cur = out;
  }
  return cur;
}

/** Augment one (d, s, s) crop; returns a new array (or the input when nothing fired). */
export function augmentCrop(crop: Float32Array, d: number, s: number, rng: Rng, a: CropAugment): Float32Array {
  let out = crop;
  // MONAI order: RandFlipd on X, Y, Z (misfm W, H, D), RandRotate90d, RandShiftIntensityd.
  for (const axis of [2, 1, 0] as const) if (rng.uniform() < a.flipP) out = flip(out, d, s, s, axis);
  if (rng.uniform() < a.rotP) out = rot90HW(out, d, s, rng.randint(1, 3));
  if (rng.uniform() < a.shiftP) {
    const off = rng.uniform(-a.shiftOffset, a.shiftOffset);
    if (out === crop) out = Float32Array.from(crop);
    for (let i = 0; i < out.length; i++) out[i]! += off;
  }
  return out;
}
