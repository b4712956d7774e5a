/**
 * An editing session on one image with a VISTA3D checkpoint: automatic segmentation of requested
 * classes and click correction merged into an existing label map by Algorithm 1, with the image
 * features of computed windows kept in an LRU cache so a later click in the same window runs only
 * the point head. Used by `misfm segment` and by `misfm serve`'s click correction.
 *
 * Geometry: the image is reoriented to RAS and resampled to the model spacing (1.5 mm, the
 * bundle's), intensities windowed to [0, 1] with the bundle's HU window, and laid out as MONAI's
 * (x, y, z) tensor. Label maps come back on the image's own grid (nearest-neighbour resampling).
 * Clicks are voxel indices (x, y, z) of the image as opened.
 *
 * Clicks are answered, by default (`clickMode: 'edit'`), with MONAI's "edit a previous result"
 * path: for each clicked class, the point head runs point-only in the click-centred windows and its
 * logits are merged into the current mask of that class (±1 logits from `base`) by Algorithm 1. The
 * class prompt decides supported vs zero-shot (values above 132). `clickMode: 'bundle'` is what the
 * MONAI bundle does with a click and a label prompt: the class head runs again in each click window
 * and the point logits are merged into its result by Algorithm 1 (point-only for zero-shot classes,
 * as the bundle routes them); the window result then replaces the class there, so edits made
 * earlier inside the windows are lost.
 *
 * Either way only the click windows are touched: the base is read and the result written through
 * per-axis index maps over the windows' bounding box (the same nearest-neighbour taps as resampling
 * the whole map), and an image voxel takes a new label only where the label of its work-grid voxel
 * changed, so voxels elsewhere keep the base's labels exactly.
 */
import type { Tensor } from '../../engine/tensor.js';
import { noGrad, setNumThreads } from '../../engine/creation.js';
import type { Vec3, Volume } from '../../io/volume.js';
import { voxelToWorld, worldToVoxel } from '../../io/volume.js';
import { MisfmError } from '../../util/errors.js';
import { permuteFlipOffsets, reorient, undoReorient, type Reoriented } from '../../transforms/orientation.js';
import { nearestIndexMaps, resampleToReference, resampleToSpacing } from '../../transforms/resample.js';
import { clipAndScale } from '../../transforms/intensity.js';
import { volumeToBatch } from '../../transforms/volume-tensor.js';
import { geometryOf, type Geometry } from '../../transforms/grid.js';
import { loadVista3dCheckpoint } from '../../models/vista3d/checkpoint.js';
import type { VISTA3D } from '../../models/vista3d/model.js';
import type { MergeMode } from '../../models/vista3d/merge.js';
import { SPECIAL_INDEX } from '../../models/vista3d/classes.js';
import { FeatureCache } from './cache.js';
import { autoLogits, pointLogitsInBox, type Box, type InferContext } from './inferer.js';
import { autoClasses, classTable } from './classes.js';
import type { Triple, Window } from './windows.js';
import { fitWindowToImage } from '../windows.js';

export interface ClickPoint { label: number; positive: boolean; ijk: Vec3 } // label = class-table value; ijk = (x,y,z) voxel index on the session's image
export interface ClickResult { labels: Volume; windowsComputed: number; cacheHits: number }
export interface Vista3dSession {
  readonly image: Volume;                       // the image as opened (its grid is the output grid)
  readonly classes: ReadonlyMap<number, string>;// class-table value -> name
  autoSegment(classes: readonly (number | string)[] | 'everything', onProgress?: (done: number, total: number) => void): Promise<Volume>; // label map on image's grid, class-table values
  click(points: readonly ClickPoint[], base: Volume | null, onProgress?: (done: number, total: number) => void): Promise<ClickResult>; // Algorithm 1 merged into base (or from empty)
  dispose(): void;
}

import { VISTA3D_HU_WINDOW } from '../../config/defaults.js';
/** The bundle's intensity window (HU) mapped to [0, 1] (one definition, shared with training). */
export { VISTA3D_HU_WINDOW };

export interface Vista3dSessionOptions {
  /** Intra-op threads of the engine. */
  threads?: number;
  /**
   * 'cpu' (default), 'cuda' or 'cuda:N': where the network, the working image and the feature
   * cache live (label maps, Algorithm 1 and stitching stay in host memory).
   */
  device?: string;
  /** Budget of the window feature cache in bytes (default 1 GiB; 0 disables it). */
  cacheBytes?: number;
  /** Working spacing in mm (default 1.5, the bundle's). */
  spacing?: Vec3;
  /** Window (default 128³, the bundle's; must be a multiple of the model's size divisor). */
  roi?: Triple;
  /**
   * Shrink the window along axes where the working image is smaller, to the smallest multiple of
   * the size divisor that covers it (default false: MONAI pads the image up to the window). For
   * thin slabs, where the padded window is mostly padding (see docs/results/vista3d-real.md).
   */
  fitWindow?: boolean;
  /** Automatic sliding-window overlap (default 0.25) and blending (default constant), as the bundle. */
  overlap?: number;
  blend?: 'constant' | 'gaussian';
  /** HU window mapped to [0, 1] (default the bundle's). */
  huWindow?: readonly [number, number];
  /** Algorithm 1 variant (default 'monai'), click-window stitching (default 'sum'), MONAI's strict inside test (default true). */
  mergeMode?: MergeMode;
  stitch?: 'sum' | 'mean';
  strictInside?: boolean;
  /** Bound on the logits held at once by automatic segmentation (classes are processed in groups); default 2 GiB. */
  autoLogitBytes?: number;
  /**
   * How a click is answered: 'edit' (default) runs the point head alone and merges it into the
   * current mask of the class by Algorithm 1 (keeps earlier edits; cheaper); 'bundle' re-runs the
   * class head in the click windows and merges the point head into it, as MONAI's bundle does.
   */
  clickMode?: 'edit' | 'bundle';
  /**
   * misfm, not MONAI: a click whose centred window was never computed uses a cached window that holds
   * it at least this many working-grid voxels inside (a later click near earlier ones then runs the
   * point head alone). Off by default: MONAI centres a window on every click.
   */
  reuseWindows?: number;
  /** Called after each window the image encoder runs on (not for cache hits); diagnostics and tests. */
  onEncode?: (w: Window) => void;
}

type Lab = Uint8Array | Uint16Array;

class Session implements Vista3dSession {
  readonly classes: ReadonlyMap<number, string> = classTable();
  readonly #cache: FeatureCache | null;
  readonly #reo: Reoriented;
  readonly #beforeResample: Geometry;
  readonly #work: Geometry;
  #tensor: Tensor | null;
  readonly #shape: Triple;
  /** Work voxel index (per axis) -> offset of the image voxel it reads (nearest), summed over axes. */
  readonly #read: [Int32Array, Int32Array, Int32Array];
  /** Reoriented image voxel index (per axis) -> work voxel index it reads (nearest), and its image offset. */
  readonly #back: [Int32Array, Int32Array, Int32Array];
  readonly #offsets: [Int32Array, Int32Array, Int32Array];
  /** The window every pass uses: o.roi, fitted to the working grid when o.fitWindow. */
  readonly #roi: Triple;

  constructor(readonly image: Volume, readonly model: VISTA3D, readonly o: Vista3dSessionOptions) {
    const roi = o.roi ?? [128, 128, 128];
    const div = model.sizeDivisor;
    if (roi.some((r) => !Number.isInteger(r) || r < div || r % div !== 0)) throw new MisfmError('ARGUMENT', `the VISTA3D window [${roi.join(',')}] must be positive multiples of ${div} for this model`);
    if (o.reuseWindows !== undefined && !(Number.isInteger(o.reuseWindows) && o.reuseWindows >= 0)) throw new MisfmError('ARGUMENT', `reuseWindows must be a whole number of voxels >= 0, got ${o.reuseWindows}`);
    this.#cache = (o.cacheBytes ?? 1 << 30) > 0 ? new FeatureCache(o.cacheBytes ?? 1 << 30) : null;
    this.#reo = reorient(image, 'RAS');
    this.#beforeResample = geometryOf(this.#reo.volume);
    const work = resampleToSpacing(this.#reo.volume, o.spacing ?? [1.5, 1.5, 1.5], { interpolation: 'linear' });
    this.#work = geometryOf(work);
    const [lo, hi] = o.huWindow ?? VISTA3D_HU_WINDOW;
    const scaled = clipAndScale(work, { lo, hi, outLo: 0, outHi: 1 });
    const zyx = volumeToBatch(scaled, 'image');
    const xyz = zyx.permute([0, 1, 4, 3, 2]); zyx.dispose();
    this.#tensor = xyz.contiguous(); xyz.dispose();
    if ((o.device ?? 'cpu') !== 'cpu') { const d = this.#tensor.to(o.device!); this.#tensor.dispose(); this.#tensor = d; }
    this.#shape = [this.#work.size[0], this.#work.size[1], this.#work.size[2]];
    this.#roi = o.fitWindow === true ? fitWindowToImage(this.#shape, roi, div) : roi;
    // Resampling keeps the direction, so both maps are separable (the taps resampleToReference uses).
    const fwd = nearestIndexMaps(this.#beforeResample, this.#work), back = nearestIndexMaps(this.#work, this.#beforeResample);
    if (fwd === null || back === null) throw new MisfmError('GEOMETRY', 'VISTA3D session: the working grid lost the image direction');
    this.#offsets = permuteFlipOffsets([image.size[0], image.size[1], image.size[2]], this.#reo.map);
    this.#read = [0, 1, 2].map((a) => Int32Array.from(fwd[a]!, (i) => this.#offsets[a]![i]!)) as [Int32Array, Int32Array, Int32Array];
    this.#back = back;
  }

  get #ctx(): InferContext {
    return { model: this.model, cache: this.#cache, ...(this.o.onEncode === undefined ? {} : { onEncode: this.o.onEncode }) };
  }

  get #img(): Tensor {
    if (this.#tensor === null) throw new MisfmError('ARGUMENT', 'the VISTA3D session was disposed');
    return this.#tensor;
  }

  /** Work-grid labels in (x,y,z) C-order (z fastest) back to the image grid. */
  #toImage(lab: Lab): Volume {
    const [X, Y, Z] = this.#shape;
    const data = lab instanceof Uint16Array ? new Uint16Array(lab.length) : new Uint8Array(lab.length);
    for (let x = 0; x < X; x++) for (let y = 0; y < Y; y++) for (let z = 0; z < Z; z++) data[x + X * (y + Y * z)] = lab[(x * Y + y) * Z + z]!;
    const onWork: Volume = { data, ...this.#work } as Volume;
    const back = resampleToReference(onWork, this.#beforeResample, { interpolation: 'nearest' });
    return undoReorient(back, this.#reo);
  }

  /** The base's labels as an output array (uint8 when every value fits, else uint16), checked. */
  #baseLabels(v: Volume, extra: number): Lab {
    const g = this.image;
    if (v.size.some((s, i) => s !== g.size[i])) throw new MisfmError('ARGUMENT', `the base segmentation has size ${v.size.join('x')}, the image ${g.size.join('x')}`);
    const off = (a: number, b: number, tol: number): boolean => Math.abs(a - b) > tol;
    if (v.spacing.some((s, i) => off(s, g.spacing[i]!, 1e-4 * g.spacing[i]!)) || v.origin.some((o, i) => off(o, g.origin[i]!, 1e-3 * Math.max(1, g.spacing[i]!)))
      || v.direction.some((d, i) => off(d, g.direction[i]!, 1e-4))) {
      throw new MisfmError('ARGUMENT', 'the base segmentation does not lie on the image grid (its spacing, origin or direction differ)');
    }
    const d = v.data;
    if (d instanceof Uint8Array && extra <= 255) return d.slice();
    let max = extra;
    for (let i = 0; i < d.length; i++) {
      const val = d[i]!;
      if (val > max) max = val;
      if (!(val >= 0 && val <= 65535 && Number.isInteger(val))) throw new MisfmError('ARGUMENT', `the base segmentation holds ${val}, not a label value`);
    }
    return max <= 255 ? Uint8Array.from(d as ArrayLike<number>) : Uint16Array.from(d as ArrayLike<number>);
  }

  async autoSegment(request: readonly (number | string)[] | 'everything', onProgress?: (done: number, total: number) => void): Promise<Volume> {
    const classes = autoClasses(request);
    const [X, Y, Z] = this.#shape;
    const vol = X * Y * Z;
    const per = Math.max(1, Math.floor((this.o.autoLogitBytes ?? 2 ** 31) / (4 * vol)));
    const groups: number[][] = [];
    for (let i = 0; i < classes.length; i += per) groups.push(classes.slice(i, i + per));
    const best = new Float32Array(vol).fill(0);
    const lab = new Uint16Array(vol);
    let done = 0;
    const roi = this.#roi;
    for (const g of groups) {
      const r = autoLogits(this.#ctx, this.#img, g, {
        roi, overlap: this.o.overlap ?? 0.25, blend: this.o.blend ?? 'constant',
        onProgress: (d, t) => onProgress?.(done * t + d, groups.length * t),
      });
      // Running argmax over groups: the bundle's argmax+1 with 0 where every logit is <= 0.
      for (let b = 0; b < g.length; b++) for (let j = 0; j < vol; j++) {
        const v = r.logits[b * vol + j]!;
        if (v > best[j]!) { best[j] = v; lab[j] = g[b]!; }
      }
      done++;
      await new Promise((res) => setImmediate(res));
    }
    return this.#toImage(Math.max(...classes) <= 255 ? Uint8Array.from(lab) : lab);
  }

  async click(points: readonly ClickPoint[], base: Volume | null, onProgress?: (done: number, total: number) => void): Promise<ClickResult> {
    const img = this.image;
    const nMax = this.model.options.nClasses;
    points.forEach((p, i) => {
      if (!Number.isInteger(p.label) || p.label < 1 || p.label >= nMax) throw new MisfmError('ARGUMENT', `click ${i + 1}: label ${p.label} is not a class value (1..${nMax - 1}; above ${this.model.options.lastSupported} is zero-shot)`);
      if (p.ijk.some((c, a) => !Number.isFinite(c) || c < 0 || c > img.size[a]! - 1)) {
        throw new MisfmError('ARGUMENT', `click ${i + 1} (${this.classes.get(p.label) ?? p.label}) at (${p.ijk.join(',')}) is outside the image (size ${img.size.join('x')})`);
      }
    });
    const maxClicked = Math.max(0, ...points.map((p) => p.label));
    // The output starts as the base: only voxels whose work-grid label changes are written.
    const out: Lab = base === null ? (maxClicked <= 255 ? new Uint8Array(img.data.length) : new Uint16Array(img.data.length)) : this.#baseLabels(base, maxClicked);
    const [X, Y, Z] = this.#shape;
    // Work-grid labels, read from the base on demand; state 0 = not read, 1 = read, 2 = changed.
    const work = new Uint16Array(X * Y * Z), state = new Uint8Array(X * Y * Z);
    const [rx, ry, rz] = this.#read;
    const load = (b: Box): void => {
      for (let x = b.start[0]; x < b.start[0] + b.size[0]; x++) for (let y = b.start[1]; y < b.start[1] + b.size[1]; y++) {
        const row = (x * Y + y) * Z, o = rx[x]! + ry[y]!;
        for (let z = b.start[2]; z < b.start[2] + b.size[2]; z++) if (state[row + z] === 0) { state[row + z] = 1; work[row + z] = out[o + rz[z]!]!; }
      }
    };
    const groups = new Map<number, ClickPoint[]>();
    for (const p of points) groups.set(p.label, [...(groups.get(p.label) ?? []), p]);
    let windowsComputed = 0, cacheHits = 0, done = 0;
    const roi = this.#roi;
    const bundle = (this.o.clickMode ?? 'edit') === 'bundle';
    const changedBoxes: Box[] = [];
    for (const [label, pts] of groups) {
      const special = SPECIAL_INDEX.includes(label) ? 2 : 0;
      const coords = pts.map((p) => {
        const w = worldToVoxel(this.#work, voxelToWorld(img, p.ijk));
        return w.map((c, a) => Math.min(this.#shape[a]! - 1, Math.max(0, Math.round(c))));
      });
      const labels = pts.map((p) => (p.positive ? 1 : 0) + special);
      // The bundle runs the class head again for a supported class; zero-shot classes go point-only.
      const withClass = bundle && label <= this.model.options.lastSupported;
      const prev = bundle ? null : (b: Box): Float32Array => {
        load(b);
        const m = new Float32Array(b.size[0] * b.size[1] * b.size[2]);
        let j = 0;
        for (let x = b.start[0]; x < b.start[0] + b.size[0]; x++) for (let y = b.start[1]; y < b.start[1] + b.size[1]; y++) {
          const row = (x * Y + y) * Z;
          for (let z = b.start[2]; z < b.start[2] + b.size[2]; z++) m[j++] = work[row + z] === label ? 1 : -1;
        }
        return m;
      };
      const r = noGrad(() => pointLogitsInBox(this.#ctx, this.#img, { coords, labels }, {
        roi, classVector: withClass ? [label] : null, promptClass: [label], prev, stitch: this.o.stitch ?? 'sum', strictInside: this.o.strictInside ?? true, mergeMode: this.o.mergeMode ?? 'monai',
        reuseMargin: this.o.reuseWindows ?? null,
        onProgress: (d, t) => onProgress?.(done + d, done + t),
      }));
      done += r.windowsComputed + r.cacheHits;
      windowsComputed += r.windowsComputed; cacheHits += r.cacheHits;
      const b = r.box;
      load(b);
      let j = 0;
      for (let x = b.start[0]; x < b.start[0] + b.size[0]; x++) for (let y = b.start[1]; y < b.start[1] + b.size[1]; y++) {
        const row = (x * Y + y) * Z;
        for (let z = b.start[2]; z < b.start[2] + b.size[2]; z++, j++) {
          const v = r.logits[j]!, q = row + z;
          if (Number.isNaN(v)) continue;
          const next = v > 0 ? label : work[q] === label ? 0 : work[q]!;
          if (next !== work[q]) { work[q] = next; state[q] = 2; }
        }
      }
      changedBoxes.push(b);
      await new Promise((res) => setImmediate(res));
    }
    this.#writeBack(out, work, state, changedBoxes);
    const labels: Volume = { data: out, size: [...img.size], spacing: [...img.spacing], origin: [...img.origin], direction: [...img.direction] } as Volume;
    return { labels, windowsComputed, cacheHits };
  }

  /**
   * Write changed work-grid labels into the image-grid output: every image voxel whose nearest
   * work voxel (the taps #toImage resamples with) lies in a box and changed takes its label.
   */
  #writeBack(out: Lab, work: Uint16Array, state: Uint8Array, boxes: readonly Box[]): void {
    const [, Y, Z] = this.#shape;
    const [bx, by, bz] = this.#back;
    const [ox, oy, oz] = this.#offsets;
    // Reoriented-image indices reading work indices [lo, hi): a contiguous run (the taps never decrease).
    const range = (tap: Int32Array, lo: number, hi: number): [number, number] => {
      let a = 0;
      while (a < tap.length && tap[a]! < lo) a++;
      let e = a;
      while (e < tap.length && tap[e]! < hi) e++;
      return [a, e];
    };
    for (const b of boxes) {
      const [x0, x1] = range(bx, b.start[0], b.start[0] + b.size[0]);
      const [y0, y1] = range(by, b.start[1], b.start[1] + b.size[1]);
      const [z0, z1] = range(bz, b.start[2], b.start[2] + b.size[2]);
      for (let i = x0; i < x1; i++) for (let j = y0; j < y1; j++) {
        const row = (bx[i]! * Y + by[j]!) * Z, o = ox[i]! + oy[j]!;
        for (let k = z0; k < z1; k++) {
          const q = row + bz[k]!;
          if (state[q] === 2) out[o + oz[k]!] = work[q]!;
        }
      }
    }
  }

  dispose(): void {
    this.#cache?.clear();
    this.#tensor?.dispose();
    this.#tensor = null;
    this.model.dispose();
  }
}

export async function openVista3dSession(checkpointPath: string, image: Volume, opts: Vista3dSessionOptions = {}): Promise<Vista3dSession> {
  if (opts.threads !== undefined) setNumThreads(opts.threads);
  const { model } = await loadVista3dCheckpoint(checkpointPath);
  try {
    if (opts.device !== undefined) model.toDevice(opts.device);
    return new Session(image, model, opts);
  } catch (err) {
    model.dispose();
    throw err;
  }
}

