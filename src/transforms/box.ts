/**
 * Voxel boxes: cut a box out of a volume (padding where it leaves the volume), and paste a box's
 * voxels back into a full-size grid. Crops, pads, body crops and random patches all reduce to
 * these two operations, and each of them returns its Box so that results can be mapped back.
 */
import type { Vec3, Volume, VoxelArray } from '../io/volume.js';
import { MisfmError } from '../util/errors.js';
import { allocLike, checkVolume, originAt, type Geometry } from './grid.js';

/** A half-open voxel box [start, end) in (x,y,z); start may be negative and end may pass the size (padding). */
export interface Box {
  start: Vec3;
  end: Vec3;
}

/**
 * How voxels outside the source are filled: 'constant' (value), 'reflect' (mirror without
 * repeating the edge voxel: numpy/PyTorch 'reflect', repeated for pads wider than the volume),
 * 'edge' (repeat the edge voxel: numpy 'edge', PyTorch 'replicate').
 */
export type PadMode = 'constant' | 'reflect' | 'edge';

export interface FillOptions {
  mode?: PadMode;
  /** Constant fill value (default 0); must be representable in the voxel type. */
  value?: number;
}

/** Box size (x,y,z). */
export function boxSize(b: Box): Vec3 {
  return [b.end[0] - b.start[0], b.end[1] - b.start[1], b.end[2] - b.start[2]];
}

/** True when the box lies inside a grid of `size`. */
export function boxInside(b: Box, size: readonly number[]): boolean {
  return b.start.every((s, i) => s >= 0 && b.end[i]! <= size[i]!);
}

function checkBox(op: string, b: Box): void {
  const ok = b.start.length === 3 && b.end.length === 3
    && b.start.every((s, i) => Number.isInteger(s) && Number.isInteger(b.end[i]) && b.end[i]! > s);
  if (!ok) throw new MisfmError('ARGUMENT', `${op}: box must have integer start < end on each axis, got start [${b.start.join(',')}] end [${b.end.join(',')}]`);
}

/** Source index for output position p (may be outside [0,n)), or -1 for the constant fill. */
function mapIndex(p: number, n: number, mode: PadMode): number {
  if (p >= 0 && p < n) return p;
  if (mode === 'constant') return -1;
  if (mode === 'edge' || n === 1) return p < 0 ? 0 : n - 1;
  const period = 2 * (n - 1);
  const m = ((p % period) + period) % period;
  return m < n ? m : period - m;
}

function indexMap(start: number, len: number, n: number, mode: PadMode): Int32Array {
  const m = new Int32Array(len);
  for (let i = 0; i < len; i++) m[i] = mapIndex(start + i, n, mode);
  return m;
}

/** A voxel value that the array type stores unchanged, or an error naming the op. */
function checkFill(op: string, like: VoxelArray, value: number): void {
  const probe = allocLike(like, 1);
  probe[0] = value;
  if (probe[0] !== value && !(Number.isNaN(value) && Number.isNaN(probe[0]))) {
    throw new MisfmError('ARGUMENT', `${op}: fill value ${value} cannot be stored in ${like.constructor.name} voxels (it would become ${probe[0]})`);
  }
}

/**
 * The voxels of `box` as a new Volume whose origin is the world position of box.start (spacing,
 * direction and voxel type unchanged). Parts of the box outside the volume are filled per
 * `fill` (default constant 0), so this both crops and pads.
 */
export function extractBox(v: Volume, box: Box, fill: FillOptions = {}): Volume {
  checkVolume('extractBox', v);
  checkBox('extractBox', box);
  const mode = fill.mode ?? 'constant';
  const value = fill.value ?? 0;
  if (mode === 'constant') checkFill('extractBox', v.data, value);
  const size = boxSize(box);
  const [nx, ny, nz] = v.size;
  const mx = indexMap(box.start[0], size[0], nx, mode);
  const my = indexMap(box.start[1], size[1], ny, mode);
  const mz = indexMap(box.start[2], size[2], nz, mode);
  const out = allocLike(v.data, size[0] * size[1] * size[2]);
  const src = v.data;
  // x runs inside the volume over [x0, x1) of the output: copy that span in one call.
  const x0 = Math.min(size[0], Math.max(0, -box.start[0]));
  const x1 = Math.max(x0, Math.min(size[0], nx - box.start[0]));
  let t = 0;
  for (let k = 0; k < size[2]; k++) {
    const sk = mz[k]!;
    for (let j = 0; j < size[1]; j++, t += size[0]) {
      const sj = my[j]!;
      if (sk < 0 || sj < 0) {
        if (value !== 0) out.fill(value, t, t + size[0]);
        continue;
      }
      const row = (sk * ny + sj) * nx;
      for (let i = 0; i < x0; i++) { const si = mx[i]!; out[t + i] = si < 0 ? value : src[row + si]!; }
      if (x1 > x0) out.set(src.subarray(row + box.start[0] + x0, row + box.start[0] + x1), t + x0);
      for (let i = x1; i < size[0]; i++) { const si = mx[i]!; out[t + i] = si < 0 ? value : src[row + si]!; }
    }
  }
  return { data: out, size, spacing: [...v.spacing], origin: originAt(v, box.start), direction: [...v.direction] };
}

/** extractBox for a box that must lie inside the volume (a plain crop); throws otherwise. */
export function cropToBox(v: Volume, box: Box): Volume {
  checkBox('cropToBox', box);
  if (!boxInside(box, v.size)) {
    throw new MisfmError('ARGUMENT', `cropToBox: box [${box.start.join(',')}]..[${box.end.join(',')}) is not inside the volume of size ${v.size.join('x')}; use extractBox to pad`);
  }
  return extractBox(v, box);
}

/**
 * Put `cropped` (the voxels of `box`) back into a grid of the original size, other voxels set to
 * `fill`. `original` is the original Geometry (used as is) or just its size (then the origin
 * is recovered from the cropped volume's). Parts of the box outside the grid (padding) are
 * dropped, so pasteBack(extractBox(v, b), b, v) restores v inside the box.
 */
export function pasteBack(cropped: Volume, box: Box, original: Geometry | Vec3, fill = 0): Volume {
  checkVolume('pasteBack', cropped, 'cropped volume');
  checkBox('pasteBack', box);
  const bs = boxSize(box);
  if (bs.some((s, i) => s !== cropped.size[i])) {
    throw new MisfmError('ARGUMENT', `pasteBack: box size ${bs.join('x')} differs from the cropped volume size ${cropped.size.join('x')}`);
  }
  const geom: Geometry = Array.isArray(original)
    ? { size: [...(original as Vec3)], spacing: [...cropped.spacing], direction: [...cropped.direction],
      origin: originAt(cropped, [-box.start[0], -box.start[1], -box.start[2]]) }
    : { size: [...(original as Geometry).size], spacing: [...(original as Geometry).spacing],
      origin: [...(original as Geometry).origin], direction: [...(original as Geometry).direction] };
  const [nx, ny, nz] = geom.size;
  if (![nx, ny, nz].every((s) => Number.isInteger(s) && s >= 1)) {
    throw new MisfmError('ARGUMENT', `pasteBack: original size must be three positive integers, got [${geom.size.join(',')}]`);
  }
  checkFill('pasteBack', cropped.data, fill);
  const out = allocLike(cropped.data, nx * ny * nz);
  if (fill !== 0) out.fill(fill);
  const lo = box.start.map((s) => Math.max(0, s));
  const hi = box.end.map((e, i) => Math.min(e, geom.size[i]!));
  if (lo.some((l, i) => l >= hi[i]!)) return { data: out, ...geom };
  const [cx, cy] = cropped.size;
  const src = cropped.data;
  for (let z = lo[2]!; z < hi[2]!; z++) {
    for (let y = lo[1]!; y < hi[1]!; y++) {
      const s = ((z - box.start[2]) * cy + (y - box.start[1])) * cx - box.start[0];
      const d = (z * ny + y) * nx;
      out.set(src.subarray(s + lo[0]!, s + hi[0]!), d + lo[0]!);
    }
  }
  return { data: out, ...geom };
}
