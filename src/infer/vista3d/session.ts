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
 * Clicks are answered with MONAI's "edit a previous result" path: for each clicked class, the
 * point head runs point-only in the click-centred windows and its logits are merged into the
 * current mask of that class (±1 logits from `base`) by Algorithm 1; voxels outside the windows
 * keep their label. The class prompt decides supported vs zero-shot (values above 132).
 */
import type { Tensor } from '../../engine/tensor.js';
import { noGrad, setNumThreads } from '../../engine/creation.js';
import type { Vec3, Volume } from '../../io/volume.js';
import { voxelToWorld, worldToVoxel } from '../../io/volume.js';
import { MisfmError } from '../../util/errors.js';
import { reorient, undoReorient, type Reoriented } from '../../transforms/orientation.js';
import { resampleToReference, resampleToSpacing } from '../../transforms/resample.js';
import { clipAndScale } from '../../transforms/intensity.js';
import { volumeToBatch } from '../../transforms/volume-tensor.js';
import { geometryOf, type Geometry } from '../../transforms/grid.js';
import { loadVista3dCheckpoint } from '../../models/vista3d/checkpoint.js';
import type { VISTA3D } from '../../models/vista3d/model.js';
import type { MergeMode } from '../../models/vista3d/merge.js';
import { SPECIAL_INDEX } from '../../models/vista3d/classes.js';
import { FeatureCache } from './cache.js';
import { autoLogits, pointLogits } from './inferer.js';
import { autoClasses, classTable } from './classes.js';
import type { Triple } from './windows.js';

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
  /** Budget of the window feature cache in bytes (default 1 GiB; 0 disables it). */
  cacheBytes?: number;
  /** Working spacing in mm (default 1.5, the bundle's). */
  spacing?: Vec3;
  /** Window (default 128³, the bundle's; must be a multiple of the model's size divisor). */
  roi?: Triple;
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

  constructor(readonly image: Volume, readonly model: VISTA3D, readonly o: Vista3dSessionOptions) {
    const roi = o.roi ?? [128, 128, 128];
    const div = model.sizeDivisor;
    if (roi.some((r) => !Number.isInteger(r) || r < div || r % div !== 0)) throw new MisfmError('ARGUMENT', `the VISTA3D window [${roi.join(',')}] must be positive multiples of ${div} for this model`);
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
    this.#shape = [this.#work.size[0], this.#work.size[1], this.#work.size[2]];
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

  /** An image-grid label map to the work grid, (x,y,z) C-order. */
  #fromImage(v: Volume): Uint16Array {
    const g = this.image;
    if (v.size.some((s, i) => s !== g.size[i])) throw new MisfmError('ARGUMENT', `the base segmentation has size ${v.size.join('x')}, the image ${g.size.join('x')}`);
    const onWork = resampleToReference(reorient(v, 'RAS').volume, this.#work, { interpolation: 'nearest' });
    const [X, Y, Z] = this.#shape;
    const out = new Uint16Array(X * Y * Z);
    for (let x = 0; x < X; x++) for (let y = 0; y < Y; y++) for (let z = 0; z < Z; z++) {
      const val = onWork.data[x + X * (y + Y * z)]!;
      if (!Number.isInteger(val) || val < 0 || val > 65535) throw new MisfmError('ARGUMENT', `the base segmentation holds ${val}, not a label value`);
      out[(x * Y + y) * Z + z] = val;
    }
    return out;
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
    const roi = this.o.roi ?? [128, 128, 128];
    for (const g of groups) {
      const r = autoLogits({ model: this.model, cache: this.#cache }, this.#img, g, {
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
    const current = base === null ? new Uint16Array(this.#shape[0] * this.#shape[1] * this.#shape[2]) : this.#fromImage(base);
    const groups = new Map<number, ClickPoint[]>();
    for (const p of points) groups.set(p.label, [...(groups.get(p.label) ?? []), p]);
    let windowsComputed = 0, cacheHits = 0, done = 0;
    const roi = this.o.roi ?? [128, 128, 128];
    for (const [label, pts] of groups) {
      const special = SPECIAL_INDEX.includes(label) ? 2 : 0;
      const coords = pts.map((p) => {
        const w = worldToVoxel(this.#work, voxelToWorld(img, p.ijk));
        return w.map((c, a) => Math.min(this.#shape[a]! - 1, Math.max(0, Math.round(c))));
      });
      const labels = pts.map((p) => (p.positive ? 1 : 0) + special);
      const prev = new Float32Array(current.length);
      for (let j = 0; j < prev.length; j++) prev[j] = current[j] === label ? 1 : -1;
      const r = noGrad(() => pointLogits({ model: this.model, cache: this.#cache }, this.#img, { coords, labels }, {
        roi, promptClass: [label], prevMask: prev, stitch: this.o.stitch ?? 'sum', strictInside: this.o.strictInside ?? true, mergeMode: this.o.mergeMode ?? 'monai',
        onProgress: (d, t) => onProgress?.(done + d, done + t),
      }));
      done += r.windowsComputed + r.cacheHits;
      windowsComputed += r.windowsComputed; cacheHits += r.cacheHits;
      for (let j = 0; j < current.length; j++) {
        const v = r.logits[j]!;
        if (Number.isNaN(v)) continue;
        if (v > 0) current[j] = label; else if (current[j] === label) current[j] = 0;
      }
      await new Promise((res) => setImmediate(res));
    }
    let maxLabel = 0;
    for (const v of current) if (v > maxLabel) maxLabel = v;
    return { labels: this.#toImage(maxLabel <= 255 ? Uint8Array.from(current) : current), windowsComputed, cacheHits };
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
    return new Session(image, model, opts);
  } catch (err) {
    model.dispose();
    throw err;
  }
}

