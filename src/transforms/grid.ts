/**
 * Shared helpers for the transforms: the geometry part of a Volume, typed-array allocation of the
 * same voxel type, argument checks, and conversion between (x,y,z) sizes and PyMIC's [D,H,W].
 *
 * Convention used by every transform here: sizes, boxes and axis flags are in the Volume's
 * (x, y, z) voxel order. Patch sizes in PyMIC configs are [D, H, W] = (z, y, x): convert with
 * xyzFromDHW.
 */
import type { Mat3, Vec3, Volume, VoxelArray } from '../io/volume.js';
import { voxelToWorld } from '../io/volume.js';
import { MisfmError } from '../util/errors.js';

/** The grid of a Volume without its voxels: size, spacing, origin, direction (LPS). */
export interface Geometry {
  size: Vec3;
  spacing: Vec3;
  origin: Vec3;
  direction: Mat3;
}

/** A copy of a volume's geometry (fresh arrays, safe to keep while the volume changes). */
export function geometryOf(v: Geometry): Geometry {
  return { size: [...v.size], spacing: [...v.spacing], origin: [...v.origin], direction: [...v.direction] };
}

/** A Volume with the given voxels on a copy of `g`. */
export function withGeometry(data: VoxelArray, g: Geometry): Volume {
  return { data, ...geometryOf(g) };
}

/** A zeroed array of the same voxel type as `like`, with n elements. */
export function allocLike(like: VoxelArray, n: number): VoxelArray {
  if (like instanceof Float32Array) return new Float32Array(n);
  if (like instanceof Float64Array) return new Float64Array(n);
  if (like instanceof Int32Array) return new Int32Array(n);
  if (like instanceof Uint32Array) return new Uint32Array(n);
  if (like instanceof Int16Array) return new Int16Array(n);
  if (like instanceof Uint16Array) return new Uint16Array(n);
  if (like instanceof Int8Array) return new Int8Array(n);
  return new Uint8Array(n);
}

/** True for Float32Array / Float64Array voxels. */
export function isFloatData(d: VoxelArray): d is Float32Array | Float64Array {
  return d instanceof Float32Array || d instanceof Float64Array;
}

/** (x,y,z) from a PyMIC-style [D,H,W]. */
export function xyzFromDHW(dhw: readonly [number, number, number]): Vec3 {
  return [dhw[2], dhw[1], dhw[0]];
}

/** PyMIC-style [D,H,W] from an (x,y,z) triple. */
export function dhwFromXyz(xyz: readonly [number, number, number]): Vec3 {
  return [xyz[2], xyz[1], xyz[0]];
}

/** Throw unless v.data holds exactly size[0]*size[1]*size[2] voxels. */
export function checkVolume(op: string, v: Volume, what = 'volume'): void {
  const ok = v.size.length === 3 && v.size.every((s) => Number.isInteger(s) && s >= 1);
  if (!ok) throw new MisfmError('ARGUMENT', `${op}: ${what} size must be three positive integers, got [${v.size.join(',')}]`);
  const n = v.size[0] * v.size[1] * v.size[2];
  if (v.data.length !== n) {
    throw new MisfmError('ARGUMENT', `${op}: ${what} has ${v.data.length} voxels but its size ${v.size.join('x')} needs ${n}`);
  }
}

/** Throw unless image and label share size (the transforms move their voxels together). */
export function checkPair(op: string, image: Volume, label: Volume | undefined): void {
  checkVolume(op, image, 'image');
  if (label === undefined) return;
  checkVolume(op, label, 'label');
  if (label.size.some((s, i) => s !== image.size[i])) {
    throw new MisfmError('GEOMETRY', `${op}: label size ${label.size.join('x')} differs from image size ${image.size.join('x')}`);
  }
}

/** Throw unless t is three positive integers (a size). */
export function checkSize(op: string, t: readonly number[], what: string, allowZero = false): Vec3 {
  if (t.length !== 3 || !t.every((s) => Number.isInteger(s) && (allowZero ? s >= 0 : s >= 1))) {
    throw new MisfmError('ARGUMENT', `${op}: ${what} must be three ${allowZero ? 'non-negative' : 'positive'} integers (x,y,z), got [${t.join(',')}]`);
  }
  return [t[0]!, t[1]!, t[2]!];
}

/** Throw unless t is three finite positive numbers (a spacing). */
export function checkSpacing(op: string, t: readonly number[], what = 'spacing'): Vec3 {
  if (t.length !== 3 || !t.every((s) => Number.isFinite(s) && s > 0)) {
    throw new MisfmError('ARGUMENT', `${op}: ${what} must be three positive numbers (x,y,z) in mm, got [${t.join(',')}]`);
  }
  return [t[0]!, t[1]!, t[2]!];
}

/** Throw unless p is a probability. */
export function checkProb(op: string, p: number, what = 'p'): void {
  if (!(p >= 0 && p <= 1)) throw new MisfmError('ARGUMENT', `${op}: ${what} must be in [0, 1], got ${p}`);
}

/** World position of voxel `start` of `v`: the origin of a sub-grid that begins there. */
export function originAt(v: Pick<Volume, 'origin' | 'spacing' | 'direction'>, start: Vec3): Vec3 {
  return voxelToWorld(v, start);
}
