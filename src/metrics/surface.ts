/**
 * Surface (edge) voxels of a binary mask, as PyMIC defines them:
 * `edge = mask - binary_erosion(mask, generate_binary_structure(3, 1))` with scipy's default
 * border_value 0. A foreground voxel is an edge voxel when any of its 6 face neighbours is
 * background or lies outside the array, so foreground on the array border is always edge.
 */
import type { Shape3 } from './types.js';
import { checkShape } from './types.js';

/** Edge mask (0/1) of a C-order binary mask of shape (D,H,W); nonzero input voxels are foreground. */
export function surfaceOf(mask: Uint8Array, shape: Shape3, out?: Uint8Array): Uint8Array {
  checkShape('surfaceOf', shape, mask.length);
  const [D, H, W] = shape;
  const edge = out ?? new Uint8Array(mask.length);
  if (edge.length !== mask.length) checkShape('surfaceOf (output)', shape, edge.length);
  const sliceStride = H * W;
  let i = 0;
  for (let z = 0; z < D; z++) {
    const zBorder = z === 0 || z === D - 1;
    for (let y = 0; y < H; y++) {
      const yBorder = zBorder || y === 0 || y === H - 1;
      for (let x = 0; x < W; x++, i++) {
        if (mask[i] === 0) { edge[i] = 0; continue; }
        const isEdge = yBorder || x === 0 || x === W - 1 ||
          mask[i - 1] === 0 || mask[i + 1] === 0 ||
          mask[i - W] === 0 || mask[i + W] === 0 ||
          mask[i - sliceStride] === 0 || mask[i + sliceStride] === 0;
        edge[i] = isEdge ? 1 : 0;
      }
    }
  }
  return edge;
}

/** Number of nonzero entries. */
export function countNonzero(mask: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i] !== 0) n++;
  return n;
}
