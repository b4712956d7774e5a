/**
 * Exact reindexing between grids that hold the same voxel centres in a different axis order or
 * orientation, e.g. a label map saved with y flipped relative to its DICOM series. No
 * interpolation: every target voxel maps onto one source voxel, so labels stay labels.
 */
import type { Vec3, Volume } from '../volume.js';
import { invert3 } from '../volume.js';
import type { Grid } from './geometry.js';
import { GeometryError } from './errors.js';
import { allocVoxels, voxelTypeOf } from './itk.js';

/** src index[axis[c]] = offset[axis[c]] + sign[c] * ref index[c], for each ref axis c. */
export interface LatticeMap {
  axis: [number, number, number];
  sign: [number, number, number];
  /** Source index of reference voxel (0,0,0). */
  offset: Vec3;
}

/**
 * How reference voxel indices map to source voxel indices when the two grids share a lattice
 * (same spacing up to axis permutation, axes parallel or anti-parallel, origins a whole number of
 * voxels apart, all within `tol` voxels). Undefined when they do not.
 */
export function latticeMapping(src: Omit<Grid, 'size'>, ref: Omit<Grid, 'size'>, tol = 1e-3): LatticeMap | undefined {
  let inv;
  try {
    inv = invert3(src.direction);
  } catch {
    return undefined;
  }
  const toSrc = (w: number[]): Vec3 => {
    const q = [0, 1, 2].map((r) => inv[r * 3]! * w[0]! + inv[r * 3 + 1]! * w[1]! + inv[r * 3 + 2]! * w[2]!);
    return [q[0]! / src.spacing[0], q[1]! / src.spacing[1], q[2]! / src.spacing[2]];
  };
  const axis: number[] = [], sign: number[] = [];
  for (let c = 0; c < 3; c++) {
    const step = [0, 1, 2].map((r) => ref.direction[r * 3 + c]! * ref.spacing[c]!);
    const e = toSrc(step);
    let a = 0;
    for (let k = 1; k < 3; k++) if (Math.abs(e[k]!) > Math.abs(e[a]!)) a = k;
    const s = Math.sign(e[a]!);
    // One voxel step of ref must be exactly one voxel step of src along one axis.
    if (Math.abs(Math.abs(e[a]!) - 1) > tol || e.some((x, k) => k !== a && Math.abs(x) > tol) || axis.includes(a)) return undefined;
    axis.push(a);
    sign.push(s);
  }
  const o = toSrc([ref.origin[0] - src.origin[0], ref.origin[1] - src.origin[1], ref.origin[2] - src.origin[2]]);
  if (o.some((x) => Math.abs(x - Math.round(x)) > tol)) return undefined;
  return { axis: axis as LatticeMap['axis'], sign: sign as LatticeMap['sign'], offset: o.map(Math.round) as Vec3 };
}

/**
 * `src`'s voxels re-indexed onto `ref`'s grid (ref's size, spacing, origin, direction; src's
 * voxel type). Throws GeometryError unless the grids share a lattice and src covers all of ref.
 */
export function alignToGrid(src: Volume, ref: Grid, names: [string, string] = ['source', 'reference'], tol = 1e-3): Volume {
  const m = latticeMapping(src, ref, tol);
  if (m === undefined) {
    throw new GeometryError(`${names[0]} cannot be reindexed onto ${names[1]}: the voxel centres differ ` +
      '(different spacing, rotation, or a non-integer shift); it would need resampling');
  }
  const strideSrc = [1, src.size[0], src.size[0] * src.size[1]];
  for (let c = 0; c < 3; c++) {
    const a = m.axis[c]!;
    const first = m.offset[a]!, last = m.offset[a]! + m.sign[c]! * (ref.size[c]! - 1);
    if (Math.min(first, last) < 0 || Math.max(first, last) > src.size[a]! - 1) {
      throw new GeometryError(`${names[0]} does not cover ${names[1]}: reference axis ${c} maps to source indices ` +
        `${first}..${last} on axis ${a}, which has ${src.size[a]} voxels`);
    }
  }
  const n = ref.size[0] * ref.size[1] * ref.size[2];
  const out = allocVoxels(voxelTypeOf(src.data), n);
  const step = [0, 1, 2].map((c) => m.sign[c]! * strideSrc[m.axis[c]!]!);
  const base0 = m.offset[0] * strideSrc[0]! + m.offset[1] * strideSrc[1]! + m.offset[2] * strideSrc[2]!;
  const sd = src.data;
  let t = 0;
  for (let k = 0; k < ref.size[2]; k++) {
    for (let j = 0; j < ref.size[1]; j++) {
      let s = base0 + k * step[2]! + j * step[1]!;
      const si = step[0]!;
      for (let i = 0; i < ref.size[0]; i++, s += si) out[t++] = sd[s]!;
    }
  }
  return { data: out, size: [...ref.size], spacing: [...ref.spacing], origin: [...ref.origin], direction: [...ref.direction] };
}
