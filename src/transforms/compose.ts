/**
 * Composition of transforms over (image, label?) samples with one shared Rng. Each step appends
 * what it did (boxes, flips, random draws) to `sample.trace`, so a pipeline run can be logged,
 * checked for determinism, and mapped back (pasteBack / unpad / flipAxes / undoReorient).
 *
 * Per-sample determinism: give sample i the generator `new Rng(seed).fork(i)`; the result then
 * does not depend on worker count or order.
 */
import type { Vec3, Volume } from '../io/volume.js';
import type { Rng } from '../util/rng.js';
import { cropToBox, type FillOptions } from './box.js';
import { bodyCrop, type BodyCropOptions } from './body-crop.js';
import { clipAndScale, normalizeMeanStd, type ClipScaleOptions, type MeanStdOptions } from './intensity.js';
import { reorient as reorientVolume } from './orientation.js';
import { centerCrop, padToMinSize, randomCrop, type RandomCropOptions } from './pad-crop.js';
import { resampleToSpacing, type ResampleOptions } from './resample.js';
import { randomFlip, randomResizedCrop, type FlipOptions, type ResizedCropOptions } from './spatial-aug.js';
import { MisfmError } from '../util/errors.js';
import { checkPair, geometryOf } from './grid.js';

/** One step's record. */
export interface TraceEntry {
  name: string;
  params: Record<string, unknown>;
}

/** An image with an optional label map on the same grid. */
export interface Sample {
  image: Volume;
  label?: Volume;
  trace?: TraceEntry[];
}

/** A named step. `apply` must not modify its input sample. */
export interface SampleTransform {
  name: string;
  apply(sample: Sample, rng: Rng): Sample;
}

function next(s: Sample, name: string, params: Record<string, unknown>, image: Volume, label: Volume | undefined): Sample {
  const out: Sample = { image, trace: [...(s.trace ?? []), { name, params }] };
  if (label !== undefined) out.label = label;
  return out;
}

/** Run `steps` in order with one Rng. */
export function compose(...steps: SampleTransform[]): SampleTransform {
  return {
    name: `compose(${steps.map((t) => t.name).join(', ')})`,
    apply(sample: Sample, rng: Rng): Sample {
      let s = sample;
      for (const t of steps) {
        try {
          s = t.apply(s, rng);
        } catch (err) {
          if (err instanceof MisfmError) throw new MisfmError(err.code, `transform ${t.name}: ${err.message}`, { cause: err });
          throw err;
        }
      }
      return s;
    },
  };
}

/** Ready-made steps wrapping the transform functions (images get intensity ops; both get spatial ones). */
export const T = {
  clipAndScale(o: ClipScaleOptions = {}): SampleTransform {
    return { name: 'clipAndScale', apply: (s) => next(s, 'clipAndScale', { ...o }, clipAndScale(s.image, o), s.label) };
  },
  normalizeMeanStd(o: Omit<MeanStdOptions, 'randomBackground'> & { randomBackground?: boolean } = {}): SampleTransform {
    return {
      name: 'normalizeMeanStd',
      apply: (s, rng) => {
        const { randomBackground, ...rest } = o;
        const opts: MeanStdOptions = randomBackground === true ? { ...rest, randomBackground: rng } : rest;
        return next(s, 'normalizeMeanStd', { ...rest }, normalizeMeanStd(s.image, opts), s.label);
      },
    };
  },
  /** Reorient both to `code` (default LPS); trace keeps the map and the original geometry. */
  reorient(code = 'LPS'): SampleTransform {
    return {
      name: 'reorient',
      apply: (s) => {
        const r = reorientVolume(s.image, code);
        const l = s.label === undefined ? undefined : reorientVolume(s.label, code).volume;
        return next(s, 'reorient', { code, map: r.map, original: r.original }, r.volume, l);
      },
    };
  },
  /** Image with `interpolation` (default linear), label always nearest. */
  resampleToSpacing(spacing: Vec3, o: ResampleOptions = {}): SampleTransform {
    return {
      name: 'resampleToSpacing',
      apply: (s) => {
        const original = geometryOf(s.image);
        const img = resampleToSpacing(s.image, spacing, o);
        const lab = s.label === undefined ? undefined : resampleToSpacing(s.label, spacing, { ...o, interpolation: 'nearest' });
        return next(s, 'resampleToSpacing', { spacing: [...spacing], original }, img, lab);
      },
    };
  },
  /** Body crop computed on the image (CT in HU), applied to both. */
  bodyCrop(o: BodyCropOptions = {}): SampleTransform {
    return {
      name: 'bodyCrop',
      apply: (s) => {
        checkPair('bodyCrop', s.image, s.label);
        const { volume, box } = bodyCrop(s.image, o);
        const lab = s.label === undefined ? undefined : cropToBox(s.label, box);
        return next(s, 'bodyCrop', { box, originalSize: [...s.image.size] }, volume, lab);
      },
    };
  },
  /** Pad to at least `size` (x,y,z); the label is padded with 0. */
  padToMinSize(size: Vec3, fill: FillOptions = {}): SampleTransform {
    return {
      name: 'padToMinSize',
      apply: (s) => {
        const r = padToMinSize(s.image, size, fill);
        const l = s.label === undefined ? undefined : padToMinSize(s.label, size, { mode: 'constant', value: 0 }).volume;
        return next(s, 'padToMinSize', { pad: r.pad }, r.volume, l);
      },
    };
  },
  centerCrop(size: Vec3): SampleTransform {
    return {
      name: 'centerCrop',
      apply: (s) => {
        const r = centerCrop(s.image, size);
        const l = s.label === undefined ? undefined : centerCrop(s.label, size).volume;
        return next(s, 'centerCrop', { box: r.box }, r.volume, l);
      },
    };
  },
  /** Random crop of `size` (x,y,z); foreground oversampling uses the label. */
  randomCrop(size: Vec3, o: RandomCropOptions = {}): SampleTransform {
    return {
      name: 'randomCrop',
      apply: (s, rng) => {
        const r = randomCrop(s.image, s.label, size, rng, o);
        return next(s, 'randomCrop', { ...r.choice }, r.image, r.label);
      },
    };
  },
  randomFlip(o: FlipOptions = {}): SampleTransform {
    return {
      name: 'randomFlip',
      apply: (s, rng) => {
        const r = randomFlip(s.image, s.label, rng, o);
        return next(s, 'randomFlip', { flipped: r.flipped }, r.image, r.label);
      },
    };
  },
  randomResizedCrop(size: Vec3, o: ResizedCropOptions = {}): SampleTransform {
    return {
      name: 'randomResizedCrop',
      apply: (s, rng) => {
        const r = randomResizedCrop(s.image, s.label, size, rng, o);
        return next(s, 'randomResizedCrop', { ...r.choice }, r.image, r.label);
      },
    };
  },
};
