/**
 * Padding and cropping to patch sizes. Every function returns the Box it used (in the input's
 * voxel (x,y,z) index space; negative start / end past the size mean padding), so that callers
 * can map results back with `pasteBack` or `unpad`.
 *
 * * padToMinSize: symmetric pad to at least a size (lower side floor(diff/2), as PyMIC's Pad).
 * * centerCrop: start floor((n - m)/2).
 * * randomCropBox / randomCrop: uniform start in [0, n - m] (PyMIC RandomCrop), or with
 *   probability fgProb a box centred on a random voxel of a random present foreground class,
 *   shifted to stay inside the volume (nnU-Net's foreground oversampling).
 */
import type { Vec3, Volume } from '../io/volume.js';
import type { Rng } from '../util/rng.js';
import { MisfmError } from '../util/errors.js';
import { cropToBox, extractBox, type Box, type FillOptions } from './box.js';
import { checkPair, checkProb, checkSize, checkVolume } from './grid.js';

/** The pad applied per axis: voxels added before index 0 and after the last voxel. */
export interface PadInfo {
  before: Vec3;
  after: Vec3;
}

/** The box that pads `size` by `pad`. */
export function padBox(size: Vec3, pad: PadInfo): Box {
  return { start: [0 - pad.before[0], 0 - pad.before[1], 0 - pad.before[2]], end: [size[0] + pad.after[0], size[1] + pad.after[1], size[2] + pad.after[2]] };
}

/** The symmetric pad that brings `size` to at least `minSize` (lower side gets floor(diff/2)). */
export function padForMinSize(size: Vec3, minSize: Vec3): PadInfo {
  const before = [0, 0, 0] as Vec3, after = [0, 0, 0] as Vec3;
  for (let a = 0; a < 3; a++) {
    const d = Math.max(0, minSize[a]! - size[a]!);
    before[a] = Math.floor(d / 2);
    after[a] = d - before[a]!;
  }
  return { before, after };
}

/**
 * Pad to at least `minSize` (x,y,z), symmetric, with `fill` (default constant 0; PyMIC's CT
 * pipeline uses 'reflect'). The origin moves so that original voxels keep their world position.
 */
export function padToMinSize(v: Volume, minSize: Vec3, fill: FillOptions = {}): { volume: Volume; pad: PadInfo; box: Box } {
  checkVolume('padToMinSize', v);
  const m = checkSize('padToMinSize', minSize, 'minimum size');
  const pad = padForMinSize(v.size, m);
  const box = padBox(v.size, pad);
  const noPad = pad.before.every((b, i) => b === 0 && pad.after[i] === 0);
  return { volume: noPad ? extractBox(v, box) : extractBox(v, box, fill), pad, box };
}

/** Remove a pad recorded by padToMinSize (e.g. from a prediction on the padded grid). */
export function unpad(v: Volume, pad: PadInfo): Volume {
  checkVolume('unpad', v);
  const end = [0, 1, 2].map((a) => v.size[a]! - pad.after[a]!) as Vec3;
  if (end.some((e, a) => e <= pad.before[a]!)) {
    throw new MisfmError('ARGUMENT', `unpad: pad before [${pad.before.join(',')}] after [${pad.after.join(',')}] leaves nothing of size ${v.size.join('x')}`);
  }
  return cropToBox(v, { start: [...pad.before], end });
}

function checkCropFits(op: string, size: Vec3, crop: Vec3): void {
  if (crop.some((c, a) => c > size[a]!)) {
    throw new MisfmError('ARGUMENT', `${op}: crop size ${crop.join('x')} is larger than the volume ${size.join('x')} (x,y,z); pad first with padToMinSize`);
  }
}

/** The centred box of `cropSize` in a grid of `size`. */
export function centerCropBox(size: Vec3, cropSize: Vec3): Box {
  const c = checkSize('centerCropBox', cropSize, 'crop size');
  checkCropFits('centerCropBox', size, c);
  const start = [0, 1, 2].map((a) => Math.floor((size[a]! - c[a]!) / 2)) as Vec3;
  return { start, end: [start[0] + c[0], start[1] + c[1], start[2] + c[2]] };
}

/** Centre crop to `cropSize` (x,y,z). */
export function centerCrop(v: Volume, cropSize: Vec3): { volume: Volume; box: Box } {
  checkVolume('centerCrop', v);
  const box = centerCropBox(v.size, cropSize);
  return { volume: cropToBox(v, box), box };
}

/** Voxel positions (linear x-fastest indices) of each foreground class of a label map. */
export type ClassLocations = Map<number, Int32Array>;

/**
 * Where each non-background class occurs (nnU-Net precomputes this per case). `maxPerClass`
 * keeps an evenly strided subset of at most that many positions per class, which bounds memory
 * for big organs without biasing the spread. Classes in `ignore` (default [0]) are left out.
 */
export function classLocations(label: Volume, o: { maxPerClass?: number; ignore?: number[] } = {}): ClassLocations {
  checkVolume('classLocations', label, 'label');
  const ignore = new Set(o.ignore ?? [0]);
  const counts = new Map<number, number>();
  const d = label.data;
  for (let i = 0; i < d.length; i++) { const c = d[i]!; if (!ignore.has(c)) counts.set(c, (counts.get(c) ?? 0) + 1); }
  const out: ClassLocations = new Map();
  const fill = new Map<number, { arr: Int32Array; step: number; seen: number; t: number }>();
  for (const [c, n] of [...counts].sort((a, b) => a[0] - b[0])) {
    const keep = o.maxPerClass === undefined ? n : Math.min(n, o.maxPerClass);
    fill.set(c, { arr: new Int32Array(keep), step: n / keep, seen: 0, t: 0 });
  }
  for (let i = 0; i < d.length; i++) {
    const f = fill.get(d[i]!);
    if (f === undefined) continue;
    // Keep occurrence number `seen` when it is the next multiple of step.
    if (f.t < f.arr.length && f.seen >= Math.floor(f.t * f.step)) f.arr[f.t++] = i;
    f.seen++;
  }
  for (const [c, f] of fill) out.set(c, f.arr);
  return out;
}

export interface RandomCropOptions {
  /** Probability of a foreground-centred crop (default 0: uniform crops only). */
  fgProb?: number;
  /** Foreground positions: a label map or precomputed classLocations. Needed when fgProb > 0. */
  foreground?: Volume | ClassLocations;
}

/** What randomCropBox chose. `cls` is the class it centred on, when it did. */
export interface CropChoice {
  box: Box;
  foreground: boolean;
  cls?: number;
}

/**
 * A random box of `cropSize` inside a grid of `size`. Draws: one uniform for the foreground
 * decision (only when fgProb > 0), then either a class, a voxel of it (centre = voxel, start =
 * centre - floor(m/2), clamped into [0, n - m]), or three uniform starts in x, y, z order. With
 * no foreground present the crop is uniform.
 */
export function randomCropBox(size: Vec3, cropSize: Vec3, rng: Rng, o: RandomCropOptions = {}): CropChoice {
  const c = checkSize('randomCropBox', cropSize, 'crop size');
  checkCropFits('randomCropBox', size, c);
  const p = o.fgProb ?? 0;
  checkProb('randomCropBox', p, 'fgProb');
  if (p > 0 && o.foreground === undefined) throw new MisfmError('ARGUMENT', 'randomCropBox: fgProb > 0 needs foreground (a label map or classLocations)');
  if (p > 0 && rng.uniform() < p) {
    const locs = o.foreground instanceof Map ? o.foreground : classLocations(o.foreground as Volume);
    const classes = [...locs.keys()].filter((k) => (locs.get(k)?.length ?? 0) > 0).sort((a, b) => a - b);
    if (classes.length > 0) {
      const cls = rng.choice(classes);
      const arr = locs.get(cls)!;
      const idx = arr[rng.randint(0, arr.length - 1)]!;
      const centre = [idx % size[0], Math.floor(idx / size[0]) % size[1], Math.floor(idx / (size[0] * size[1]))];
      const start = [0, 1, 2].map((a) => Math.min(Math.max(centre[a]! - Math.floor(c[a]! / 2), 0), size[a]! - c[a]!)) as Vec3;
      return { box: { start, end: [start[0] + c[0], start[1] + c[1], start[2] + c[2]] }, foreground: true, cls };
    }
  }
  const start = [0, 1, 2].map((a) => rng.randint(0, size[a]! - c[a]!)) as Vec3;
  return { box: { start, end: [start[0] + c[0], start[1] + c[1], start[2] + c[2]] }, foreground: false };
}

/**
 * Random crop of an image (and its label, same box). With fgProb > 0 and no explicit
 * foreground, the label is the foreground source.
 */
export function randomCrop(image: Volume, label: Volume | undefined, cropSize: Vec3, rng: Rng, o: RandomCropOptions = {}): { image: Volume; label?: Volume; choice: CropChoice } {
  checkPair('randomCrop', image, label);
  const fg = o.foreground ?? label;
  const choice = randomCropBox(image.size, cropSize, rng, { ...o, ...(fg !== undefined ? { foreground: fg } : {}) });
  const out: { image: Volume; label?: Volume; choice: CropChoice } = { image: cropToBox(image, choice.box), choice };
  if (label !== undefined) out.label = cropToBox(label, choice.box);
  return out;
}
