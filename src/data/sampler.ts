/**
 * Making samples from the cache: where a crop goes, whether it is centred on foreground, which
 * axes flip, and turning the raw crop into float32 (and int16 labels). Runs in loader workers,
 * or in any thread (tests). Every random choice of sample `index` comes from its own generator,
 * `new Rng(seed).fork(1).fork(index)`, so a sample does not depend on which worker makes it or
 * when.
 */
import { MisfmError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import type { VoxelArray } from '../io/volume.js';
import { readCrop, startRange, type PadSpec } from './crop.js';
import { augmentActive, augmentCrop, type AugmentRecord, type AugmentSpec } from './augment.js';
import { readForeground, type ForegroundSamples } from './foreground.js';
import { affineFor, flipInto, flipLabelsInto, type CustomIntensity, type FlipSpec, type IntensitySpec } from './intensity.js';
import { CacheVolume, type Box3, type ReadStrategy } from './reader.js';
import type { IntensityStats } from './stats.js';

/** What a worker needs to know about a case (sent with each task). */
export interface SampleCase {
  id: string;
  imageFile: string;
  labelFile?: string;
  foregroundFile?: string;
  /** This case's label value -> class index (beats the config's labelMap); foreground crops centre only on mapped values. */
  labelMap?: [number, number][];
  modality: 'ct' | 'other';
  stats?: IntensityStats;
}

/** Settings shared by all samples of a loader (plain data). */
export interface SamplerConfig {
  mode: 'pretrain' | 'segment';
  cropSize: Box3;
  seed: number;
  /** Padding for volumes smaller than the crop; constant value undefined = air (-1000) for CT, case minimum otherwise. */
  pad: { mode: 'constant'; value?: number } | { mode: 'reflect' };
  intensity: IntensitySpec;
  flip: FlipSpec | false;
  /** Probability that a segment-mode crop is centred on a random voxel of a random present class. */
  foregroundP: number;
  /** Label value -> class index; values not listed become 0. Undefined keeps values. */
  labelMap?: [number, number][];
  /** Intensity/texture augmentation of segment-mode crops (after normalisation and flips). */
  augment?: AugmentSpec;
  /** Read pattern (default auto). */
  strategy?: ReadStrategy;
  /** Cache files kept open per worker. Default 32. */
  maxOpen?: number;
}

/** How one sample was made (returned with the batch). */
export interface SampleInfo {
  index: number;
  caseId: string;
  /** Crop start (z, y, x) in cache voxels; negative or past the end where padded. */
  start: Box3;
  flips: [boolean, boolean, boolean];
  /** The class the crop was centred on, or null for a uniformly placed crop. */
  foregroundClass: number | null;
  /** Augmentations applied and their drawn strengths (segment mode with `augment` only). */
  augment?: AugmentRecord;
}

/** A batch as produced by a worker: samples stacked along the first axis, (N, D, H, W) C order. */
export interface RawBatch {
  image: Float32Array;
  label?: Int16Array;
  samples: SampleInfo[];
}

/** Samples a crop placement for sample `index` (pure: the same inputs give the same crop). */
export function placeCrop(rng: Rng, shape: Box3, crop: Box3, centre?: Box3): Box3 {
  const out: number[] = [];
  for (let a = 0; a < 3; a++) {
    const [lo, hi] = startRange(shape[a]!, crop[a]!);
    if (centre !== undefined) {
      const s = centre[a]! - Math.floor(crop[a]! / 2);
      out.push(Math.min(hi, Math.max(lo, s)));
    } else {
      out.push(rng.randint(lo, hi));
    }
  }
  return out as Box3;
}

class Lru<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly max: number, private readonly dispose: (v: V) => void = () => undefined) {}
  get(key: string, make: () => V): V {
    let v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
      return v;
    }
    v = make();
    this.map.set(key, v);
    while (this.map.size > this.max) {
      const [k, old] = this.map.entries().next().value as [string, V];
      this.map.delete(k);
      this.dispose(old);
    }
    return v;
  }
  clear(): void {
    for (const v of this.map.values()) this.dispose(v);
    this.map.clear();
  }
}

/** Makes samples and batches from cache files, keeping recently used files open. */
export class SampleMaker {
  readonly config: SamplerConfig;
  private readonly sampleRoot: Rng;
  private readonly files: Lru<CacheVolume>;
  private readonly fg = new Lru<ForegroundSamples>(64);
  private readonly lut: Int32Array | undefined;
  private custom: CustomIntensity | undefined;

  constructor(config: SamplerConfig) {
    this.config = config;
    this.sampleRoot = new Rng(config.seed).fork(1);
    this.files = new Lru<CacheVolume>(config.maxOpen ?? 32, (v) => v.close());
    if (config.labelMap !== undefined) this.lut = lutOf(config.labelMap);
  }

  /** Per-case lookup tables (a case's own labelMap), built once per case. */
  private readonly caseLuts = new Map<string, Int32Array>();
  private lutFor(c: SampleCase): Int32Array | undefined {
    if (c.labelMap === undefined) return this.lut;
    let l = this.caseLuts.get(c.id);
    if (l === undefined) { l = lutOf(c.labelMap); this.caseLuts.set(c.id, l); }
    return l;
  }

  /** Load a custom intensity module (workers call this once before the first batch). */
  async init(): Promise<void> {
    const spec = this.config.intensity;
    if (spec.name !== 'custom') return;
    const mod = await import(spec.module) as Record<string, unknown>;
    if (typeof mod['intensity'] !== 'function') throw new MisfmError('ARGUMENT', `intensity module ${spec.module} does not export a function "intensity"`);
    this.custom = mod['intensity'] as CustomIntensity;
  }

  private open(file: string): CacheVolume {
    return this.files.get(file, () => CacheVolume.open(file));
  }

  /** Make samples `indices` of `cases` (one case per index) into one stacked batch. */
  makeBatch(indices: readonly number[], cases: readonly SampleCase[]): RawBatch {
    const [d, h, w] = this.config.cropSize;
    const n = d * h * w;
    const seg = this.config.mode === 'segment';
    const image = new Float32Array(indices.length * n);
    const label = seg ? new Int16Array(indices.length * n) : undefined;
    const samples: SampleInfo[] = [];
    indices.forEach((index, k) => {
      const c = cases[k]!;
      samples.push(this.makeSample(index, c, image, label, k * n));
    });
    return label !== undefined ? { image, label, samples } : { image, samples };
  }

  /** Make one sample into `image` (and `label`) at `offset`. */
  makeSample(index: number, c: SampleCase, image: Float32Array, label: Int16Array | undefined, offset: number): SampleInfo {
    const cfg = this.config;
    const rng = this.sampleRoot.fork(index);
    const img = this.open(c.imageFile);
    const shape = img.shape;
    const seg = cfg.mode === 'segment';
    if (seg && c.labelFile === undefined) throw new MisfmError('DATA', `case ${c.id} has no label (segment mode needs labels)`, { file: c.imageFile });
    // Always drawn, so that the rest of the stream does not depend on the mode.
    const forced = rng.uniform() < cfg.foregroundP && seg;
    let centre: Box3 | undefined;
    let fgClass: number | null = null;
    if (forced && c.foregroundFile !== undefined) {
      const fg = this.fg.get(c.foregroundFile, () => readForeground(c.foregroundFile!));
      const own = c.labelMap !== undefined ? this.lutFor(c)! : undefined;
      const present = fg.classes.filter((k) => k.indices.length > 0 && (own === undefined || (k.value >= 0 && k.value < own.length && own[k.value]! !== 0)));
      if (present.length > 0) {
        const cls = present[rng.randint(0, present.length - 1)]!;
        const flat = cls.indices[rng.randint(0, cls.indices.length - 1)]!;
        const [, H, W] = fg.shape;
        centre = [Math.floor(flat / (H * W)), Math.floor(flat / W) % H, flat % W];
        fgClass = cls.value;
      }
    }
    const start = placeCrop(rng, shape, cfg.cropSize, centre);
    const flips: [boolean, boolean, boolean] = [false, false, false];
    if (cfg.flip !== false) for (let a = 0; a < 3; a++) flips[a] = rng.uniform() < cfg.flip.p && cfg.flip.axes[a]!;
    const pad: PadSpec = cfg.pad.mode === 'reflect' ? cfg.pad
      : { mode: 'constant', value: cfg.pad.value ?? (c.modality === 'ct' ? -1000 : (c.stats?.min ?? 0)) };
    const raw = readCrop(img, start, cfg.cropSize, pad, cfg.strategy);
    const f32 = this.floatScratch(raw.length);
    if (this.custom !== undefined) {
      this.custom(raw, f32, { caseId: c.id, shape: cfg.cropSize, ...(c.stats !== undefined ? { stats: c.stats } : {}), params: (cfg.intensity as { params?: unknown }).params });
      flipInto(f32, cfg.cropSize, flips, image, offset);
    } else {
      f32.set(raw);
      flipInto(f32, cfg.cropSize, flips, image, offset, affineFor(cfg.intensity, c.stats, c.id));
    }
    const augment = seg && augmentActive(cfg.augment)
      ? augmentCrop(image.subarray(offset, offset + raw.length), cfg.cropSize, cfg.augment, rng.fork(2)) : undefined;
    if (label !== undefined) {
      const lab = this.open(c.labelFile!);
      if (lab.shape.some((s, a) => s !== shape[a])) {
        throw new MisfmError('DATA', `label cache ${lab.shape.join('x')} does not match image cache ${shape.join('x')}`, { file: c.labelFile! });
      }
      const lraw = readCrop(lab, start, cfg.cropSize, cfg.pad.mode === 'reflect' ? cfg.pad : { mode: 'constant', value: 0 }, cfg.strategy);
      const lut = this.lutFor(c);
      flipLabelsInto(lut !== undefined ? mapLabels(lraw, lut) : lraw, cfg.cropSize, flips, label, offset);
    }
    return { index, caseId: c.id, start, flips, foregroundClass: fgClass, ...(augment !== undefined ? { augment } : {}) };
  }

  private f32 = new Float32Array(0);

  /** A reused float buffer: one crop is converted at a time. */
  private floatScratch(n: number): Float32Array {
    if (this.f32.length !== n) this.f32 = new Float32Array(n);
    return this.f32;
  }

  /** Close open files. */
  close(): void {
    this.files.clear();
    this.fg.clear();
  }
}

/** Label value -> class lookup table (values not listed map to 0). */
function lutOf(map: readonly [number, number][]): Int32Array {
  const lut = new Int32Array(Math.max(0, ...map.map(([v]) => v)) + 1);
  for (const [v, c] of map) if (v >= 0) lut[v] = c;
  return lut;
}

function mapLabels(raw: VoxelArray, lut: Int32Array): Int32Array {
  const out = new Int32Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const v = raw[i]!;
    out[i] = v >= 0 && v < lut.length ? lut[v]! : 0;
  }
  return out;
}
