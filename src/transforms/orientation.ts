/**
 * Orientation: which anatomical direction each voxel axis points to, and exact reorientation by
 * axis permutation and flips (no resampling, so labels stay labels and `undoReorient` restores the
 * original voxels and geometry bit for bit).
 *
 * Codes use nibabel's convention (the same as io/image `orientationCode`): letter c names the
 * direction in which voxel index c increases, in patient terms (L/R, P/A, S/I). In ITK's LPS world
 * the identity direction matrix is 'LPS'; a NIfTI in nibabel's canonical form is 'RAS'.
 *
 * Default target: 'LPS'. It is the identity direction in ITK (and so what a DICOM axial series
 * read by ITK usually already is), and its (D,H,W) tensor shows axial slices in the radiological
 * convention (row 0 anterior, column 0 patient right). nnU-Net and PyMIC do not reorient at all;
 * pass 'RAS' to match tools that work in nibabel's canonical orientation.
 */
import type { Mat3, Vec3, Volume } from '../io/volume.js';
import { voxelToWorld } from '../io/volume.js';
import { MisfmError } from '../util/errors.js';
import { allocLike, checkVolume, geometryOf, type Geometry } from './grid.js';

/** Default canonical orientation (ITK identity). */
export const DEFAULT_ORIENTATION = 'LPS';

/**
 * A reindexing of the voxel axes: new axis c is old axis perm[c], traversed backwards when
 * flip[c]. All 48 of them (6 permutations x 8 flip patterns) are valid.
 */
export interface AxisMap {
  perm: [number, number, number];
  flip: [boolean, boolean, boolean];
}

/** The result of reorient: the volume, the axis map applied, and the geometry to return to. */
export interface Reoriented {
  volume: Volume;
  map: AxisMap;
  original: Geometry;
}

const LETTERS: Record<string, [number, number]> = { L: [0, 1], R: [0, -1], P: [1, 1], A: [1, -1], S: [2, 1], I: [2, -1] };
const NAMES = [['L', 'R'], ['P', 'A'], ['S', 'I']] as const;
const PERMS: [number, number, number][] = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];

/** For each voxel axis: the LPS world axis it follows and the sign (+1 towards L/P/S). */
export interface AxisCodes {
  world: [number, number, number];
  sign: [number, number, number];
}

/** Parse a code such as 'LPS', 'ras' or 'ASL'. Throws a MisfmError naming the problem. */
export function parseOrientation(code: string): AxisCodes {
  const up = code.toUpperCase();
  const parsed = [...up].map((ch) => LETTERS[ch]);
  if (up.length !== 3 || parsed.some((p) => p === undefined) || new Set(parsed.map((p) => p![0])).size !== 3) {
    throw new MisfmError('ARGUMENT', `orientation code '${code}' is invalid: use three letters, one from each of L/R, P/A, S/I (e.g. 'LPS', 'RAS')`);
  }
  return { world: parsed.map((p) => p![0]) as AxisCodes['world'], sign: parsed.map((p) => p![1]) as AxisCodes['sign'] };
}

/** The code of parsed axis codes. */
export function formatOrientation(a: AxisCodes): string {
  return [0, 1, 2].map((c) => NAMES[a.world[c]!]![a.sign[c]! > 0 ? 0 : 1]).join('');
}

/**
 * The nearest axis-aligned orientation of a direction matrix: the assignment of world axes to
 * voxel axes that maximises the summed |cosine| (so oblique matrices still get three distinct
 * letters), with each letter's sign from the matching cosine.
 */
export function axisCodesOf(direction: Mat3): AxisCodes {
  let best = PERMS[0]!, bestScore = -1;
  for (const p of PERMS) {
    // p[c] = world axis of voxel axis c; direction column c is (d[c], d[3+c], d[6+c]).
    const score = Math.abs(direction[p[0] * 3]!) + Math.abs(direction[p[1] * 3 + 1]!) + Math.abs(direction[p[2] * 3 + 2]!);
    if (score > bestScore + 1e-12) { best = p; bestScore = score; }
  }
  const sign = [0, 1, 2].map((c) => (direction[best[c]! * 3 + c]! >= 0 ? 1 : -1)) as AxisCodes['sign'];
  return { world: [...best], sign };
}

/** Orientation code of a volume or direction matrix, e.g. 'LPS', 'RAS', 'LAS'. */
export function orientationOf(v: Pick<Volume, 'direction'> | Mat3): string {
  return formatOrientation(axisCodesOf(Array.isArray(v) ? (v as Mat3) : (v as Pick<Volume, 'direction'>).direction));
}

/** The 48 axis maps (every permutation with every flip pattern). */
export function allAxisMaps(): AxisMap[] {
  const out: AxisMap[] = [];
  for (const perm of PERMS) {
    for (let f = 0; f < 8; f++) out.push({ perm: [...perm], flip: [(f & 1) !== 0, (f & 2) !== 0, (f & 4) !== 0] });
  }
  return out;
}

function checkMap(op: string, m: AxisMap): void {
  const ok = m.perm.length === 3 && m.flip.length === 3 && [0, 1, 2].every((a) => m.perm.includes(a));
  if (!ok) throw new MisfmError('ARGUMENT', `${op}: perm must be a permutation of 0,1,2, got [${m.perm.join(',')}]`);
}

/** The map that undoes `m`: permuteFlip(permuteFlip(v, m), invertAxisMap(m)) is v. */
export function invertAxisMap(m: AxisMap): AxisMap {
  checkMap('invertAxisMap', m);
  const perm = [0, 0, 0] as AxisMap['perm'];
  const flip = [false, false, false] as AxisMap['flip'];
  for (let c = 0; c < 3; c++) { perm[m.perm[c]!] = c; flip[m.perm[c]!] = m.flip[c]!; }
  return { perm, flip };
}

/** The geometry after applying `m` to a grid: the same voxel centres in the new index order. */
export function permuteFlipGeometry(g: Geometry, m: AxisMap): Geometry {
  checkMap('permuteFlipGeometry', m);
  const corner: Vec3 = [0, 0, 0];
  const size = [0, 0, 0] as Vec3, spacing = [0, 0, 0] as Vec3;
  const direction = [0, 0, 0, 0, 0, 0, 0, 0, 0] as Mat3;
  for (let c = 0; c < 3; c++) {
    const a = m.perm[c]!;
    size[c] = g.size[a]!;
    spacing[c] = g.spacing[a]!;
    if (m.flip[c]) corner[a] = g.size[a]! - 1;
    // 0 - x rather than -x: no negative zeros in the result.
    for (let r = 0; r < 3; r++) direction[r * 3 + c] = m.flip[c] ? 0 - g.direction[r * 3 + a]! : g.direction[r * 3 + a]!;
  }
  return { size, spacing, direction, origin: voxelToWorld(g, corner) };
}

/**
 * Reindex the voxel axes by `m`, updating the geometry so every voxel keeps its world position
 * (new voxel i' is old voxel with index[perm[c]] = flip[c] ? n-1-i'[c] : i'[c]).
 */
export function permuteFlip(v: Volume, m: AxisMap): Volume {
  checkVolume('permuteFlip', v);
  const g = permuteFlipGeometry(v, m);
  const old = v.size;
  const stride = [1, old[0], old[0] * old[1]];
  const step = [0, 0, 0];
  let base = 0;
  for (let c = 0; c < 3; c++) {
    const a = m.perm[c]!;
    step[c] = m.flip[c] ? -stride[a]! : stride[a]!;
    if (m.flip[c]) base += (old[a]! - 1) * stride[a]!;
  }
  const [nx, ny, nz] = g.size;
  const src = v.data;
  const out = allocLike(src, src.length);
  const s0 = step[0]!, s1 = step[1]!, s2 = step[2]!;
  let t = 0;
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      let s = base + k * s2 + j * s1;
      for (let i = 0; i < nx; i++, s += s0) out[t++] = src[s]!;
    }
  }
  return { data: out, ...g };
}

/**
 * Where the voxels of `permuteFlip(v, m)` come from, per axis: voxel (i, j, k) of the result is
 * voxel o[0][i] + o[1][j] + o[2][k] (linear, x fastest) of `v`, whose size is `size`.
 */
export function permuteFlipOffsets(size: readonly [number, number, number], m: AxisMap): [Int32Array, Int32Array, Int32Array] {
  checkMap('permuteFlipOffsets', m);
  const stride = [1, size[0], size[0] * size[1]];
  const axis = (c: number): Int32Array => {
    const a = m.perm[c]!, n = size[a]!;
    return Int32Array.from({ length: n }, (_, i) => (m.flip[c] ? n - 1 - i : i) * stride[a]!);
  };
  return [axis(0), axis(1), axis(2)];
}

/** The axis map that takes a grid with this direction to orientation `target`. */
export function axisMapTo(direction: Mat3, target: string): AxisMap {
  const cur = axisCodesOf(direction);
  const want = parseOrientation(target);
  const perm = [0, 0, 0] as AxisMap['perm'];
  const flip = [false, false, false] as AxisMap['flip'];
  for (let c = 0; c < 3; c++) {
    const a = cur.world.indexOf(want.world[c]!);
    perm[c] = a;
    flip[c] = cur.sign[a] !== want.sign[c];
  }
  return { perm, flip };
}

/**
 * Reorient to `target` (default 'LPS') by permuting and flipping voxel axes only. Oblique
 * volumes go to the nearest axis-aligned orientation; their direction stays oblique (no
 * resampling). Returns what `undoReorient` needs.
 */
export function reorient(v: Volume, target: string = DEFAULT_ORIENTATION): Reoriented {
  const map = axisMapTo(v.direction, target);
  return { volume: permuteFlip(v, map), map, original: geometryOf(v) };
}

/**
 * Bring a volume on the reoriented grid (e.g. a predicted label map) back to the original voxel
 * order. The original geometry is restored exactly (not recomputed), after checking that `v`
 * really lies on the reoriented grid.
 */
export function undoReorient(v: Volume, r: Pick<Reoriented, 'map' | 'original'>): Volume {
  const expected = permuteFlipGeometry(r.original, r.map);
  const tol = 1e-6 * Math.max(1, ...expected.origin.map(Math.abs));
  const same = expected.size.every((s, i) => s === v.size[i])
    && expected.spacing.every((s, i) => Math.abs(s - v.spacing[i]!) <= 1e-9 * s)
    && expected.direction.every((d, i) => Math.abs(d - v.direction[i]!) <= 1e-9)
    && expected.origin.every((o, i) => Math.abs(o - v.origin[i]!) <= tol);
  if (!same) {
    throw new MisfmError('GEOMETRY', `undoReorient: the volume (size ${v.size.join('x')}, origin ${v.origin.map((x) => x.toFixed(3)).join(',')}) ` +
      `is not on the reoriented grid (size ${expected.size.join('x')}, origin ${expected.origin.map((x) => x.toFixed(3)).join(',')})`);
  }
  const back = permuteFlip(v, invertAxisMap(r.map));
  return { data: back.data, ...geometryOf(r.original) };
}
