/**
 * VISTA3D (MONAI `VISTA3D` built as `vista3d132`): SegResNetDS2 image encoder, class head and
 * point head, with MONAI's state-dict names. `forward` follows `VISTA3D.forward` step by step
 * (spec §5): prompts in, logits [B,1,H,W,D] out (−9999 where no prompt applies).
 *
 * The work is split in two so that inference can cache what depends on the image alone:
 * `encode` (encoder, decoders, the point head's half-resolution tokens, the class head's
 * post-mapped features) and `decodeHeads` (everything that depends on the prompts).
 */
import type { Tensor } from '../../engine/tensor.js';
import { fromTypedArray, full } from '../../engine/creation.js';
import { Module } from '../../nn/module.js';
import { MisfmError, ShapeError, fmtShape } from '../../util/errors.js';
import { SegResNetDS2 } from './segresnet.js';
import { ClassMappingClassify } from './class-head.js';
import { PointMappingSAM, type PointHeadTap } from './point-head.js';
import { resolveVista3dOptions, vista3dSizeDivisor, type ResolvedVista3dOptions, type Vista3dOptions } from './options.js';
import { connectedComponentsCombine, gaussianCombine, type MergeMode } from './merge.js';

export const NINF_VALUE = -9999;

export type Triple = readonly [number, number, number];
/** Clicks of B objects: coords[b][n] = (i0, i1, i2) voxel indices; labels[b][n] in {−1,0,1,2,3}. */
export interface PointPrompts { coords: readonly (readonly (readonly number[])[])[]; labels: readonly (readonly number[])[]; }

/** A window of the full image: start (inclusive) and stop (exclusive) per axis. */
export interface PatchCoords { start: Triple; stop: Triple; }

export interface Vista3dPrompts {
  /** Class indices for the class head (B objects). */
  classVector?: readonly number[] | null;
  /** Clicks, in the coordinates of the full image when `patch` is given, else of this input. */
  points?: PointPrompts | null;
  /** Class of each point object (decides supported vs zero-shot). */
  promptClass?: readonly number[] | null;
  /** This input is the window `patch` of a larger image (sliding-window / click inference). */
  patch?: PatchCoords | null;
  /**
   * Earlier logits ([B] objects over `shape`), used in the point-only branch with `patch`: of the
   * whole image, or of a box of it that holds the patch and starts at `start` (default the origin).
   */
  prevMask?: { data: Float32Array; count: number; shape: Triple; start?: Triple } | null;
  /** gaussian_combine radius (default min(H,W,D)//5). */
  radius?: number;
  /** Algorithm 1 variant (default 'monai'). */
  mergeMode?: MergeMode;
  /** MONAI drops a click on a window's first voxel (start < p); false uses start <= p. Default true. */
  strictInside?: boolean;
}

/** What `encode` computed for one input window. */
export interface ImageFeatures {
  /** The point head's half-resolution image tokens `feat_downsample(out)` [1,E,H/2,W/2,D/2]. */
  pointLow: Tensor | null;
  /** The class head's post-mapped features `image_post_mapping(out_auto)` [1,E,H,W,D]. */
  autoMapped: Tensor | null;
  /** Spatial size of the input. */
  size: Triple;
}

export function disposeFeatures(f: ImageFeatures): void { f.pointLow?.dispose(); f.autoMapped?.dispose(); }
/** Bytes held by a feature set (for the cache's budget). */
export function featureBytes(f: ImageFeatures): number { return 4 * ((f.pointLow?.numel ?? 0) + (f.autoMapped?.numel ?? 0)); }

/** Points mapped into a window, with MONAI's padding rules (spec §5.2 step 4). */
export function pointsToPatch(p: PointPrompts, patch: PatchCoords, strict = true): PointPrompts | null {
  const coords = p.coords.map((pts) => pts.map((c) => [c[0]! - patch.start[0], c[1]! - patch.start[1], c[2]! - patch.start[2]]));
  const labels = p.labels.map((l) => [...l]);
  coords.forEach((pts, b) => pts.forEach((c, n) => {
    const g = p.coords[b]![n]!;
    const inside = [0, 1, 2].every((a) => (strict ? patch.start[a]! < g[a]! : patch.start[a]! <= g[a]!) && g[a]! < patch.stop[a]!);
    if (!inside) { labels[b]![n] = -1; pts[n] = [0, 0, 0]; }
  }));
  const N = labels[0]?.length ?? 0;
  const keepCols = Array.from({ length: N }, (_, n) => labels.some((l) => l[n] !== -1));
  if (!keepCols.some(Boolean)) return null;
  return {
    coords: coords.map((pts) => pts.filter((_, n) => keepCols[n])),
    labels: labels.map((l) => l.filter((_, n) => keepCols[n])),
  };
}

export class VISTA3D extends Module {
  readonly imageEncoder: SegResNetDS2;
  readonly classHead: ClassMappingClassify;
  readonly pointHead: PointMappingSAM;
  readonly options: ResolvedVista3dOptions;
  readonly sizeDivisor: number;
  /** MONAI's `auto_freeze` flag (stage 3-4 training keeps all-padding point objects). */
  autoFreeze = false;

  constructor(o: Vista3dOptions = {}) {
    super();
    const r = resolveVista3dOptions(o);
    this.options = r;
    this.sizeDivisor = vista3dSizeDivisor(r);
    this.imageEncoder = this.registerModule('image_encoder', new SegResNetDS2(r.inChannels, r.initFilters, r.featureSize, r.blocksDown));
    this.classHead = this.registerModule('class_head', new ClassMappingClassify(r.nClasses, r.featureSize));
    this.pointHead = this.registerModule('point_head', new PointMappingSAM(r));
  }

  /** Run the image-dependent part: decoders and the heads' image-side layers. */
  encode(x: Tensor, withPoint: boolean, withLabel: boolean): ImageFeatures {
    const s = x.shape;
    if (s.length !== 5 || s[0] !== 1) throw new ShapeError('VISTA3D', `expected one window [1, C, H, W, D], got ${fmtShape(s)}`);
    const size: Triple = [s[2]!, s[3]!, s[4]!];
    const { point, auto } = this.imageEncoder.forward(x, withPoint, withLabel);
    try {
      return {
        pointLow: point === null ? null : this.pointHead.downsample(point),
        autoMapped: auto === null ? null : this.classHead.mapImage(auto),
        size,
      };
    } finally { point?.dispose(); auto?.dispose(); }
  }

  /** Point-head logits [B1,1,H,W,D] from cached features. */
  pointLogits(f: ImageFeatures, points: PointPrompts, promptClass: readonly number[] | null, tap?: PointHeadTap): Tensor {
    if (f.pointLow === null) throw new MisfmError('ARGUMENT', 'VISTA3D: the point branch was not encoded');
    const B = points.coords.length, N = points.labels[0]?.length ?? 0;
    const flat = new Float32Array(B * N * 3);
    points.coords.forEach((pts, b) => pts.forEach((c, n) => flat.set([c[0]!, c[1]!, c[2]!], (b * N + n) * 3)));
    const coords = fromTypedArray(flat, [B, N, 3], { device: f.pointLow.device });
    const tok = this.pointHead.tokens(coords, points.labels, f.size, promptClass, tap); coords.dispose();
    if (tap !== undefined) tap('transformer_in_tokens', tok);
    try { return this.pointHead.decode(f.pointLow, tok, tap); } finally { tok.dispose(); }
  }

  /** Class-head logits [B,1,H,W,D] from cached features. */
  classLogits(f: ImageFeatures, classVector: readonly number[]): Tensor {
    if (f.autoMapped === null) throw new MisfmError('ARGUMENT', 'VISTA3D: the class branch was not encoded');
    const cv = fromTypedArray(BigInt64Array.from(classVector.map((c) => BigInt(c))), [classVector.length, 1], { device: f.autoMapped.device });
    const e = this.classHead.embed(cv); cv.dispose();
    try { return this.classHead.logits(f.autoMapped, e); } finally { e.dispose(); }
  }

  /** Which branches `forward` would run for these prompts, and the points it would use. */
  plan(size: Triple, p: Vista3dPrompts): { bs: number; points: PointPrompts | null; mapping: boolean[]; promptClass: readonly number[] | null; withLabel: boolean } {
    const cls = p.classVector ?? null;
    let points = p.points ?? null;
    const bs = cls !== null ? cls.length : points?.coords.length ?? 1;
    if (points !== null && p.patch != null) points = pointsToPatch(points, p.patch, p.strictInside ?? true);
    let promptClass = p.promptClass ?? null;
    let mapping: boolean[] = Array.from({ length: bs }, () => false);
    if (points !== null) {
      mapping = points.labels.map((l) => l.some((v) => v !== -1));
      if (mapping.some(Boolean)) {
        points = { coords: points.coords.filter((_, i) => mapping[i]), labels: points.labels.filter((_, i) => mapping[i]) };
        if (promptClass !== null) promptClass = promptClass.filter((_, i) => mapping[i]);
      } else if (this.autoFreeze || (cls === null && p.patch == null)) {
        mapping = mapping.map(() => true);
      } else {
        points = null;
      }
    }
    void size;
    return { bs, points, mapping, promptClass, withLabel: cls !== null };
  }

  /** MONAI's VISTA3D.forward for one window: logits [B,1,H,W,D]. */
  forward(x: Tensor, p: Vista3dPrompts, tap?: PointHeadTap): Tensor {
    const s = x.shape;
    const size: Triple = [s[2]!, s[3]!, s[4]!];
    const device = x.device;
    if ((p.classVector ?? null) === null && (p.points ?? null) === null) return full([1, 1, ...size], NINF_VALUE, { device });
    const plan = this.plan(size, p);
    if (plan.points === null && !plan.withLabel) return full([plan.bs, 1, ...size], NINF_VALUE, { device });
    const f = this.encode(x, plan.points !== null, plan.withLabel);
    try { return this.decodeHeads(f, p, plan, tap); } finally { disposeFeatures(f); }
  }

  /** The prompt-dependent part of forward on encoded features. */
  decodeHeads(f: ImageFeatures, p: Vista3dPrompts, plan = this.plan(f.size, p), tap?: PointHeadTap): Tensor {
    const size = f.size;
    const vol = size[0] * size[1] * size[2];
    const mode = p.mergeMode ?? 'monai';
    // Results go back to the features' device (merges run in JS on host copies).
    const device = (f.pointLow ?? f.autoMapped)?.device ?? 'cpu';
    if (plan.points === null && !plan.withLabel) return full([plan.bs, 1, ...size], NINF_VALUE, { device });
    if (plan.withLabel) {
      const logits = this.classLogits(f, p.classVector!);
      if (plan.points === null) return logits;
      const pl = this.pointLogits(f, plan.points, plan.promptClass, tap);
      const a = logits.dataF32(), b = pl.dataF32();
      logits.dispose(); pl.dispose();
      const obj = { data: a, count: plan.bs, shape: size };
      const merged = p.patch == null
        ? gaussianCombine(obj, b, plan.points.coords, plan.points.labels, plan.mapping, p.radius)
        : connectedComponentsCombine(obj, b, plan.points.coords, plan.points.labels, plan.mapping, mode);
      return fromTypedArray(merged, [plan.bs, 1, ...size], { device });
    }
    const pts = plan.points!;
    const pl = this.pointLogits(f, pts, plan.promptClass, tap);
    const b = pl.dataF32(); pl.dispose();
    if (p.prevMask != null && p.patch != null) {
      const o = p.prevMask.start ?? [0, 0, 0];
      const at: PatchCoords = { start: [p.patch.start[0] - o[0], p.patch.start[1] - o[1], p.patch.start[2] - o[2]], stop: [p.patch.stop[0] - o[0], p.patch.stop[1] - o[1], p.patch.stop[2] - o[2]] };
      const prev = cropObjects(p.prevMask, at, size);
      const merged = connectedComponentsCombine({ data: prev, count: p.prevMask.count, shape: size }, b, pts.coords, pts.labels, plan.mapping, mode);
      return fromTypedArray(merged, [p.prevMask.count, 1, ...size], { device });
    }
    const all = new Float32Array(plan.bs * vol).fill(NINF_VALUE);
    const mapped = plan.mapping.flatMap((m, i) => (m ? [i] : []));
    mapped.forEach((o, i) => all.set(b.subarray(i * vol, (i + 1) * vol), o * vol));
    return fromTypedArray(all, [plan.bs, 1, ...size], { device });
  }
}

/** The window `patch` of every object of a full-image logit stack. */
export function cropObjects(m: { data: Float32Array; count: number; shape: Triple }, patch: PatchCoords, size: Triple): Float32Array {
  const [H, W, D] = m.shape;
  const [h, w, d] = size;
  const out = new Float32Array(m.count * h * w * d);
  for (let b = 0; b < m.count; b++) for (let x = 0; x < h; x++) for (let y = 0; y < w; y++) {
    const src = b * H * W * D + ((x + patch.start[0]) * W + y + patch.start[1]) * D + patch.start[2];
    out.set(m.data.subarray(src, src + d), ((b * h + x) * w + y) * d);
  }
  return out;
}
