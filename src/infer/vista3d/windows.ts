/**
 * VISTA3D window geometry as MONAI computes it: the automatic sliding window
 * (`_get_scan_interval` + `dense_patch_slices`, distinct windows, axis 0 outermost), the
 * click-centred windows of `point_based_window_inferer`, and the symmetric zero padding of images
 * smaller than the window. Triples are the three tensor axes of the working grid.
 */
import { MisfmError } from '../../util/errors.js';
import { padToWindow } from '../windows.js';

export type Triple = readonly [number, number, number];
export interface Window { start: [number, number, number]; stop: [number, number, number]; }

export function windowKey(w: Window): string { return `${w.start.join(',')}:${w.stop.join(',')}`; }

/** The window a `windowKey` names. */
export function parseWindowKey(k: string): Window {
  const [a, b] = k.split(':').map((t) => t.split(',').map(Number) as [number, number, number]);
  return { start: a!, stop: b! };
}

/** Symmetric padding up to the window: front floor(deficit/2), back the rest (MONAI and misfm agree). */
export { padToWindow };

/** MONAI's window starts of one axis for an image already at least `roi` long. */
function axisStarts(size: number, roi: number, overlap: number): number[] {
  const interval = roi === size ? roi : Math.max(1, Math.trunc(roi * (1 - overlap)));
  const num = Math.ceil(size / interval);
  let last = 0;
  for (let d = 0; d < num; d++) { last = d; if (d * interval + roi >= size) break; }
  const out: number[] = [];
  for (let i = 0; i <= last; i++) { const s = i * interval; out.push(s - Math.max(s + roi - size, 0)); }
  return out;
}

/** Windows of the automatic sliding window over a (padded) image of `size`, in MONAI's order. */
export function slidingWindows(size: Triple, roi: Triple, overlap: number): Window[] {
  if (!(overlap >= 0 && overlap < 1)) throw new MisfmError('ARGUMENT', `VISTA3D sliding window: overlap must be in [0, 1), got ${overlap}`);
  const a = [0, 1, 2].map((i) => axisStarts(size[i]!, roi[i]!, overlap));
  const out: Window[] = [];
  for (const x of a[0]!) for (const y of a[1]!) for (const z of a[2]!) {
    out.push({ start: [x, y, z], stop: [x + roi[0], y + roi[1], z + roi[2]] });
  }
  return out;
}

/** MONAI's `_get_window_idx_c`: the roi-long window around coordinate p on an axis of length s. */
function centred(p: number, roi: number, s: number): [number, number] {
  const h = Math.floor(roi / 2);
  if (p - h < 0) return [0, roi];
  if (p + h > s) return [s - roi, s];
  return [Math.trunc(p) - h, Math.trunc(p) + h];
}

/**
 * misfm's cache-aware click window (not MONAI's): among `computed` windows of the click window's
 * size, the one holding point `p` at least `margin` voxels inside on every axis (a face on the
 * image border needs no margin), with its centre nearest `p`; null when none does.
 */
export function reusableWindow(p: readonly number[], roi: Triple, size: Triple, computed: readonly Window[], margin: number): Window | null {
  let best: Window | null = null, bestD = Infinity;
  for (const w of computed) {
    let d = 0, ok = true;
    for (let a = 0; a < 3 && ok; a++) {
      const s = w.start[a]!, e = w.stop[a]!, x = p[a]!;
      ok = e - s === roi[a]! && x >= s && x < e && (s === 0 || x - s >= margin) && (e === size[a]! || e - 1 - x >= margin);
      d += (x - (s + e) / 2) ** 2;
    }
    if (ok && d < bestD) { best = w; bestD = d; }
  }
  return best;
}

/** Click windows reused from computed ones (`clickWindows`' `reuse`). */
export interface WindowReuse {
  /** Windows whose point features are at hand (the feature cache's). */
  computed: readonly Window[];
  /** Voxels a click must lie inside a computed window (on faces not on the image border). */
  margin: number;
}

/**
 * The windows `point_based_window_inferer` computes for clicks `points` (padded coordinates), in its
 * order: one centred window per click (`centerOnly`), else 27 (three per axis, `margin` from the edge).
 * Repeated windows are listed as often as MONAI computes them; `unique` drops repeats.
 * With `reuse` (misfm, centerOnly only), a click whose centred window is not computed takes a
 * computed window, or one placed for an earlier click of the list, that holds it well inside
 * (`reusableWindow`), so clicks near earlier ones need no new encoder pass.
 */
export function clickWindows(points: readonly (readonly number[])[], roi: Triple, size: Triple, centerOnly = true, margin = 5, unique = false, reuse?: WindowReuse): Window[] {
  const out: Window[] = [];
  const seen = new Set<string>();
  const known = reuse === undefined ? null : new Set(reuse.computed.map(windowKey));
  for (const p of points) {
    const per = [0, 1, 2].map((a) => {
      const [l, r] = centred(p[a]!, roi[a]!, size[a]!);
      if (centerOnly) return [[l, r]];
      const lm = Math.max(0, p[a]! - roi[a]! + margin), rm = Math.min(size[a]!, p[a]! + roi[a]! - margin);
      return [[lm, lm + roi[a]!], [rm - roi[a]!, rm], [l, r]];
    });
    for (const x of per[0]!) for (const y of per[1]!) for (const z of per[2]!) {
      let w: Window = { start: [x[0]!, y[0]!, z[0]!], stop: [x[1]!, y[1]!, z[1]!] };
      if (centerOnly && known !== null && !known.has(windowKey(w))) w = reusableWindow(p, roi, size, [...reuse!.computed, ...out], reuse!.margin) ?? w;
      const k = windowKey(w);
      if (unique && seen.has(k)) continue;
      seen.add(k);
      out.push(w);
    }
  }
  return out;
}
