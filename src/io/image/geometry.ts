/**
 * Geometry helpers: affines (LPS and RAS), orientation codes for reports, and grid comparison for
 * image/label pairs. Volumes live in ITK's LPS world; RAS (NIfTI / nibabel) is only for display.
 */
import type { Mat3, Vec3, Volume } from '../volume.js';
import { GeometryError } from './errors.js';
import { latticeMapping, type LatticeMap } from './align.js';

/** The grid part of a Volume. */
export type Grid = Pick<Volume, 'size' | 'spacing' | 'origin' | 'direction'>;

/** A 4x4 matrix as 4 rows. */
export type Mat4 = [number[], number[], number[], number[]];

/** Voxel index (i,j,k,1) -> LPS world (mm): [direction * diag(spacing) | origin]. */
export function affineLPS(v: Pick<Volume, 'spacing' | 'origin' | 'direction'>): Mat4 {
  const d = v.direction, s = v.spacing;
  const row = (r: number): number[] => [d[r * 3]! * s[0], d[r * 3 + 1]! * s[1], d[r * 3 + 2]! * s[2], v.origin[r]!];
  return [row(0), row(1), row(2), [0, 0, 0, 1]];
}

/** Voxel index -> RAS world, the affine nibabel shows for the same file (x and y negated). */
export function affineRAS(v: Pick<Volume, 'spacing' | 'origin' | 'direction'>): Mat4 {
  const a = affineLPS(v);
  return [a[0].map((x) => -x), a[1].map((x) => -x), a[2], a[3]];
}

/** An LPS point in RAS coordinates (and back: the map is its own inverse). */
export function lpsToRas(p: Vec3): Vec3 {
  return [-p[0], -p[1], p[2]];
}

/**
 * Where each voxel axis points, as patient-direction letters in nibabel's convention (the
 * direction of increasing index): an ITK-read DICOM axial series is 'LPS', a NIfTI in canonical
 * orientation 'RAS'. Oblique axes get the letter of their largest component.
 */
export function orientationCode(v: Pick<Volume, 'direction'>): string {
  const letters = [['L', 'R'], ['P', 'A'], ['S', 'I']] as const;
  let code = '';
  for (let c = 0; c < 3; c++) {
    const col = [v.direction[c]!, v.direction[3 + c]!, v.direction[6 + c]!];
    let k = 0;
    for (let r = 1; r < 3; r++) if (Math.abs(col[r]!) > Math.abs(col[k]!)) k = r;
    code += letters[k]![col[k]! >= 0 ? 0 : 1];
  }
  return code;
}

/** Tolerances for grid comparison. */
export interface GeometryTolerance {
  /** Relative spacing difference (default 1e-4). */
  spacing?: number;
  /** Origin difference in mm (default 1e-3; NIfTI stores float32, ~1e-5 mm at 500 mm). */
  origin?: number;
  /** Absolute difference of direction cosines (default 1e-4). */
  direction?: number;
}

const v3 = (v: readonly number[], digits = 4): string => `(${v.map((x) => Number(x.toFixed(digits))).join(', ')})`;

/** The fields in which two grids differ beyond `tol`, as readable phrases; empty when the same. */
export function gridDifferences(a: Grid, b: Grid, tol: GeometryTolerance = {}): string[] {
  const ts = tol.spacing ?? 1e-4, to = tol.origin ?? 1e-3, td = tol.direction ?? 1e-4;
  const out: string[] = [];
  if (a.size.some((s, i) => s !== b.size[i])) out.push(`size ${a.size.join('x')} vs ${b.size.join('x')}`);
  if (a.spacing.some((s, i) => Math.abs(s - b.spacing[i]!) > ts * Math.max(s, b.spacing[i]!))) {
    out.push(`spacing ${v3(a.spacing, 6)} vs ${v3(b.spacing, 6)} mm`);
  }
  const od = Math.hypot(a.origin[0] - b.origin[0], a.origin[1] - b.origin[1], a.origin[2] - b.origin[2]);
  if (a.origin.some((o, i) => Math.abs(o - b.origin[i]!) > to)) out.push(`origin ${v3(a.origin)} vs ${v3(b.origin)} mm (LPS; ${Number(od.toPrecision(3))} mm apart)`);
  if (a.direction.some((d, i) => Math.abs(d - b.direction[i]!) > td)) {
    out.push(`direction ${orientationCode(a)} [${a.direction.map((x) => Number(x.toFixed(4))).join(', ')}] vs ` +
      `${orientationCode(b)} [${b.direction.map((x) => Number(x.toFixed(4))).join(', ')}]`);
  }
  return out;
}

/** True when both grids have the same size, spacing, origin and direction within `tol`. */
export function sameGrid(a: Grid, b: Grid, tol: GeometryTolerance = {}): boolean {
  return gridDifferences(a, b, tol).length === 0;
}

/**
 * Throw a GeometryError naming both files and every differing field unless `a` and `b` (e.g. an
 * image and its label map) share one voxel grid. When the grids hold the same voxel centres in a
 * different axis order or orientation, the message says so (alignToGrid fixes that case); when
 * they lie on one lattice but cover different extents, the message names the size mismatch.
 */
export function assertSameGeometry(a: Grid, b: Grid, names: [string, string], tol: GeometryTolerance = {}): void {
  const diff = gridDifferences(a, b, tol);
  if (diff.length === 0) return;
  let hint = '';
  const m = latticeMapping(b, a, tol.origin ?? 1e-3);
  if (m !== undefined) {
    const sameOrder = m.axis.every((x, i) => x === i) && m.sign.every((s) => s === 1);
    if (coversExactly(m, a.size, b.size)) {
      hint = `; both hold the same voxel centres, stored in a different axis order/orientation (${orientationCode(a)} vs ${orientationCode(b)}): reindex with alignToGrid`;
    } else if (sameOrder) {
      const shift = m.offset.some((o) => o !== 0) ? `, and voxel (0,0,0) of the first is voxel (${m.offset.join(',')}) of the second` : '';
      hint = `; spacing, direction and voxel lattice agree, only the extent differs (${a.size.join('x')} vs ${b.size.join('x')} voxels${shift}): ` +
        'they cover different regions, e.g. one was cropped or padded, or made from another image';
    } else {
      hint = `; the voxel lattices agree (in another axis order, ${orientationCode(a)} vs ${orientationCode(b)}) but the extents differ: ` +
        'they cover different regions';
    }
  }
  throw new GeometryError(`${names[0]} and ${names[1]} do not share a voxel grid: ${diff.join('; ')}${hint}`, names[1]);
}

/** Whether the lattice map sends `refSize`'s index box exactly onto all of `srcSize`'s. */
function coversExactly(m: LatticeMap, refSize: readonly number[], srcSize: readonly number[]): boolean {
  for (let c = 0; c < 3; c++) {
    const ax = m.axis[c]!;
    const first = m.offset[ax]!, last = first + m.sign[c]! * (refSize[c]! - 1);
    if (Math.min(first, last) !== 0 || Math.max(first, last) !== srcSize[ax]! - 1) return false;
  }
  return true;
}

/** Determinant of a direction matrix (-1 for a left-handed, i.e. flipped, axis set). */
export function det3(m: Mat3): number {
  return m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) + m[2] * (m[3] * m[7] - m[4] * m[6]);
}

/** One-line description for logs: size, spacing, orientation, origin. */
export function describeGrid(v: Grid): string {
  return `${v.size.join('x')} voxels, spacing ${v.spacing.map((s) => Number(s.toFixed(4))).join('x')} mm, ` +
    `orientation ${orientationCode(v)}, origin ${v3(v.origin, 3)} mm (LPS)`;
}
