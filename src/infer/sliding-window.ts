/**
 * Sliding-window inference (spec 3.2): Gaussian-weighted average of window LOGITS, windows never
 * shrunk (images smaller than the window are padded and cropped back).
 *
 * Two entry points share one window plan (./plan.ts) and one batched predictor call:
 * - slidingWindowLogits: the reference computation, a full-resolution [1,K,D,H,W] accumulator of
 *   logits*weight and a weight map, divided at the end. For parity checks and small images.
 * - slidingWindowSegment: the production path. Windows are processed sorted by their start on a
 *   "slab axis"; accumulators cover only window-size slices along that axis (a ring buffer), and
 *   slices are turned into labels (argmax of the weighted-average logits; softmax is monotone so
 *   it is skipped) as soon as no later window touches them. Peak memory is K x window-span x the
 *   other two image dims instead of K x the whole image. The default slab axis is W, the outer
 *   loop of the reference order, so each voxel sums the same terms in the same order as the full
 *   accumulation: labels are bit-identical to argmax(slidingWindowLogits).
 */
import { Tensor } from '../engine/tensor.js';
import { cat, fromTypedArray, noGrad, zeros } from '../engine/creation.js';
import { dispose, keep, tidy } from '../engine/scope.js';
import { pad as padTensor } from '../engine/functional.js';
import { MisfmError, ShapeError, fmtShape } from '../util/errors.js';
import type { SegmentationNetwork } from '../models/types.js';
import { planWindows, type PlannedWindow, type WindowPlan, type WindowPlanOptions } from './plan.js';

/**
 * A network as seen by the inferer: [B,C,d,h,w] -> [B,K,d,h,w] logits (a list: the first is
 * used). The returned tensors belong to the caller, which may modify them in place.
 */
export type Predictor = (batch: Tensor) => Tensor | Tensor[];

/** Options of both sliding-window entry points. */
export interface SlidingWindowOptions extends WindowPlanOptions {
  /** Windows per predictor call (default 1). */
  batchSize?: number;
  /** Test-time augmentation: besides the plain pass, one pass flipped along each listed axis (0 = D, 1 = H, 2 = W); logits are averaged. */
  ttaFlips?: readonly (0 | 1 | 2)[];
  /** Value for padding images smaller than the window: a number, or 'min' (the image minimum, default; background for normalised CT). */
  padValue?: number | 'min';
  /** Device the predictor runs on ('cpu', 'cuda'); windows are moved there and logits back. Default: the image's device. */
  device?: string;
  /** Called after each predictor call with windows done / windows total. */
  onProgress?: (done: number, total: number) => void;
}

/** Options of the production path. */
export interface SegmentOptions extends SlidingWindowOptions {
  /** Axis along which accumulators are kept as a slab (0 = D, 1 = H, 2 = W; default 2, the reference's outer loop). */
  slabAxis?: 0 | 1 | 2;
  /** Classes whose softmax probability maps are also returned. */
  probabilities?: readonly number[];
}

/** Result of slidingWindowSegment. */
export interface SegmentResult {
  /** Labels, C-order (D,H,W) of the input image (= x-fastest voxel order of the Volume it came from). uint8 up to 256 classes. */
  labels: Uint8Array | Uint16Array;
  shape: [number, number, number];
  classNum: number;
  /** Requested class -> softmax probability, C-order (D,H,W). */
  probabilities: Map<number, Float32Array>;
  /** Windows computed (predictor calls x batch) and windows the reference loop would run. */
  windowsComputed: number;
  referenceWindows: number;
  /** Stride used (D,H,W). */
  stride: [number, number, number];
}

/** A predictor running `model` in eval mode (the model is switched to eval). */
export function modelPredictor(model: SegmentationNetwork): Predictor {
  model.eval();
  return (x) => model.forward(x);
}

function spatialOf(image: Tensor): [number, number, number] {
  const s = image.shape;
  if (s.length !== 5 || s[0] !== 1) throw new ShapeError('sliding window', `image must be [1,C,D,H,W], got ${fmtShape(s)}`);
  return [s[2]!, s[3]!, s[4]!];
}

function checkOptions(o: SlidingWindowOptions): void {
  const b = o.batchSize ?? 1;
  if (!Number.isSafeInteger(b) || b < 1) throw new MisfmError('ARGUMENT', `sliding window: batchSize must be a positive integer, got ${b}`);
  for (const a of o.ttaFlips ?? []) {
    if (a !== 0 && a !== 1 && a !== 2) throw new MisfmError('ARGUMENT', `sliding window: ttaFlips axes must be 0 (D), 1 (H) or 2 (W), got ${String(a)}`);
  }
  if (typeof o.padValue === 'number' && !Number.isFinite(o.padValue)) throw new MisfmError('ARGUMENT', `sliding window: padValue must be finite, got ${o.padValue}`);
}

/** The image padded up to the plan's padded size (or the image itself). */
function padImage(image: Tensor, plan: WindowPlan, padValue: number | 'min'): Tensor {
  const { before, after } = plan.pad;
  if (before.every((v) => v === 0) && after.every((v) => v === 0)) return image;
  const value = padValue === 'min' ? tidy(() => image.min().item()) : padValue;
  return padTensor(image, [before[2], after[2], before[1], after[1], before[0], after[0]], 'constant', value);
}

/** The [B,K,wd,wh,ww] float32 logits of a batch of windows (TTA-averaged), on the image's device. */
function predictBatch(predictor: Predictor, padded: Tensor, batch: readonly PlannedWindow[], plan: WindowPlan, o: SlidingWindowOptions): Tensor {
  return tidy(() => {
    const [wd, wh, ww] = plan.window;
    const patches = batch.map((w) => padded.crop([null, null, [w.start[0], w.start[0] + wd], [w.start[1], w.start[1] + wh], [w.start[2], w.start[2] + ww]]));
    let x = patches.length === 1 ? patches[0]!.contiguous() : cat(patches, 0);
    const home = padded.device;
    if (o.device !== undefined && o.device !== home) x = x.to(o.device);
    const passes: number[][] = [[], ...(o.ttaFlips ?? []).map((a) => [a + 2])];
    let sum: Tensor | null = null;
    for (const dims of passes) {
      const input = dims.length === 0 ? x : x.flip(dims);
      const raw = predictor(input);
      const list = Array.isArray(raw) ? raw : [raw];
      const first = list[0];
      const s = first?.shape ?? [];
      if (first === undefined || s.length !== 5 || s[0] !== batch.length || s[2] !== wd || s[3] !== wh || s[4] !== ww) {
        throw new ShapeError('sliding window', `the predictor must return [${batch.length},K,${wd},${wh},${ww}] logits for a window batch ${fmtShape(x.shape)}, got ${first === undefined ? 'nothing' : fmtShape(s)}`);
      }
      const y = dims.length === 0 ? first : first.flip(dims);
      sum = sum === null ? y : sum.add(y);
    }
    let out = sum as Tensor;
    if (passes.length > 1) out = out.div(passes.length);
    // The logits are scaled in place later: never touch memory the predictor may share (a view of its input).
    else if (out.isView) out = out.clone();
    if (out.device !== home) out = out.to(home);
    return out.dtype === 'float32' ? out : out.float();
  });
}

/** Runs the plan's windows in batches, calling `add(window, logits[1,K,...], weight[1,1,...])` in plan order. */
function runWindows(predictor: Predictor, padded: Tensor, plan: WindowPlan, o: SlidingWindowOptions,
  add: (w: PlannedWindow, logitsTimesWeight: Tensor, weight: Tensor, classNum: number) => void): void {
  const g = fromTypedArray(plan.weights, [1, 1, ...plan.window]);
  // g x multiplicity, made once per distinct count: per-window temporaries are kept to the
  // network's own (many same-sized short-lived blocks fragment the heap of a long run).
  const scaled = new Map<number, Tensor>([[1, g]]);
  const weightOf = (count: number): Tensor => {
    let t = scaled.get(count);
    if (t === undefined) { t = keep(g.mul(count)); scaled.set(count, t); }
    return t;
  };
  const batchSize = o.batchSize ?? 1;
  const total = plan.windows.length;
  try {
    for (let i = 0; i < total; i += batchSize) {
      const batch = plan.windows.slice(i, i + batchSize);
      const out = predictBatch(predictor, padded, batch, plan, o);
      try {
        const k = out.shape[1]!;
        batch.forEach((w, j) => tidy(() => {
          const gw = weightOf(w.count);
          // In place: the logits are ours, and logits * weight rounds the same either way.
          add(w, out.narrow(0, j, 1).mul_(gw), gw, k);
        }));
      } finally {
        out.dispose();
      }
      o.onProgress?.(Math.min(i + batchSize, total), total);
    }
  } finally {
    dispose([...scaled.values()]);
  }
}

/**
 * Gaussian-weighted average of window logits over the whole image, [1,K,D,H,W] float32 (the
 * reference algorithm; by default its exact loop order and duplicate weighting). Memory: two
 * full-resolution accumulators; use slidingWindowSegment for large scans.
 */
export function slidingWindowLogits(predictor: Predictor, image: Tensor, opts: SlidingWindowOptions): Tensor {
  checkOptions(opts);
  const size = spatialOf(image);
  const plan = planWindows(size, opts);
  return noGrad(() => {
    const padded = padImage(image, plan, opts.padValue ?? 'min');
    const P = plan.pad.paddedSize;
    const [wd, wh, ww] = plan.window;
    let acc: Tensor | null = null;
    const weight = zeros([1, 1, ...P], { dtype: 'float32' });
    try {
      runWindows(predictor, padded, plan, opts, (w, lw, gw, k) => {
        // Created inside the per-window tidy scope: keep() so it survives it (disposed in finally).
        acc ??= keep(zeros([1, k, ...P], { dtype: 'float32' }));
        const region: ([number, number] | null)[] = [null, null, [w.start[0], w.start[0] + wd], [w.start[1], w.start[1] + wh], [w.start[2], w.start[2] + ww]];
        acc.crop(region).add_(lw);
        weight.crop(region).add_(gw);
      });
      const a = acc as Tensor | null;
      if (a === null) throw new MisfmError('ARGUMENT', 'sliding window: no windows were run');
      const { before } = plan.pad;
      return tidy(() => a.div(weight).crop([null, null, [before[0], before[0] + size[0]], [before[1], before[1] + size[1]], [before[2], before[2] + size[2]]]).contiguous());
    } finally {
      dispose([acc, weight]);
      if (padded !== image) padded.dispose();
    }
  });
}

/** Ring positions of global slices [start, start + len) on a ring of `cap` slices: at most two pieces. */
function ringPieces(start: number, len: number, cap: number): { ring: number; offset: number; len: number }[] {
  const r = start % cap;
  const first = Math.min(len, cap - r);
  const out = [{ ring: r, offset: 0, len: first }];
  if (len > first) out.push({ ring: 0, offset: first, len: len - first });
  return out;
}

/**
 * Label map by sliding window without a full-resolution float map (see the file header).
 * Defaults: duplicates 'weighted' (each distinct window once, weighted by its multiplicity), slab
 * axis W. With duplicates 'reference' and slab axis 2 the labels equal
 * argmax(slidingWindowLogits(...)) exactly. Voxels that no window weights (only with a tiny
 * sigmaScale or a stride above the window) get label 0 and NaN probabilities, as in the reference.
 */
export function slidingWindowSegment(predictor: Predictor, image: Tensor, opts: SegmentOptions): SegmentResult {
  checkOptions(opts);
  const size = spatialOf(image);
  const axis = opts.slabAxis ?? 2;
  if (axis !== 0 && axis !== 1 && axis !== 2) throw new MisfmError('ARGUMENT', `sliding window: slabAxis must be 0, 1 or 2, got ${String(axis)}`);
  const plan = planWindows(size, { duplicates: 'weighted', ...opts, sortAxis: axis });
  const probClasses = [...new Set(opts.probabilities ?? [])];
  return noGrad(() => {
    const padded = padImage(image, plan, opts.padValue ?? 'min');
    const P = plan.pad.paddedSize;
    const cap = plan.window[axis];
    const ringShape = [...P] as [number, number, number];
    ringShape[axis] = cap;
    const { before } = plan.pad;
    let acc: Tensor | null = null;
    let labels: Tensor | null = null;
    let classNum = 0;
    const probs = new Map<number, Tensor>();
    const weight = zeros([1, 1, ...ringShape], { dtype: 'float32' });
    let finalized = 0;
    const windowRegion = (start: readonly number[]): ([number, number] | null)[] =>
      [null, null, ...[0, 1, 2].map((a) => (a === axis ? null : [start[a]!, start[a]! + plan.window[a]!] as [number, number]))];

    /** Turn global slab slices [finalized, upTo) into labels (and probabilities), then clear their ring slots. */
    const finalize = (upTo: number): void => {
      const accT = acc;
      const out = labels;
      if (accT === null || out === null) { finalized = Math.max(finalized, upTo); return; }
      while (finalized < upTo) {
        const len = Math.min(upTo - finalized, cap);
        for (const p of ringPieces(finalized, len, cap)) {
          const g0 = finalized + p.offset;
          // Part of the piece inside the original (unpadded) image along the slab axis.
          const lo = Math.max(g0, before[axis]), hi = Math.min(g0 + p.len, before[axis] + size[axis]);
          if (hi > lo) {
            tidy(() => {
              const crop: ([number, number] | null)[] = [null, null];
              const dest: ([number, number] | null)[] = [];
              for (let a = 0; a < 3; a++) {
                if (a === axis) {
                  crop.push([p.ring + (lo - g0), p.ring + (hi - g0)]);
                  dest.push([lo - before[a]!, hi - before[a]!]);
                } else {
                  crop.push([before[a]!, before[a]! + size[a]!]);
                  dest.push(null);
                }
              }
              const avg = accT.crop(crop).div(weight.crop(crop));
              out.crop(dest).copy_(avg.argmax(1).squeeze(0));
              if (probs.size > 0) {
                const sm = avg.softmax(1);
                for (const [c, t] of probs) t.crop(dest).copy_(sm.select(1, c).squeeze(0));
              }
            });
          }
          tidy(() => {
            accT.narrow(axis + 2, p.ring, p.len).zero_();
            weight.narrow(axis + 2, p.ring, p.len).zero_();
          });
        }
        finalized += len;
      }
    };

    try {
      runWindows(predictor, padded, plan, opts, (w, lw, gw, k) => {
        if (acc === null) {
          classNum = k;
          // Created inside the per-window tidy scope: keep() them (disposed in finally).
          acc = keep(zeros([1, k, ...ringShape], { dtype: 'float32' }));
          labels = keep(zeros(size, { dtype: k <= 256 ? 'uint8' : 'int32' }));
          for (const c of probClasses) {
            if (!Number.isInteger(c) || c < 0 || c >= k) throw new MisfmError('ARGUMENT', `sliding window: probability class ${c} is not one of the ${k} classes 0..${k - 1}`);
            probs.set(c, keep(zeros(size, { dtype: 'float32' })));
          }
        }
        const s = w.start[axis];
        finalize(s);
        const region = windowRegion(w.start);
        for (const p of ringPieces(s, plan.window[axis], cap)) {
          const r = [...region];
          r[axis + 2] = [p.ring, p.ring + p.len];
          (acc as Tensor).crop(r).add_(lw.narrow(axis + 2, p.offset, p.len));
          weight.crop(r).add_(gw.narrow(axis + 2, p.offset, p.len));
        }
      });
      finalize(P[axis]);
      const lab = labels as Tensor | null;
      if (lab === null) throw new MisfmError('ARGUMENT', 'sliding window: no windows were run');
      const raw = lab.data();
      const out: Uint8Array | Uint16Array = raw instanceof Uint8Array ? raw : Uint16Array.from(raw as Int32Array);
      const probabilities = new Map<number, Float32Array>();
      for (const [c, t] of probs) probabilities.set(c, t.data() as Float32Array);
      return {
        labels: out, shape: [...size] as [number, number, number], classNum, probabilities,
        windowsComputed: plan.windows.length, referenceWindows: plan.referenceCount, stride: plan.stride,
      };
    } finally {
      dispose([acc, labels, weight, [...probs.values()]]);
      if (padded !== image) padded.dispose();
    }
  });
}
