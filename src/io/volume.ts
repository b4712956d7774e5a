/**
 * A 3D medical image with its physical geometry, in ITK's LPS world convention.
 *
 * Voxel data is stored x-fastest (ITK / NIfTI order): index i + size[0]*(j + size[1]*k). Seen as
 * a tensor that is shape (D,H,W) = (size[2], size[1], size[0]) in C order, with no copy.
 * `spacing`, `origin` and `size` are in (x,y,z) order; `direction` is the 3x3 row-major matrix
 * whose column c is the world direction of voxel axis c, so
 *   world = origin + direction * diag(spacing) * [i,j,k]^T
 */
export type VoxelArray = Float32Array | Float64Array | Int32Array | Uint32Array | Int16Array | Uint16Array | Int8Array | Uint8Array;

export type Vec3 = [number, number, number];
/** Row-major 3x3. */
export type Mat3 = [number, number, number, number, number, number, number, number, number];

export interface Volume {
  data: VoxelArray;
  /** (x, y, z) voxel counts. */
  size: Vec3;
  /** (x, y, z) in mm. */
  spacing: Vec3;
  /** World (LPS, mm) position of voxel (0,0,0). */
  origin: Vec3;
  direction: Mat3;
}

export const IDENTITY3: Mat3 = [1, 0, 0, 0, 1, 0, 0, 0, 1];

/** The element type of a voxel array (one name per typed-array class). */
export type VoxelType = 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'float32' | 'float64';

export const VOXEL_TYPES: readonly VoxelType[] = ['uint8', 'int8', 'uint16', 'int16', 'uint32', 'int32', 'float32', 'float64'];

/** The voxel type of an array. */
export function voxelTypeOf(data: VoxelArray): VoxelType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Uint32Array) return 'uint32';
  if (data instanceof Int16Array) return 'int16';
  if (data instanceof Uint16Array) return 'uint16';
  if (data instanceof Int8Array) return 'int8';
  return 'uint8';
}

/** World (LPS) coordinates of a continuous voxel index (i, j, k). */
export function voxelToWorld(v: Pick<Volume, 'origin' | 'spacing' | 'direction'>, ijk: Vec3): Vec3 {
  const d = v.direction;
  const s = [ijk[0] * v.spacing[0], ijk[1] * v.spacing[1], ijk[2] * v.spacing[2]];
  return [
    v.origin[0] + d[0] * s[0]! + d[1] * s[1]! + d[2] * s[2]!,
    v.origin[1] + d[3] * s[0]! + d[4] * s[1]! + d[5] * s[2]!,
    v.origin[2] + d[6] * s[0]! + d[7] * s[1]! + d[8] * s[2]!,
  ];
}

/** Continuous voxel index of a world (LPS) point. Uses the inverse of direction*diag(spacing). */
export function worldToVoxel(v: Pick<Volume, 'origin' | 'spacing' | 'direction'>, xyz: Vec3): Vec3 {
  const inv = invert3(v.direction);
  const p = [xyz[0] - v.origin[0], xyz[1] - v.origin[1], xyz[2] - v.origin[2]];
  const q = [
    inv[0] * p[0]! + inv[1] * p[1]! + inv[2] * p[2]!,
    inv[3] * p[0]! + inv[4] * p[1]! + inv[5] * p[2]!,
    inv[6] * p[0]! + inv[7] * p[1]! + inv[8] * p[2]!,
  ];
  return [q[0]! / v.spacing[0], q[1]! / v.spacing[1], q[2]! / v.spacing[2]];
}

export function invert3(m: Mat3): Mat3 {
  const [a, b, c, d, e, f, g, h, i] = m;
  const A = e * i - f * h, B = -(d * i - f * g), C = d * h - e * g;
  const det = a * A + b * B + c * C;
  if (Math.abs(det) < 1e-12) throw new Error('direction matrix is singular');
  const r = 1 / det;
  return [
    A * r, -(b * i - c * h) * r, (b * f - c * e) * r,
    B * r, (a * i - c * g) * r, -(a * f - c * d) * r,
    C * r, -(a * h - b * g) * r, (a * e - b * d) * r,
  ];
}

export function numVoxels(v: Pick<Volume, 'size'>): number {
  return v.size[0] * v.size[1] * v.size[2];
}
