/**
 * Body-region crop for CT (PyMIC get_human_region_from_ct, used by the VolF LUNA preprocessing):
 *   1. mask = voxels > -600 HU;
 *   2. 2-D density map = fraction of the slices (along the axial voxel axis) where the mask is
 *      set, thresholded at > 0.6;
 *   3. binary opening with a 3x3 square, 2 iterations (scipy semantics: erosions see outside
 *      pixels as background, so a region touching the image border loses that row);
 *   4. largest 4-connected component;
 *   5. its in-plane bounding box; the axial axis is kept whole.
 * Returns the box, so that results on the crop can be pasted back with `pasteBack`.
 */
import type { Volume } from '../io/volume.js';
import { MisfmError } from '../util/errors.js';
import { cropToBox, type Box } from './box.js';
import { checkVolume } from './grid.js';

export interface BodyCropOptions {
  /** Intensity threshold in HU (default -600). */
  threshold?: number;
  /** Minimum fraction of slices above threshold (default 0.6). */
  density?: number;
  /** Opening iterations with the 3x3 square (default 2). */
  openingIterations?: number;
  /** Voxel axis projected away (the axial one): 'auto' (default) picks the one closest to world S-I. */
  axis?: 0 | 1 | 2 | 'auto';
  /** Extra voxels around the in-plane box (default 0), clamped to the volume. */
  margin?: number;
}

/** The voxel axis whose direction is closest to world z (superior-inferior). */
export function axialAxis(v: Pick<Volume, 'direction'>): 0 | 1 | 2 {
  const d = v.direction;
  const z = [Math.abs(d[6]), Math.abs(d[7]), Math.abs(d[8])];
  return z[0]! >= z[1]! && z[0]! >= z[2]! ? 0 : z[1]! >= z[2]! ? 1 : 2;
}

/** One erosion (or dilation) of a w x h binary image with the 3x3 square; outside counts as 0. */
function morph3x3(src: Uint8Array, w: number, h: number, erode: boolean): Uint8Array {
  const out = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let acc = erode ? 1 : 0;
      for (let dy = -1; dy <= 1 && acc === (erode ? 1 : 0); dy++) {
        const yy = y + dy;
        for (let dx = -1; dx <= 1; dx++) {
          const xx = x + dx;
          const inside = yy >= 0 && yy < h && xx >= 0 && xx < w;
          const val = inside ? src[yy * w + xx]! : 0;
          if (erode && val === 0) { acc = 0; break; }
          if (!erode && val !== 0) { acc = 1; break; }
        }
      }
      out[y * w + x] = acc;
    }
  }
  return out;
}

/** scipy.ndimage.binary_opening(img, ones((3,3)), iterations) with border_value 0. */
export function binaryOpening2d(img: Uint8Array, w: number, h: number, iterations = 1): Uint8Array {
  let m = img;
  for (let i = 0; i < iterations; i++) m = morph3x3(m, w, h, true);
  for (let i = 0; i < iterations; i++) m = morph3x3(m, w, h, false);
  return m;
}

/**
 * Component labels (1..count, 0 = background) of a binary w x h image, 4-connected, numbered in
 * scan order, with each component's size. Breadth-first search over a flat queue.
 */
export function components2d(img: Uint8Array, w: number, h: number): { labels: Int32Array; sizes: number[] } {
  const labels = new Int32Array(w * h);
  const queue = new Int32Array(w * h);
  const sizes: number[] = [0];
  for (let start = 0; start < w * h; start++) {
    if (img[start] === 0 || labels[start] !== 0) continue;
    const id = sizes.length;
    let head = 0, tail = 0;
    queue[tail++] = start;
    labels[start] = id;
    while (head < tail) {
      const p = queue[head++]!;
      const x = p % w;
      const nb = [x > 0 ? p - 1 : -1, x < w - 1 ? p + 1 : -1, p >= w ? p - w : -1, p + w < w * h ? p + w : -1];
      for (const q of nb) if (q >= 0 && img[q] !== 0 && labels[q] === 0) { labels[q] = id; queue[tail++] = q; }
    }
    sizes.push(tail);
  }
  return { labels, sizes };
}

/** The largest component of a binary image (the first in scan order on ties), as a 0/1 image. */
export function largestComponent2d(img: Uint8Array, w: number, h: number): Uint8Array {
  const { labels, sizes } = components2d(img, w, h);
  let best = 0;
  for (let i = 1; i < sizes.length; i++) if (sizes[i]! > (sizes[best] ?? 0)) best = i;
  const out = new Uint8Array(w * h);
  if (best === 0) return out;
  for (let i = 0; i < w * h; i++) out[i] = labels[i] === best ? 1 : 0;
  return out;
}

/** The in-plane axes (u fastest in memory order) for a projected axis. */
function planeAxes(axis: 0 | 1 | 2): [number, number] {
  return axis === 0 ? [1, 2] : axis === 1 ? [0, 2] : [0, 1];
}

/**
 * The body mask after step 4 as a 2-D image over the two in-plane voxel axes (u = the lower
 * axis index, fastest), with its width/height and the projected axis.
 */
export function bodyMask2d(v: Volume, o: BodyCropOptions = {}): { mask: Uint8Array; width: number; height: number; axis: 0 | 1 | 2 } {
  checkVolume('bodyMask2d', v);
  const thr = o.threshold ?? -600, dens = o.density ?? 0.6;
  const axis = o.axis === undefined || o.axis === 'auto' ? axialAxis(v) : o.axis;
  const [ua, va] = planeAxes(axis);
  const w = v.size[ua]!, h = v.size[va]!, nAx = v.size[axis]!;
  const stride = [1, v.size[0], v.size[0] * v.size[1]];
  const su = stride[ua]!, sv = stride[va]!, sa = stride[axis]!;
  const count = new Uint32Array(w * h);
  const src = v.data;
  for (let a = 0; a < nAx; a++) {
    for (let y = 0; y < h; y++) {
      let p = a * sa + y * sv;
      const row = y * w;
      for (let x = 0; x < w; x++, p += su) if (src[p]! > thr) count[row + x]!++;
    }
  }
  let mask: Uint8Array = new Uint8Array(w * h);
  for (let i = 0; i < w * h; i++) mask[i] = count[i]! / nAx > dens ? 1 : 0;
  mask = binaryOpening2d(mask, w, h, o.openingIterations ?? 2);
  mask = largestComponent2d(mask, w, h);
  return { mask, width: w, height: h, axis };
}

/** The body box (voxel (x,y,z) ranges; the axial axis whole). Throws when no body is found. */
export function bodyBox(v: Volume, o: BodyCropOptions = {}): Box {
  const { mask, width: w, height: h, axis } = bodyMask2d(v, o);
  let u0 = w, u1 = -1, v0 = h, v1 = -1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (mask[y * w + x] === 0) continue;
      if (x < u0) u0 = x;
      if (x > u1) u1 = x;
      if (y < v0) v0 = y;
      if (y > v1) v1 = y;
    }
  }
  if (u1 < 0) {
    throw new MisfmError('DATA', `bodyBox: no body region found (no in-plane pixel is above ${o.threshold ?? -600} in more than ${(o.density ?? 0.6) * 100}% of the slices after opening); is this a CT in HU?`);
  }
  const m = o.margin ?? 0;
  const [ua, va] = planeAxes(axis);
  const start = [0, 0, 0] as Box['start'], end = [...v.size] as Box['end'];
  start[ua] = Math.max(0, u0 - m); end[ua] = Math.min(w, u1 + 1 + m);
  start[va] = Math.max(0, v0 - m); end[va] = Math.min(h, v1 + 1 + m);
  return { start, end };
}

/** Crop a CT to its body region: the cropped Volume (origin moved to the box corner) and the box. */
export function bodyCrop(v: Volume, o: BodyCropOptions = {}): { volume: Volume; box: Box } {
  const box = bodyBox(v, o);
  return { volume: cropToBox(v, box), box };
}
