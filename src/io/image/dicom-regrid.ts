/**
 * Resample a DICOM series whose slices are unevenly spaced or shifted sideways (gantry tilt)
 * onto a regular grid along the slice normal.
 *
 * All slices share one orientation (row r, column c, normal n = r x c); slice s lies in the plane
 * n.x = z_s with its first pixel at P_s. The output grid has direction [r c n], spacing
 * (sx, sy, step) and origin P_0, so its plane k is n.x = z_0 + k*step. A voxel (i, j, k) of that
 * grid projects along n onto slice s at pixel (i + du_s, j + dv_s), where (du_s, dv_s) is the
 * in-plane offset of P_0 from P_s; for a tilted stack that offset grows with s (the shear), for
 * a straight one it is 0. The value is bilinear within the two slices bracketing the plane and
 * linear between them, so a linear intensity field is reproduced exactly (tests rely on this).
 * Voxels whose projection leaves a slice's field of view get the series' minimum value (air or
 * padding), as dcm2niix fills its tilt correction.
 */
import type { Mat3, Vec3, Volume, VoxelArray } from '../volume.js';

export interface RegridSlices {
  /** ImagePositionPatient of each slice, sorted along the normal. */
  positions: Vec3[];
  /** Row direction, column direction (unit vectors). */
  row: Vec3;
  col: Vec3;
  /** In-plane spacing (x = along rows, y = along columns), mm. */
  spacing: [number, number];
  /** (columns, rows). */
  size: [number, number];
}

const dot = (a: readonly number[], b: readonly number[]): number => a[0]! * b[0]! + a[1]! * b[1]! + a[2]! * b[2]!;

/** Integer voxel types keep their type: values are rounded and clamped to its range. */
function rounder(data: VoxelArray): ((x: number) => number) | null {
  if (data instanceof Float32Array || data instanceof Float64Array) return null;
  const range: Array<[new (n: number) => VoxelArray, number, number]> = [
    [Int16Array, -32768, 32767], [Uint16Array, 0, 65535], [Int8Array, -128, 127], [Uint8Array, 0, 255],
    [Int32Array, -2147483648, 2147483647], [Uint32Array, 0, 4294967295],
  ];
  const r = range.find(([C]) => data instanceof C)!;
  return (x) => Math.min(r[2], Math.max(r[1], Math.round(x)));
}

/**
 * Resample `data` (slices stacked in the order of `geo.positions`, x fastest) onto a regular
 * grid along the normal with slice step `step` (mm). Returns the new volume.
 */
export function regridSlices(data: VoxelArray, geo: RegridSlices, step: number): Volume {
  const [nx, ny] = geo.size;
  const [sx, sy] = geo.spacing;
  const { row, col, positions } = geo;
  const normal: Vec3 = [row[1] * col[2] - row[2] * col[1], row[2] * col[0] - row[0] * col[2], row[0] * col[1] - row[1] * col[0]];
  const ns = positions.length;
  if (!(step > 0)) throw new Error(`slice step must be positive, got ${step}`);
  if (data.length !== nx * ny * ns) throw new Error(`regrid: ${data.length} voxels for ${nx}x${ny}x${ns} slices`);
  const z = positions.map((p) => dot(p, normal));
  const p0 = positions[0]!;
  // Pixel offset of the grid's in-plane origin within each slice.
  const du = positions.map((p) => dot([p0[0] - p[0], p0[1] - p[1], p0[2] - p[2]], row) / sx);
  const dv = positions.map((p) => dot([p0[0] - p[0], p0[1] - p[1], p0[2] - p[2]], col) / sy);
  const extent = z[ns - 1]! - z[0]!;
  const nz = Math.floor(extent / step + 1e-6) + 1;
  let fill = Infinity;
  for (let i = 0; i < data.length; i++) if (data[i]! < fill) fill = data[i]!;
  const out = new (data.constructor as new (n: number) => VoxelArray)(nx * ny * nz);
  const round = rounder(data);
  const plane = nx * ny;
  const eps = 1e-6;
  /** Bilinear sample of slice s at pixel (u, v); NaN outside its field of view. */
  const sample = (s: number, u: number, v: number): number => {
    if (u < -eps || v < -eps || u > nx - 1 + eps || v > ny - 1 + eps) return NaN;
    const uc = Math.min(Math.max(u, 0), nx - 1), vc = Math.min(Math.max(v, 0), ny - 1);
    const i0 = Math.min(Math.floor(uc), nx - 2 < 0 ? 0 : nx - 2), j0 = Math.min(Math.floor(vc), ny - 2 < 0 ? 0 : ny - 2);
    const fu = nx > 1 ? uc - i0 : 0, fv = ny > 1 ? vc - j0 : 0;
    const i1 = Math.min(i0 + 1, nx - 1), j1 = Math.min(j0 + 1, ny - 1);
    const b = s * plane;
    const a00 = data[b + j0 * nx + i0]!, a10 = data[b + j0 * nx + i1]!, a01 = data[b + j1 * nx + i0]!, a11 = data[b + j1 * nx + i1]!;
    return (a00 * (1 - fu) + a10 * fu) * (1 - fv) + (a01 * (1 - fu) + a11 * fu) * fv;
  };
  let s = 0;
  for (let k = 0; k < nz; k++) {
    const zk = z[0]! + k * step;
    while (s < ns - 2 && z[s + 1]! < zk - 1e-9) s++;
    let t = ns === 1 ? 0 : Math.min(1, Math.max(0, (zk - z[s]!) / (z[s + 1]! - z[s]!)));
    // A plane that falls on a slice (to rounding) takes that slice alone, so a field of view
    // shifted by tilt in the neighbouring slice does not blank it.
    if (t < 1e-6) t = 0;
    else if (t > 1 - 1e-6) t = 1;
    const s1 = Math.min(s + 1, ns - 1);
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++) {
        const a = t < 1 ? sample(s, i + du[s]!, j + dv[s]!) : 0;
        const b = t > 0 ? sample(s1, i + du[s1]!, j + dv[s1]!) : 0;
        let v = a * (1 - t) + b * t;
        if (Number.isNaN(v)) v = fill;
        out[k * plane + j * nx + i] = round === null ? v : round(v);
      }
    }
  }
  const direction: Mat3 = [row[0], col[0], normal[0], row[1], col[1], normal[1], row[2], col[2], normal[2]];
  return { data: out, size: [nx, ny, nz], spacing: [sx, sy, step], origin: [...p0], direction };
}
