/**
 * The VISTA3D paper's evaluation protocols on one labelled volume, on the working grid
 * (RAS, MONAI (x, y, z) order, image in [0, 1], labels as class-table indices):
 *
 * - `auto`: the automatic branch over the sliding window (constant blending), logit > 0 per class.
 * - `point`: one click per window from the centre of the target (the paper's "point" column): in
 *   each window, every evaluated class present there gets one positive click at the voxel nearest
 *   the centre of its eroded largest component (MONAI's validation sampler) and the point branch
 *   answers; windows average where they overlap. misfm deviation, stated: MONAI's validation also
 *   lets windows without the class vote −9999, which erases the class wherever such a window
 *   overlaps; here only windows holding a click for the class vote.
 * - `autoClick`: the automatic result plus one corrective click per window merged by Algorithm 1:
 *   in each window, per class, the larger of the automatic result's false-negative and
 *   false-positive regions gives one click (positive or negative) at its centre; the window's
 *   auto + point logits are merged by Algorithm 1 (`connected_components_combine`, patch given).
 * - `zeroShot`: a class the network never trained on, segmented by clicks alone over the whole
 *   volume (click-centred windows): the first click at the centre of the target, each later one at
 *   the centre of the larger error region of the current result; Dice after each click.
 */
import type { Tensor } from '../../engine/tensor.js';
import { fromTypedArray, noGrad } from '../../engine/creation.js';
import { disposeFeatures, type PointPrompts, type VISTA3D } from '../../models/vista3d/model.js';
import { SPECIAL_INDEX } from '../../models/vista3d/classes.js';
import { sampleCentrePoints } from '../../train/vista3d/sampler.js';
import { pointLogits } from './inferer.js';
import { padToWindow, slidingWindows, type Triple, type Window } from './windows.js';

export interface ProtocolOptions {
  /** Window (must be a multiple of the model's size divisor). */
  roi: Triple;
  /** Sliding-window overlap of the window protocols (bundle: 0.25). */
  overlap?: number;
  /** Called after each window or click. */
  onProgress?: (what: string, done: number, total: number) => void;
}

export interface WindowProtocolResult {
  /** Dice per class for each protocol. */
  auto: Record<number, number>;
  point: Record<number, number>;
  autoClick: Record<number, number>;
  /** Clicks placed by `autoClick` (positive, negative) and windows computed. */
  clicks: { positive: number; negative: number };
  windows: number;
}

/** Dice of `pred > 0` (NaN as background) against `labels == cls`; 1 when both are empty. */
export function diceOf(pred: Float32Array, labels: ArrayLike<number>, cls: number, offset = 0): number {
  let inter = 0, p = 0, g = 0;
  for (let j = 0; j < labels.length; j++) {
    const a = pred[offset + j]! > 0 ? 1 : 0, b = labels[j] === cls ? 1 : 0;
    inter += a & b; p += a; g += b;
  }
  return p + g === 0 ? 1 : (2 * inter) / (p + g);
}

function cropLabels(labels: ArrayLike<number>, size: Triple, w: Window): Uint8Array {
  const [wx, wy, wz] = [w.stop[0] - w.start[0], w.stop[1] - w.start[1], w.stop[2] - w.start[2]];
  const out = new Uint8Array(wx * wy * wz);
  for (let x = 0; x < wx; x++) for (let y = 0; y < wy; y++) for (let z = 0; z < wz; z++) {
    out[(x * wy + y) * wz + z] = labels[((x + w.start[0]) * size[1] + y + w.start[1]) * size[2] + z + w.start[2]]!;
  }
  return out;
}

/** Add window logits of B objects (object-major over the window) into full-volume accumulators. */
function accumulate(acc: Float32Array[], cnt: Float32Array[], size: Triple, w: Window, data: Float32Array, objects: readonly number[]): void {
  const [wx, wy, wz] = [w.stop[0] - w.start[0], w.stop[1] - w.start[1], w.stop[2] - w.start[2]];
  const wvol = wx * wy * wz;
  objects.forEach((k, b) => {
    const a = acc[k]!, c = cnt[k]!;
    for (let x = 0; x < wx; x++) for (let y = 0; y < wy; y++) {
      const dst = ((x + w.start[0]) * size[1] + y + w.start[1]) * size[2] + w.start[2];
      const src = b * wvol + (x * wy + y) * wz;
      for (let z = 0; z < wz; z++) { a[dst + z] = a[dst + z]! + data[src + z]!; c[dst + z] = c[dst + z]! + 1; }
    }
  });
}

const clickLabel = (cls: number, positive: boolean): number => (positive ? 1 : 0) + (SPECIAL_INDEX.includes(cls) ? 2 : 0);

/**
 * The centre click of the larger error region of `pred` (logits, > 0 is foreground) against
 * `labels == cls`: positive on false negatives, negative on false positives; null when perfect
 * (or when the region holds only `exclude`d voxels, the clicks placed before).
 */
export function correctiveClick(pred: Float32Array, offset: number, labels: ArrayLike<number>, cls: number, shape: Triple, exclude: readonly (readonly number[])[] = []): { coord: number[]; positive: boolean } | null {
  const n = labels.length;
  const err = new Uint8Array(n);
  let fn = 0, fp = 0;
  for (let j = 0; j < n; j++) {
    const p = pred[offset + j]! > 0, g = labels[j] === cls;
    if (g && !p) fn++; else if (!g && p) fp++;
  }
  if (fn === 0 && fp === 0) return null;
  const positive = fn >= fp;
  for (let j = 0; j < n; j++) {
    const p = pred[offset + j]! > 0, g = labels[j] === cls;
    err[j] = positive ? (g && !p ? 1 : 0) : (!g && p ? 1 : 0);
  }
  // Voxels clicked before are not clicked again (an unchanged error region would repeat the click).
  for (const e of exclude) err[(e[0]! * shape[1] + e[1]!) * shape[2] + e[2]!] = 0;
  if (!err.includes(1)) return null;
  const c = sampleCentrePoints(err, shape, [1]);
  return { coord: [...c.coords[0]![0]!], positive };
}

/**
 * The three window protocols on one volume. `image` [1,1,X,Y,Z] (at least the window on every
 * axis: pad smaller volumes first); `classes` the class-table indices evaluated (those absent
 * from `labels` score 1 when nothing is predicted).
 */
export function windowProtocols(model: VISTA3D, image: Tensor, labels: ArrayLike<number>, classes: readonly number[], o: ProtocolOptions): WindowProtocolResult {
  const s = image.shape;
  const size: Triple = [s[2]!, s[3]!, s[4]!];
  if (padToWindow(size, o.roi).paddedSize.some((p, a) => p !== size[a])) throw new Error(`windowProtocols: the volume ${size.join('x')} is smaller than the window ${o.roi.join('x')}; pad it first`);
  const vol = size[0] * size[1] * size[2];
  const windows = slidingWindows(size, o.roi, o.overlap ?? 0.25);
  const mk = (): Float32Array[] => { const a: Float32Array[] = []; for (const k of classes) a[k] = new Float32Array(vol); return a; };
  const [autoAcc, autoCnt, ptAcc, ptCnt, acAcc, acCnt] = [mk(), mk(), mk(), mk(), mk(), mk()];
  const clicks = { positive: 0, negative: 0 };
  windows.forEach((w, i) => noGrad(() => {
    const crop = image.crop([null, null, [w.start[0], w.stop[0]], [w.start[1], w.stop[1]], [w.start[2], w.stop[2]]]);
    const x = crop.contiguous(); crop.dispose();
    const f = model.encode(x, true, true); x.dispose();
    try {
      const wshape: Triple = [w.stop[0] - w.start[0], w.stop[1] - w.start[1], w.stop[2] - w.start[2]];
      const wvol = wshape[0] * wshape[1] * wshape[2];
      const lab = cropLabels(labels, size, w);
      // (a) automatic
      const at = model.decodeHeads(f, { classVector: classes });
      const auto = at.dataF32(); at.dispose();
      accumulate(autoAcc, autoCnt, size, w, auto, classes);
      // (b) one centre click per class present in the window, point-only
      const present = classes.filter((k) => lab.includes(k));
      if (present.length > 0) {
        const c = sampleCentrePoints(lab, wshape, present);
        const pts: PointPrompts = { coords: c.coords, labels: present.map((k) => [clickLabel(k, true)]) };
        const pt = model.decodeHeads(f, { points: pts, promptClass: present });
        const d = pt.dataF32(); pt.dispose();
        accumulate(ptAcc, ptCnt, size, w, d, present);
      }
      // (c) auto + one corrective click per class, merged by Algorithm 1 in this window
      const clicked: number[] = [], coords: number[][][] = [], labs: number[][] = [];
      classes.forEach((k, b) => {
        const cc = correctiveClick(auto, b * wvol, lab, k, wshape);
        if (cc === null) return;
        clicked.push(k);
        coords.push([[cc.coord[0]! + w.start[0], cc.coord[1]! + w.start[1], cc.coord[2]! + w.start[2]]]);
        labs.push([clickLabel(k, cc.positive)]);
        if (cc.positive) clicks.positive++; else clicks.negative++;
      });
      const merged = new Float32Array(auto);
      if (clicked.length > 0) {
        const t = model.decodeHeads(f, { classVector: clicked, points: { coords, labels: labs }, promptClass: clicked, patch: { start: w.start, stop: w.stop } });
        const d = t.dataF32(); t.dispose();
        clicked.forEach((k, j) => { const b = classes.indexOf(k); merged.set(d.subarray(j * wvol, (j + 1) * wvol), b * wvol); });
      }
      accumulate(acAcc, acCnt, size, w, merged, classes);
    } finally { disposeFeatures(f); }
    o.onProgress?.('windows', i + 1, windows.length);
  }));
  const score = (acc: Float32Array[], cnt: Float32Array[]): Record<number, number> => {
    const out: Record<number, number> = {};
    for (const k of classes) {
      const a = acc[k]!, c = cnt[k]!;
      for (let j = 0; j < vol; j++) a[j] = c[j]! > 0 ? a[j]! / c[j]! : -1;
      out[k] = diceOf(a, labels, k);
    }
    return out;
  };
  return { auto: score(autoAcc, autoCnt), point: score(ptAcc, ptCnt), autoClick: score(acAcc, acCnt), clicks, windows: windows.length };
}

export interface ZeroShotResult { cls: number; promptClass: number; dice: number[]; clicks: { coord: number[]; positive: boolean }[]; }

/**
 * Click-only segmentation of `cls` with up to `maxClicks` clicks (first at the centre of the
 * target, then at the centre of the larger error region), Dice after each. `promptClass` is the
 * class the point head is told (default `cls`; above lastSupported selects the zero-shot token).
 */
export function zeroShotClicks(model: VISTA3D, image: Tensor, labels: ArrayLike<number>, cls: number, maxClicks: number, o: ProtocolOptions & { promptClass?: number }): ZeroShotResult {
  const s = image.shape;
  const size: Triple = [s[2]!, s[3]!, s[4]!];
  const promptClass = o.promptClass ?? cls;
  const clicks: { coord: number[]; positive: boolean }[] = [];
  const dice: number[] = [];
  const gt = new Uint8Array(labels.length);
  for (let j = 0; j < gt.length; j++) gt[j] = labels[j] === cls ? 1 : 0;
  if (!gt.includes(1)) return { cls, promptClass, dice, clicks };
  const first = sampleCentrePoints(gt, size, [1]);
  clicks.push({ coord: [...first.coords[0]![0]!], positive: true });
  for (let n = 1; n <= maxClicks; n++) {
    const r = pointLogits({ model }, image, { coords: clicks.map((c) => c.coord), labels: clicks.map((c) => clickLabel(cls, c.positive)) }, { roi: o.roi, promptClass: [promptClass] });
    dice.push(diceOf(r.logits, gt, 1));
    o.onProgress?.('clicks', n, maxClicks);
    if (n === maxClicks) break;
    const next = correctiveClick(r.logits, 0, gt, 1, size, clicks.map((c) => c.coord));
    if (next === null) { for (let k = n + 1; k <= maxClicks; k++) dice.push(dice[dice.length - 1]!); break; }
    clicks.push(next);
  }
  return { cls, promptClass, dice, clicks };
}

/** Zero-pad a [1,1,X,Y,Z] volume and its labels to at least the window (symmetric, as MONAI). */
export function padVolumeToWindow(image: Float32Array, labels: Uint8Array, size: Triple, roi: Triple): { image: Tensor; labels: Uint8Array; size: Triple } {
  const p = padToWindow(size, roi);
  const ps = p.paddedSize as Triple;
  const img = new Float32Array(ps[0] * ps[1] * ps[2]), lab = new Uint8Array(img.length);
  for (let x = 0; x < size[0]; x++) for (let y = 0; y < size[1]; y++) {
    const src = (x * size[1] + y) * size[2];
    const dst = ((x + p.before[0]) * ps[1] + y + p.before[1]) * ps[2] + p.before[2];
    img.set(image.subarray(src, src + size[2]), dst);
    lab.set(labels.subarray(src, src + size[2]), dst);
  }
  return { image: fromTypedArray(img, [1, 1, ...ps]), labels: lab, size: ps };
}
