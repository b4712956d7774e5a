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
 * The windows `point_based_window_inferer` computes for clicks `points` (padded coordinates), in its
 * order: one centred window per click (`centerOnly`), else 27 (three per axis, `margin` from the edge).
 * Repeated windows are listed as often as MONAI computes them; `unique` drops repeats.
 */
export function clickWindows(points: readonly (readonly number[])[], roi: Triple, size: Triple, centerOnly = true, margin = 5, unique = false): Window[] {
  const out: Window[] = [];
  const seen = new Set<string>();
  for (const p of points) {
    const per = [0, 1, 2].map((a) => {
      const [l, r] = centred(p[a]!, roi[a]!, size[a]!);
      if (centerOnly) return [[l, r]];
      const lm = Math.max(0, p[a]! - roi[a]! + margin), rm = Math.min(size[a]!, p[a]! + roi[a]! - margin);
      return [[lm, lm + roi[a]!], [rm - roi[a]!, rm], [l, r]];
    });
    for (const x of per[0]!) for (const y of per[1]!) for (const z of per[2]!) {
      const w: Window = { start: [x[0]!, y[0]!, z[0]!], stop: [x[1]!, y[1]!, z[1]!] };
      const k = windowKey(w);
      if (unique && seen.has(k)) continue;
      seen.add(k);
      out.push(w);
    }
  }
  return out;
}
