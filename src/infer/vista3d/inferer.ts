/**
 * VISTA3D inference on a preprocessed image tensor [1, C, X, Y, Z] (MONAI's axis order): the
 * automatic sliding window, the click-centred window inferer with Algorithm 1, and the bundle's
 * post-processing. MONAI's behaviour is the default; `stitch: 'mean'`, `strictInside: false` and
 * `mergeMode: 'corrected'` are the corrected alternatives of spec §12.
 *
 * Every window goes through `windowFeatures`, which serves the image features from the
 * FeatureCache when the window was computed before, so a second click in a computed window runs
 * only the point head.
 */
import type { Tensor } from '../../engine/tensor.js';
import { noGrad } from '../../engine/creation.js';
import { pad as padTensor } from '../../engine/functional.js';
import { MisfmError } from '../../util/errors.js';
import { disposeFeatures, type ImageFeatures, type PointPrompts, type VISTA3D } from '../../models/vista3d/model.js';
import type { MergeMode } from '../../models/vista3d/merge.js';
import { labelStack } from '../../models/vista3d/merge.js';
import { gaussianImportanceMap } from '../windows.js';
import type { FeatureCache } from './cache.js';
import { clickWindows, padToWindow, slidingWindows, windowKey, type Triple, type Window } from './windows.js';

export interface InferStats { windowsComputed: number; cacheHits: number; }

/** Model and (optional) feature cache for one image. */
export interface InferContext {
  model: VISTA3D;
  cache?: FeatureCache | null;
  /** Called after each window the image encoder ran on (not for cache hits): diagnostics and tests. */
  onEncode?: (w: Window) => void;
}

function spatial(image: Tensor): Triple {
  const s = image.shape;
  if (s.length !== 5 || s[0] !== 1) throw new MisfmError('ARGUMENT', `VISTA3D inference: image must be [1, C, X, Y, Z], got [${s.join(',')}]`);
  return [s[2]!, s[3]!, s[4]!];
}

/** The image zero-padded up to the window (MONAI pads with 0), and the padding. */
function padded(image: Tensor, roi: Triple): { img: Tensor; before: [number, number, number]; size: Triple; owned: boolean } {
  const p = padToWindow(spatial(image), roi);
  if (p.before.every((v) => v === 0) && p.after.every((v) => v === 0)) return { img: image, before: p.before, size: p.paddedSize, owned: false };
  const img = padTensor(image, [p.before[2], p.after[2], p.before[1], p.after[1], p.before[0], p.after[0]], 'constant', 0);
  return { img, before: p.before, size: p.paddedSize, owned: true };
}

/** Features of one window: from the cache when present, else encoded (and cached when it fits). */
function windowFeatures(ctx: InferContext, img: Tensor, w: Window, needPoint: boolean, needAuto: boolean, stats: InferStats): { f: ImageFeatures; owned: boolean } {
  const key = windowKey(w);
  const hit = ctx.cache?.get(key, needPoint, needAuto);
  if (hit !== undefined) { stats.cacheHits++; return { f: hit, owned: false }; }
  const crop = img.crop([null, null, [w.start[0], w.stop[0]], [w.start[1], w.stop[1]], [w.start[2], w.stop[2]]]);
  const x = crop.contiguous(); crop.dispose();
  // Only the branches asked for: a click does not pay for the class decoder. A later automatic pass
  // over this window misses the cache (no class branch) and encodes both, replacing the entry.
  const f = ctx.model.encode(x, needPoint, needAuto); x.dispose();
  stats.windowsComputed++;
  ctx.onEncode?.(w);
  if (ctx.cache != null && ctx.cache.put(key, f)) return { f, owned: false };
  return { f, owned: true };
}

function addWindow(acc: Float32Array, size: Triple, w: Window, data: Float32Array, weight: Float32Array | null, objects: number): void {
  const [X, Y, Z] = size;
  const [wx, wy, wz] = [w.stop[0] - w.start[0], w.stop[1] - w.start[1], w.stop[2] - w.start[2]];
  const wvol = wx * wy * wz;
  for (let b = 0; b < objects; b++) for (let x = 0; x < wx; x++) for (let y = 0; y < wy; y++) {
    const dst = b * X * Y * Z + ((x + w.start[0]) * Y + y + w.start[1]) * Z + w.start[2];
    const src = b * wvol + (x * wy + y) * wz;
    for (let z = 0; z < wz; z++) acc[dst + z] = acc[dst + z]! + (weight === null ? data[src + z]! : data[src + z]! * weight[(x * wy + y) * wz + z]!);
  }
}

/** Crop `objects` stacked volumes of `size` by `before` to `inner`. */
function unpad(a: Float32Array, objects: number, size: Triple, before: readonly number[], inner: Triple): Float32Array {
  if (size.every((s, i) => s === inner[i])) return a;
  const [X, Y, Z] = size, [x0, y0, z0] = before as [number, number, number];
  const out = new Float32Array(objects * inner[0] * inner[1] * inner[2]);
  for (let b = 0; b < objects; b++) for (let x = 0; x < inner[0]; x++) for (let y = 0; y < inner[1]; y++) {
    const src = b * X * Y * Z + ((x + x0) * Y + y + y0) * Z + z0;
    out.set(a.subarray(src, src + inner[2]), ((b * inner[0] + x) * inner[1] + y) * inner[2]);
  }
  return out;
}

export interface AutoOptions {
  /** Window (MONAI bundle: 128³). */
  roi: Triple;
  /** Overlap (bundle: 0.25, MONAI's default; the research scripts use 0.625). */
  overlap?: number;
  /** 'constant' (bundle) or 'gaussian' (research scripts; misfm's Gaussian map, sigma 1/8 of the window). */
  blend?: 'constant' | 'gaussian';
  onProgress?: (done: number, total: number) => void;
}

/** Automatic segmentation logits [B, X, Y, Z] (object-major) for class indices `classes`. */
export function autoLogits(ctx: InferContext, image: Tensor, classes: readonly number[], o: AutoOptions): { logits: Float32Array } & InferStats {
  if (classes.length === 0) throw new MisfmError('ARGUMENT', 'VISTA3D automatic segmentation needs at least one class');
  const inner = spatial(image);
  const { img, before, size, owned } = padded(image, o.roi);
  const stats: InferStats = { windowsComputed: 0, cacheHits: 0 };
  try {
    const windows = slidingWindows(size, o.roi, o.overlap ?? 0.25);
    const weight = (o.blend ?? 'constant') === 'gaussian' ? gaussianImportanceMap(o.roi, 0.125) : null;
    const vol = size[0] * size[1] * size[2];
    const B = classes.length;
    const acc = new Float32Array(B * vol), count = new Float32Array(vol);
    const ones = new Float32Array(o.roi[0] * o.roi[1] * o.roi[2]).fill(1);
    windows.forEach((w, i) => {
      noGrad(() => {
        const { f, owned: mine } = windowFeatures(ctx, img, w, false, true, stats);
        try {
          const t = ctx.model.decodeHeads(f, { classVector: classes });
          const d = t.dataF32(); t.dispose();
          addWindow(acc, size, w, d, weight, B);
          addWindow(count, size, w, weight ?? ones, null, 1);
        } finally { if (mine) disposeFeatures(f); }
      });
      o.onProgress?.(i + 1, windows.length);
    });
    for (let b = 0; b < B; b++) for (let j = 0; j < vol; j++) acc[b * vol + j] = acc[b * vol + j]! / count[j]!;
    return { logits: unpad(acc, B, size, before, inner), ...stats };
  } finally { if (owned) img.dispose(); }
}

export interface PointOptions {
  roi: Triple;
  /** With a class (supported, ≤ lastSupported): in-window auto + point merged by Algorithm 1. */
  classVector?: readonly number[] | null;
  /** Class of the clicked object (zero-shot above lastSupported). */
  promptClass?: readonly number[] | null;
  /** Earlier logits of the object over the image [X·Y·Z]: merged by Algorithm 1 (point-only) and kept outside the windows. */
  prevMask?: Float32Array | null;
  /** 'sum' (MONAI: overlapping windows add up, repeated windows count again) or 'mean'. */
  stitch?: 'sum' | 'mean';
  /** MONAI drops a click on a window's first voxel; false keeps it. */
  strictInside?: boolean;
  mergeMode?: MergeMode;
  centerOnly?: boolean;
  margin?: number;
  /** Use only clicks from this index to place windows (all clicks still prompt every window). */
  pointStart?: number;
  /**
   * misfm, not MONAI: a click whose centred window is not in the feature cache uses a cached window
   * (or one placed for an earlier click) holding it at least this many voxels inside, so it costs the
   * point head alone; such windows are computed once (no repeats summed). Off (MONAI's windows) by default.
   */
  reuseMargin?: number | null;
  onProgress?: (done: number, total: number) => void;
}

/** A box of the (unpadded) image: start and size per axis. */
export interface Box { start: Triple; size: Triple; }

/** Click logits over the box the click windows cover, with the earlier logits it used. */
export interface BoxLogits extends InferStats {
  /** Bounding box of the click windows on the image (clipped to it). */
  box: Box;
  /** Logits over `box` (C order): NaN, or the earlier logits, where no window reached. */
  logits: Float32Array;
}

/**
 * MONAI's point_based_window_inferer for ONE object, computed only over the bounding box of its
 * click windows (what `pointLogits` returns outside the box is the earlier logits or NaN, untouched
 * by the clicks). `prev` gives the earlier logits on a box of the image (C order) when the clicks
 * edit an earlier result. A window repeated by several clicks is run once and added as often as
 * MONAI adds it, in MONAI's order, so the sums are the same to the bit.
 */
export function pointLogitsInBox(ctx: InferContext, image: Tensor, points: { coords: readonly (readonly number[])[]; labels: readonly number[] },
  o: Omit<PointOptions, 'prevMask'> & { prev?: ((box: Box) => Float32Array) | null }): BoxLogits {
  const inner = spatial(image);
  const { img, before, size, owned } = padded(image, o.roi);
  const stats: InferStats = { windowsComputed: 0, cacheHits: 0 };
  try {
    const shifted = points.coords.map((c) => [c[0]! + before[0], c[1]! + before[1], c[2]! + before[2]]);
    const prompts: PointPrompts = { coords: [shifted], labels: [[...points.labels]] };
    const mean = (o.stitch ?? 'sum') === 'mean';
    const reuse = o.reuseMargin != null && ctx.cache != null ? { computed: ctx.cache.windows(true), margin: o.reuseMargin } : undefined;
    const windows = clickWindows(shifted.slice(o.pointStart ?? 0), o.roi, size, o.centerOnly ?? true, o.margin ?? 5, mean || reuse !== undefined, reuse);
    if (windows.length === 0) return { box: { start: [0, 0, 0], size: [0, 0, 0] }, logits: new Float32Array(0), ...stats };
    // R: the windows' bounding box on the padded grid; everything below works on R alone.
    const rs = [0, 1, 2].map((a) => Math.min(...windows.map((w) => w.start[a]!))) as [number, number, number];
    const re = [0, 1, 2].map((a) => Math.max(...windows.map((w) => w.stop[a]!))) as [number, number, number];
    const rsize: Triple = [re[0] - rs[0], re[1] - rs[1], re[2] - rs[2]];
    const rvol = rsize[0] * rsize[1] * rsize[2];
    // The image part of R (unpadded coordinates).
    const is = [0, 1, 2].map((a) => Math.max(rs[a]!, before[a]!) - before[a]!) as [number, number, number];
    const ie = [0, 1, 2].map((a) => Math.min(re[a]!, before[a]! + inner[a]!) - before[a]!) as [number, number, number];
    const box: Box = { start: is, size: [ie[0] - is[0], ie[1] - is[1], ie[2] - is[2]] };
    let prev: Float32Array | null = null;
    if (o.prev != null) {
      // Padding voxels read 0, as in MONAI's padded prev_mask.
      prev = new Float32Array(rvol);
      const p = o.prev(box);
      const [bx, by, bz] = box.size;
      for (let x = 0; x < bx; x++) for (let y = 0; y < by; y++) {
        const dst = ((x + is[0] + before[0] - rs[0]) * rsize[1] + y + is[1] + before[1] - rs[1]) * rsize[2] + is[2] + before[2] - rs[2];
        prev.set(p.subarray((x * by + y) * bz, (x * by + y + 1) * bz), dst);
      }
    }
    const local = (w: Window): Window => ({ start: [w.start[0] - rs[0], w.start[1] - rs[1], w.start[2] - rs[2]], stop: [w.stop[0] - rs[0], w.stop[1] - rs[1], w.stop[2] - rs[2]] });
    const acc = new Float32Array(rvol), hit = new Float32Array(rvol);
    const ones = new Float32Array(o.roi[0] * o.roi[1] * o.roi[2]).fill(1);
    const cls = o.classVector ?? null;
    const uses = new Map<string, number>();
    for (const w of windows) uses.set(windowKey(w), (uses.get(windowKey(w)) ?? 0) + 1);
    const memo = new Map<string, Float32Array>();
    windows.forEach((w, i) => {
      const key = windowKey(w);
      let d = memo.get(key);
      if (d === undefined) {
        d = noGrad(() => {
          const { f, owned: mine } = windowFeatures(ctx, img, w, true, cls !== null, stats);
          try {
            const t = ctx.model.decodeHeads(f, {
              classVector: cls, points: prompts, promptClass: o.promptClass ?? null, patch: w,
              prevMask: prev === null ? null : { data: prev, count: 1, shape: rsize, start: rs }, mergeMode: o.mergeMode ?? 'monai', strictInside: o.strictInside ?? true,
            });
            try { return t.dataF32(); } finally { t.dispose(); }
          } finally { if (mine) disposeFeatures(f); }
        });
      }
      const left = uses.get(key)! - 1;
      uses.set(key, left);
      if (left > 0) memo.set(key, d); else memo.delete(key);
      const lw = local(w);
      addWindow(acc, rsize, lw, d, null, 1);
      if (mean) addWindow(hit, rsize, lw, ones, null, 1);
      else markWindow(hit, rsize, lw);
      o.onProgress?.(i + 1, windows.length);
    });
    const out = new Float32Array(rvol);
    for (let j = 0; j < rvol; j++) out[j] = hit[j] === 0 && prev !== null ? prev[j]! : acc[j]! / hit[j]!;
    const rb = [is[0] + before[0] - rs[0], is[1] + before[1] - rs[1], is[2] + before[2] - rs[2]];
    return { box, logits: unpad(out, 1, rsize, rb, box.size), ...stats };
  } finally { if (owned) img.dispose(); }
}

/** The box `b` of a C-order volume of `size`. */
export function cropBox(data: Float32Array, size: Triple, b: Box): Float32Array {
  const [, Y, Z] = size;
  const [bx, by, bz] = b.size;
  const out = new Float32Array(bx * by * bz);
  for (let x = 0; x < bx; x++) for (let y = 0; y < by; y++) {
    const src = ((x + b.start[0]) * Y + y + b.start[1]) * Z + b.start[2];
    out.set(data.subarray(src, src + bz), (x * by + y) * bz);
  }
  return out;
}

/**
 * MONAI's point_based_window_inferer for ONE object: logits [X·Y·Z], NaN where no window reached
 * (or the prevMask value there). `points` are voxel indices of the unpadded image.
 */
export function pointLogits(ctx: InferContext, image: Tensor, points: { coords: readonly (readonly number[])[]; labels: readonly number[] }, o: PointOptions): { logits: Float32Array } & InferStats {
  const inner = spatial(image);
  const pm = o.prevMask ?? null;
  if (pm !== null && pm.length !== inner[0] * inner[1] * inner[2]) throw new MisfmError('ARGUMENT', `VISTA3D click inference: prevMask has ${pm.length} voxels, the image ${inner.join('x')}`);
  const r = pointLogitsInBox(ctx, image, points, { ...o, prev: pm === null ? null : (b) => cropBox(pm, inner, b) });
  const out = pm !== null ? pm.slice() : new Float32Array(inner[0] * inner[1] * inner[2]).fill(Number.NaN);
  const [, Y, Z] = inner;
  const [bx, by, bz] = r.box.size;
  for (let x = 0; x < bx; x++) for (let y = 0; y < by; y++) {
    out.set(r.logits.subarray((x * by + y) * bz, (x * by + y + 1) * bz), ((x + r.box.start[0]) * Y + y + r.box.start[1]) * Z + r.box.start[2]);
  }
  return { logits: out, windowsComputed: r.windowsComputed, cacheHits: r.cacheHits };
}

function markWindow(m: Float32Array, size: Triple, w: Window): void {
  for (let x = w.start[0]; x < w.stop[0]; x++) for (let y = w.start[1]; y < w.stop[1]; y++) {
    const base = (x * size[1] + y) * size[2];
    m.fill(1, base + w.start[2], base + w.stop[2]);
  }
}

/**
 * The bundle's VistaPostTransformd on logits of B objects: with clicks and no label prompt, keep
 * only components holding a positive click (others set to the mean logit of the rest); then
 * argmax over objects (0 where every logit ≤ 0), or > 0 for one object; values mapped to
 * `labelPrompt`. NaN survives as NaN (the bundle writes it as 255).
 */
export function vistaPostprocess(logits: Float32Array, objects: number, shape: Triple, labelPrompt: readonly number[] | null, points?: PointPrompts | null): Float32Array {
  const vol = shape[0] * shape[1] * shape[2];
  const pred = logits.slice();
  if (points != null && labelPrompt === null) {
    for (let c = 0; c < points.coords.length && c < objects; c++) {
      const pos = points.coords[c]!.filter((_, n) => points.labels[c]![n] === 3).concat(points.coords[c]!.filter((_, n) => points.labels[c]![n] === 1));
      if (pos.length === 0) continue;
      const obj = pred.subarray(c * vol, (c + 1) * vol);
      const bin = new Uint8Array(vol);
      for (let j = 0; j < vol; j++) bin[j] = obj[j]! > 0 ? 1 : 0;
      const ids = labelStack(bin, 1, shape, 'per-object');
      const keep = new Set<number>();
      for (const p of pos) {
        const [x, y, z] = p.map((v) => Math.round(v)) as [number, number, number];
        const id = ids[(x * shape[1] + y) * shape[2] + z]!;
        if (id !== 0) keep.add(id);
      }
      let sum = 0, n = 0;
      for (let j = 0; j < vol; j++) if (!keep.has(ids[j]!) || ids[j] === 0) { if (!Number.isNaN(obj[j]!)) { sum = Math.fround(sum + obj[j]!); n++; } }
      const fill = Math.fround(sum / n);
      for (let j = 0; j < vol; j++) if (bin[j] === 1 && !keep.has(ids[j]!)) obj[j] = fill;
    }
  }
  for (let j = 0; j < pred.length; j++) if (pred[j]! < 0) pred[j] = 0;
  const out = new Float32Array(vol);
  for (let j = 0; j < vol; j++) {
    let v: number;
    if (objects > 1) {
      let best = 0, bestV = pred[j]!, bk = true;
      for (let b = 0; b < objects; b++) {
        const x = pred[b * vol + j]!;
        if (!(x <= 0)) bk = false;
        if (Number.isNaN(bestV)) continue;
        if (Number.isNaN(x) || x > bestV) { best = b; bestV = x; }
      }
      v = bk ? 0 : best + 1;
    } else {
      const x = pred[j]!;
      v = Number.isNaN(x) ? Number.NaN : x > 0 ? 1 : x;
    }
    out[j] = labelPrompt === null || Number.isNaN(v) ? v : v === 0 ? 0 : labelPrompt[v - 1]!;
  }
  return out;
}
