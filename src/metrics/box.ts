/**
 * Bounding boxes and crops. Metrics only depend on the voxels near both masks, so working on the
 * bounding box grown by one background voxel is exact and makes organ-sized masks in CT-sized
 * grids cheap.
 */
import type { Box3, Shape3 } from './types.js';
import { boxShape, checkShape } from './types.js';

/**
 * Tight bounding box of the nonzero voxels of one or more masks of the same shape, or undefined
 * when all are empty.
 */
export function boundingBox(shape: Shape3, ...masks: Uint8Array[]): Box3 | undefined {
  const [D, H, W] = shape;
  let z0 = D, z1 = -1, y0 = H, y1 = -1, x0 = W, x1 = -1;
  for (const m of masks) {
    checkShape('boundingBox', shape, m.length);
    // Most rows are empty: test them 4 bytes at a time when the layout allows it.
    const words = (m.byteOffset & 3) === 0 && (W & 3) === 0 ? new Uint32Array(m.buffer, m.byteOffset, m.length >> 2) : undefined;
    const wordsPerRow = W >> 2;
    for (let z = 0; z < D; z++) {
      for (let y = 0; y < H; y++) {
        const row = (z * H + y) * W;
        if (words !== undefined) {
          let w = row >> 2;
          const wEnd = w + wordsPerRow;
          while (w < wEnd && words[w] === 0) w++;
          if (w === wEnd) continue;
        }
        let x = 0;
        while (x < W && m[row + x] === 0) x++;
        if (x === W) continue;
        if (x < x0) x0 = x;
        let xe = W - 1;
        while (m[row + xe] === 0) xe--;
        if (xe > x1) x1 = xe;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
        if (z < z0) z0 = z;
        if (z > z1) z1 = z;
      }
    }
  }
  if (z1 < 0) return undefined;
  return { z0, z1: z1 + 1, y0, y1: y1 + 1, x0, x1: x1 + 1 };
}

/** `box` grown by `margin` voxels on every side, clipped to the array. */
export function growBox(box: Box3, shape: Shape3, margin: number): Box3 {
  return {
    z0: Math.max(0, box.z0 - margin), z1: Math.min(shape[0], box.z1 + margin),
    y0: Math.max(0, box.y0 - margin), y1: Math.min(shape[1], box.y1 + margin),
    x0: Math.max(0, box.x0 - margin), x1: Math.min(shape[2], box.x1 + margin),
  };
}

export function isFullBox(box: Box3, shape: Shape3): boolean {
  return box.z0 === 0 && box.y0 === 0 && box.x0 === 0 && box.z1 === shape[0] && box.y1 === shape[1] && box.x1 === shape[2];
}

/** Copy of the voxels of `box` (C order, shape = boxShape(box)). */
export function cropMask(mask: Uint8Array, shape: Shape3, box: Box3): Uint8Array {
  const [, H, W] = shape;
  const [bd, bh, bw] = boxShape(box);
  const out = new Uint8Array(bd * bh * bw);
  let j = 0;
  for (let z = box.z0; z < box.z1; z++) {
    for (let y = box.y0; y < box.y1; y++, j += bw) {
      const row = (z * H + y) * W;
      out.set(mask.subarray(row + box.x0, row + box.x1), j);
    }
  }
  return out;
}
