/**
 * Brush and eraser footprints: the voxel indices a stroke covers. A stroke is a list of centres
 * (voxel indices), painted as discs in one slice plane (the view the user drew on) or as balls.
 */
import type { Vec3 } from '../io/volume.js';
import { MisfmError } from '../util/errors.js';

/** 'ball': 3D; 'x' | 'y' | 'z': a disc in the plane where that voxel axis is constant (z = axial). */
export type BrushShape = 'ball' | 'x' | 'y' | 'z';

/** Sorted, unique voxel indices (x-fastest) within `radius` voxels of any centre, clipped to the grid. */
export function strokeVoxels(size: Vec3, centres: readonly Vec3[], radius: number, shape: BrushShape): Uint32Array {
  if (!(Number.isFinite(radius) && radius >= 0 && radius <= 64)) throw new MisfmError('ARGUMENT', `brush radius must be 0..64 voxels, got ${radius}`);
  const r = Math.floor(radius);
  const fixed = shape === 'x' ? 0 : shape === 'y' ? 1 : shape === 'z' ? 2 : -1;
  const out = new Set<number>();
  for (const c of centres) {
    const ci = c.map((v) => Math.round(v));
    for (let dz = -r; dz <= r; dz++) for (let dy = -r; dy <= r; dy++) for (let dx = -r; dx <= r; dx++) {
      const d = [dx, dy, dz];
      if (fixed >= 0 && d[fixed] !== 0) continue;
      if (dx * dx + dy * dy + dz * dz > radius * radius) continue;
      const x = ci[0]! + dx, y = ci[1]! + dy, z = ci[2]! + dz;
      if (x < 0 || y < 0 || z < 0 || x >= size[0] || y >= size[1] || z >= size[2]) continue;
      out.add(x + size[0] * (y + size[1] * z));
    }
  }
  return Uint32Array.from([...out].sort((a, b) => a - b));
}
