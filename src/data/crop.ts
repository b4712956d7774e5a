/**
 * Crops that may reach outside the volume, with padding, and crop placement.
 *
 * Padding choice: constant, with the CT value of air (-1000 HU) by default for CT (the volume
 * minimum for other images). Reflect padding (what the PyMIC LUNA preprocessing used) mirrors
 * anatomy across the border, which invents structures that do not exist; air is what actually
 * surrounds a patient, and after the [-1000,1000] -> [-1,1] window it is exactly -1, the value
 * of the clipped background. Reflect stays available (`{ mode: 'reflect' }`).
 *
 * Placement: on an axis where the volume is at least as long as the crop, the crop lies fully
 * inside; where it is shorter, the volume lies fully inside the crop (at a random offset). So
 * padding only ever fills the margin of volumes smaller than the crop.
 */
import { MisfmError } from '../util/errors.js';
import type { VoxelArray } from '../io/volume.js';
import { allocArray } from './format.js';
import type { Box3, CacheVolume, ReadStrategy } from './reader.js';

export type PadSpec = { mode: 'constant'; value: number } | { mode: 'reflect' };

/** Inclusive range of valid crop starts on an axis of length n for a crop of length c. */
export function startRange(n: number, c: number): [number, number] {
  return [Math.min(0, n - c), Math.max(0, n - c)];
}

/** numpy-style 'reflect' index (edge not repeated) for any integer i on an axis of length n. */
export function reflectIndex(i: number, n: number): number {
  if (n === 1) return 0;
  const p = 2 * (n - 1);
  let m = i % p;
  if (m < 0) m += p;
  return m < n ? m : p - m;
}

/** Per crop position along one axis: the source index, or -1 for constant padding. */
function axisMap(start: number, c: number, n: number, reflect: boolean): Int32Array {
  const m = new Int32Array(c);
  for (let k = 0; k < c; k++) {
    const i = start + k;
    m[k] = i >= 0 && i < n ? i : reflect ? reflectIndex(i, n) : -1;
  }
  return m;
}

/**
 * The crop of `vol` starting at `start` (z,y,x; may be negative or reach past the end) with
 * `size` (d,h,w), padded per `pad`, in the file's dtype, (d,h,w) C order.
 */
export function readCrop(vol: CacheVolume, start: Box3, size: Box3, pad: PadSpec, strategy: ReadStrategy = 'auto'): VoxelArray {
  const shape = vol.shape;
  const inside = [0, 1, 2].every((a) => start[a]! >= 0 && start[a]! + size[a]! <= shape[a]!);
  if (inside) return vol.readBox(start, size, undefined, strategy);
  const reflect = pad.mode === 'reflect';
  const maps = [0, 1, 2].map((a) => axisMap(start[a]!, size[a]!, shape[a]!, reflect)) as [Int32Array, Int32Array, Int32Array];
  const out = allocArray(vol.dtype, size[0] * size[1] * size[2]);
  if (!reflect) {
    const value = pad.value;
    out.fill(value);
    if (out[0] !== value && !(Number.isNaN(value) && Number.isNaN(out[0]!))) {
      throw new MisfmError('ARGUMENT', `pad value ${value} is not representable as ${vol.dtype}`, { file: vol.file });
    }
  }
  // Source box covering every mapped index.
  const lo: number[] = [], len: number[] = [];
  for (const m of maps) {
    let a = Infinity, b = -Infinity;
    for (const v of m) if (v >= 0) { if (v < a) a = v; if (v > b) b = v; }
    if (a === Infinity) return out; // the crop misses the volume on this axis: all padding
    lo.push(a);
    len.push(b - a + 1);
  }
  const src = vol.readBox(lo as Box3, len as Box3, undefined, strategy);
  const [mz, my, mx] = maps;
  const [, sh, sw] = len as Box3;
  const [d, h, w] = size;
  // x positions that are in range, and whether they form one contiguous ascending run.
  let xFirst = -1, xLast = -1, contiguous = true;
  for (let k = 0; k < w; k++) {
    if (mx[k]! < 0) continue;
    if (xFirst < 0) xFirst = k;
    else if (mx[k]! !== mx[xLast]! + 1) contiguous = false;
    xLast = k;
  }
  if (reflect) contiguous = false;
  for (let z = 0; z < d; z++) {
    const sz = mz[z]!;
    if (sz < 0) continue;
    for (let y = 0; y < h; y++) {
      const sy = my[y]!;
      if (sy < 0) continue;
      const srow = ((sz - lo[0]!) * sh + (sy - lo[1]!)) * sw - lo[2]!;
      const orow = (z * h + y) * w;
      if (contiguous) {
        const s0 = srow + mx[xFirst]!;
        out.set(src.subarray(s0, s0 + xLast - xFirst + 1), orow + xFirst);
      } else {
        for (let x = 0; x < w; x++) {
          const sx = mx[x]!;
          if (sx >= 0) out[orow + x] = src[srow + sx]!;
        }
      }
    }
  }
  return out;
}
