/**
 * VISTA3D prompt sampling on label maps [H,W,D] (C order, MONAI's axis order):
 * - `sampleCentrePoints`: the deterministic validation sampler (MONAI `sample_points_from_label`
 *   with use_center): the voxel nearest to the centroid of the largest component of the eroded mask.
 * - `samplePromptPairs`: training prompts per patch (MONAI `sample_prompt_pairs`), with misfm's
 *   seeded Rng instead of Python's `random` (same statistics, no bit parity possible).
 * - `nextPoints`: the iterative-click sampler (research `get_next_points`): one click from the
 *   eroded false negatives and one from the eroded false positives per prompt.
 */
import { Rng } from '../../util/rng.js';
import { connectedComponents } from '../../infer/postprocess.js';
import { MERGE_LIST, SPECIAL_INDEX } from '../../models/vista3d/classes.js';
import type { PointPrompts } from '../../models/vista3d/model.js';
import type { SupervoxelPointSampler } from './supervoxel-sampler.js';

export type Shape3 = readonly [number, number, number];
export type LabelArray = ArrayLike<number>;

/** MONAI `erode` (3³ cube, border value 1): a voxel stays when its whole cube is in the mask. */
export function erode3d(mask: Uint8Array, shape: Shape3): Uint8Array {
  return morph(mask, shape, 3, 'erode');
}

/**
 * The research code's erode3d / dilate3d with a k³ cube: erosion pads with 1 (the border does not
 * erode), dilation pads with 0. Separable (three 1-D passes), which equals the cube's min / max.
 */
export function morph(mask: Uint8Array, shape: Shape3, k: number, op: 'erode' | 'dilate'): Uint8Array {
  const [H, W, D] = shape;
  const h = Math.floor(k / 2);
  const pad = op === 'erode' ? 1 : 0;
  let cur = mask;
  const strides = [W * D, D, 1], sizes = [H, W, D];
  for (let a = 0; a < 3; a++) {
    const out = new Uint8Array(cur.length);
    const st = strides[a]!, len = sizes[a]!;
    for (let j = 0; j < cur.length; j++) {
      const pos = Math.floor(j / st) % len;
      let v = op === 'erode' ? 1 : 0;
      for (let d = -h; d <= h; d++) {
        const p = pos + d;
        const x = p < 0 || p >= len ? pad : cur[j + d * st]!;
        if (op === 'erode' ? x === 0 : x !== 0) { v = op === 'erode' ? 0 : 1; break; }
      }
      out[j] = v;
    }
    cur = out;
  }
  return cur;
}

/** The largest 26-connected component (first in raster order on ties). */
export function largestComponent(mask: Uint8Array, shape: Shape3): Uint8Array {
  const { ids, sizes } = connectedComponents(mask, [shape[0], shape[1], shape[2]], 26);
  let best = 0;
  for (let i = 1; i < sizes.length; i++) if (sizes[i]! > (sizes[best] ?? 0)) best = i;
  const out = new Uint8Array(mask.length);
  if (best > 0) for (let i = 0; i < out.length; i++) out[i] = ids[i] === best ? 1 : 0;
  return out;
}

function coordsOf(i: number, shape: Shape3): [number, number, number] {
  const D = shape[2], W = shape[1];
  const z = i % D, r = (i - z) / D, y = r % W;
  return [(r - y) / W, y, z];
}

/** Validation clicks: one positive per present class (centre of its eroded largest component), padding for absent ones. */
export function sampleCentrePoints(labels: LabelArray, shape: Shape3, labelSet: readonly number[]): PointPrompts {
  const present = new Set<number>();
  for (let i = 0; i < labels.length; i++) present.add(labels[i]!);
  const coords: number[][][] = [], lab: number[][] = [];
  for (const id of labelSet) {
    if (!present.has(id)) { coords.push([[0, 0, 0]]); lab.push([-1]); continue; }
    const m = new Uint8Array(labels.length);
    for (let i = 0; i < m.length; i++) m[i] = labels[i] === id ? 1 : 0;
    let sel = largestComponent(erode3d(m, shape), shape);
    if (!sel.some((v) => v === 1)) sel = m;
    const pts: [number, number, number][] = [];
    for (let i = 0; i < sel.length; i++) if (sel[i] === 1) pts.push(coordsOf(i, shape));
    const mean = [0, 1, 2].map((a) => Math.fround(pts.reduce((s, p) => s + p[a]!, 0) / pts.length));
    let best = 0, bestD = Infinity;
    pts.forEach((p, i) => {
      const d = Math.fround(Math.fround((p[0] - mean[0]!) ** 2) + Math.fround((p[1] - mean[1]!) ** 2) + Math.fround((p[2] - mean[2]!) ** 2));
      if (d < bestD) { bestD = d; best = i; }
    });
    coords.push([pts[best]!]); lab.push([1]);
  }
  return { coords, labels: lab };
}

/** MONAI `convert_point_label`: +2 on every real click of a special class. */
export function convertPointLabel(points: PointPrompts, classes: readonly number[], special: readonly number[] = SPECIAL_INDEX): PointPrompts {
  return { coords: points.coords, labels: points.labels.map((l, b) => l.map((v) => (v > -1 && special.includes(classes[b]!) ? v + 2 : v))) };
}

export interface PromptSamplingOptions {
  maxPoint?: number; maxPrompt?: number | null; maxForeprompt?: number | null; maxBackprompt?: number | null;
  dropLabelProb?: number; dropPointProb?: number;
  /**
   * The research supervoxel sampler for the present classes (generate_prompt_pairs with a
   * point_sampler: Np = maxPoint, Nn = 0, background rows padded to the same length).
   */
  pointSampler?: SupervoxelPointSampler;
}

export interface SampledPrompts {
  /** Class prompt per object ([] when dropped: point-only). */
  labelPrompt: number[] | null;
  points: PointPrompts | null;
  /** Class of each object (survives dropping); a zero-shot target's is its shifted index. */
  promptClass: number[];
  /** The label map the targets come from when a supervoxel sampler changed it (else the input's). */
  labels?: Uint16Array;
}

/**
 * Voxel indices grouped by label value, ascending within each value: one counting-sort pass over
 * the patch (the prompt sampler used to build a positive and a negative index list per class,
 * ~0.9 s per 64³ patch with 36 classes, the whole data wait of VISTA3D stages 3-4).
 */
export function indicesByLabel(labels: LabelArray): { of(c: number): Int32Array } {
  let max = 0;
  for (let i = 0; i < labels.length; i++) { const v = labels[i]!; if (v > max) max = v; }
  const start = new Int32Array(max + 2);
  for (let i = 0; i < labels.length; i++) { const v = labels[i]!; if (v >= 0) start[v + 1]!++; }
  for (let v = 0; v <= max; v++) start[v + 1]! += start[v]!;
  const order = new Int32Array(start[max + 1]!), next = start.slice(0, max + 1);
  for (let i = 0; i < labels.length; i++) { const v = labels[i]!; if (v >= 0) order[next[v]!++] = i; }
  return { of: (c: number) => (c >= 0 && c <= max ? order.subarray(start[c]!, start[c + 1]!) : new Int32Array(0)) };
}

/**
 * The j-th (0-based, ascending) index in [0, n) that is not in `inside` (ascending, distinct): the
 * answer is j + k for the smallest k with inside[k] - k > j.
 */
export function nthOutside(inside: Int32Array, j: number): number {
  let lo = 0, hi = inside.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (inside[mid]! - mid > j) hi = mid; else lo = mid + 1;
  }
  return j + lo;
}

/** Training prompts for one patch (spec §10.1). `labelSet`: the dataset's global classes. */
export function samplePromptPairs(labels: LabelArray, shape: Shape3, labelSet: readonly number[], rng: Rng, o: PromptSamplingOptions = {}): SampledPrompts | null {
  const maxPoint = o.maxPoint ?? 3;
  const present = new Set<number>();
  for (let i = 0; i < labels.length; i++) present.add(labels[i]!);
  let fore = labelSet.filter((c) => c !== 0 && present.has(c));
  let back = labelSet.filter((c) => c !== 0 && !present.has(c));
  if (o.maxBackprompt != null && back.length > o.maxBackprompt) back = rng.shuffle([...back]).slice(0, o.maxBackprompt);
  if (o.maxForeprompt != null && fore.length > o.maxForeprompt) fore = rng.shuffle([...fore]).slice(0, o.maxForeprompt);
  let classes = [...fore, ...back];
  if (o.maxPrompt != null && classes.length > o.maxPrompt) classes = rng.shuffle(classes).slice(0, o.maxPrompt);
  if (classes.length === 0) return null;
  const sigma = Math.floor(maxPoint / 2);
  const np = Math.min(maxPoint, Math.floor(Math.abs(rng.normal(0, sigma))) + 1);
  const nn = Math.min(maxPoint, Math.floor(Math.abs(rng.normal(0, sigma))));
  const coords: number[][][] = [], lab: number[][] = [];
  const ps = o.pointSampler;
  const drawn = ps !== undefined && fore.length > 0 ? ps.sample(classes.filter((c) => present.has(c)), maxPoint, 0) : null;
  if (drawn !== null) {
    const len = drawn.labels[0]!.length;
    let f = 0;
    for (const c of classes) {
      if (present.has(c)) { coords.push(drawn.coords[f]!); lab.push(drawn.labels[f]!); f++; }
      else { coords.push(Array.from({ length: len }, () => [0, 0, 0])); lab.push(Array<number>(len).fill(-1)); }
    }
  } else {
    const byLabel = fore.length > 0 ? indicesByLabel(labels) : null;
    for (const c of classes) {
      const row: number[][] = [], rl: number[] = [];
      const sp = SPECIAL_INDEX.includes(c) ? 2 : 0;
      if (present.has(c)) {
        // The voxels of class c (ascending) and, implicitly, the others: the j-th voxel not of class
        // c is found by a binary search over c's, so no per-class index lists of the whole patch.
        const pos = byLabel!.of(c);
        const negCount = labels.length - pos.length;
        for (let k = 0; k < np; k++) { row.push(coordsOf(pos[rng.randint(0, pos.length - 1)]!, shape)); rl.push(1 + sp); }
        for (let k = 0; k < nn; k++) {
          if (negCount === 0) { row.push([0, 0, 0]); rl.push(-1); continue; }
          row.push(coordsOf(nthOutside(pos, rng.randint(0, negCount - 1)), shape)); rl.push(sp);
        }
      } else {
        for (let k = 0; k < np + nn; k++) { row.push([0, 0, 0]); rl.push(-1); }
      }
      coords.push(row); lab.push(rl);
    }
  }
  let labelPrompt: number[] | null = [...classes];
  let points: PointPrompts | null = { coords, labels: lab };
  // The research trainer shifts prompt_class (not the class prompt) for zero-shot targets.
  let promptClass = drawn !== null ? classes.map((c) => ps!.shifted.get(c) ?? c) : [...classes];
  if (fore.length > 0 && rng.uniform() < (o.dropLabelProb ?? 0.2)) {
    // Point-only: the background rows go too.
    const n = classes.filter((c) => present.has(c)).length;
    labelPrompt = null;
    points = { coords: coords.slice(0, n), labels: lab.slice(0, n) };
    promptClass = promptClass.slice(0, n);
  } else if (rng.uniform() < (o.dropPointProb ?? 0.2)) {
    points = null;
  }
  return { labelPrompt, points, promptClass, ...(drawn !== null ? { labels: ps!.label } : {}) };
}

/** The target of a prompt: its class plus the labels merged into it for training. */
export function targetMask(labels: LabelArray, cls: number): Uint8Array {
  const merged = MERGE_LIST[cls] ?? [];
  const m = new Uint8Array(labels.length);
  // One comparison per voxel in the common case (stages 3-4 make 36 targets per patch).
  if (merged.length === 0) for (let i = 0; i < m.length; i++) m[i] = labels[i] === cls ? 1 : 0;
  else { const members = [cls, ...merged]; for (let i = 0; i < m.length; i++) m[i] = members.includes(labels[i]!) ? 1 : 0; }
  return m;
}

/**
 * One iterative-click round: per object, a click from the eroded false negatives (positive) and one
 * from the eroded false positives (negative), both 10 voxels from the border on the first two axes
 * only (the research code's window, kept); (0,0,0)/−1 when a set is empty. Appends 2 columns.
 */
export function nextPoints(pred: Float32Array, targets: readonly Uint8Array[], classes: readonly number[], shape: Shape3, prev: PointPrompts, rng: Rng): PointPrompts {
  const [H, W, D] = shape;
  const vol = H * W * D;
  const coords = prev.coords.map((r) => r.map((p) => [...p]));
  const labels = prev.labels.map((r) => [...r]);
  targets.forEach((gt, b) => {
    const c = classes[b]!;
    if (c === 0) { coords[b]!.push([0, 0, 0], [0, 0, 0]); labels[b]!.push(-1, -1); return; }
    const fnM = new Uint8Array(vol), fpM = new Uint8Array(vol);
    for (let j = 0; j < vol; j++) {
      const p = pred[b * vol + j]!;
      fnM[j] = gt[j] === 1 && p < 0.5 ? 1 : 0;
      fpM[j] = gt[j] === 0 && p > 0.5 ? 1 : 0;
    }
    const sp = SPECIAL_INDEX.includes(c) ? 2 : 0;
    for (const [m, value] of [[erode3d(fnM, shape), 1 + sp], [erode3d(fpM, shape), sp]] as const) {
      const idx: number[] = [];
      for (let j = 0; j < vol; j++) {
        if (m[j] === 0) continue;
        const [x, y] = coordsOf(j, shape);
        if (x >= 10 && x < H - 10 && y >= 10 && y < W - 10) idx.push(j);
      }
      if (idx.length === 0) { coords[b]!.push([0, 0, 0]); labels[b]!.push(-1); } else { coords[b]!.push(coordsOf(idx[rng.randint(0, idx.length - 1)]!, shape)); labels[b]!.push(value); }
    }
  });
  return { coords, labels };
}
