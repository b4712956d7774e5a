/**
 * Spatial augmentation driven by an Rng passed in (deterministic under a seed), applied
 * identically to an image and its label.
 *
 * * randomFlip: each enabled axis flips with probability p. All three axes really flip: PyMIC
 *   >= 2024-09 (flip.py) tests `image.ndim == 3` on a [C,D,H,W] array, so its depth flip never
 *   happens for 3-D volumes; v0.4.0 and this port flip depth too.
 * * randomResizedCrop: PyMIC crop4vf.random_resized_crop: per-axis scale ~ U(lower, upper)
 *   (default 0.7..1.5), crop min(int(out*scale), n) voxels at a uniform start, zoom back to
 *   the output size (scipy zoom, corners aligned; linear for images, nearest for labels).
 *
 * Flips are exact re-indexings with the geometry updated (orientation.permuteFlip), so each
 * output is still a truthful Volume and flipping again with the same axes undoes it.
 */
import type { Vec3, Volume } from '../io/volume.js';
import type { Rng } from '../util/rng.js';
import { MisfmError } from '../util/errors.js';
import { cropToBox, type Box } from './box.js';
import { checkPair, checkProb, checkSize } from './grid.js';
import { permuteFlip } from './orientation.js';
import { zoom, type ResampleOptions } from './resample.js';

export type AxisFlags = [boolean, boolean, boolean];

/** Reverse the voxel order along the flagged axes (x,y,z), geometry updated. */
export function flipAxes(v: Volume, axes: AxisFlags): Volume {
  return permuteFlip(v, { perm: [0, 1, 2], flip: [...axes] });
}

export interface FlipOptions {
  /** Flip probability per axis (default 0.5). */
  p?: number;
  /** Which axes (x,y,z) may flip (default all three). */
  axes?: AxisFlags;
}

/**
 * Flip image and label along each enabled axis with probability p. One uniform draw per
 * enabled axis, in x, y, z order (PyMIC's width, height, depth). Returns the flags used.
 */
export function randomFlip(image: Volume, label: Volume | undefined, rng: Rng, o: FlipOptions = {}): { image: Volume; label?: Volume; flipped: AxisFlags } {
  checkPair('randomFlip', image, label);
  const p = o.p ?? 0.5;
  checkProb('randomFlip', p);
  const enabled = o.axes ?? [true, true, true];
  const flipped = enabled.map((e) => e && rng.uniform() < p) as AxisFlags;
  if (!flipped.some(Boolean)) {
    const out: { image: Volume; label?: Volume; flipped: AxisFlags } = { image: { ...image, data: image.data.slice() }, flipped };
    if (label !== undefined) out.label = { ...label, data: label.data.slice() };
    return out;
  }
  const out: { image: Volume; label?: Volume; flipped: AxisFlags } = { image: flipAxes(image, flipped), flipped };
  if (label !== undefined) out.label = flipAxes(label, flipped);
  return out;
}

export interface ResizedCropOptions {
  /** Per-axis scale bounds (x,y,z); defaults [0.7,0.7,0.7] and [1.5,1.5,1.5]. */
  scaleLower?: Vec3;
  scaleUpper?: Vec3;
  /** Backend for the zoom (default 'js'). */
  backend?: ResampleOptions['backend'];
}

/** What randomResizedCrop drew. */
export interface ResizedCropChoice {
  scale: Vec3;
  box: Box;
}

/**
 * Random resized crop to `outSize` (x,y,z). Draws three scales then three starts, x, y, z order.
 * The image is zoomed linearly (float32), the label with nearest (voxel type kept).
 */
export function randomResizedCrop(image: Volume, label: Volume | undefined, outSize: Vec3, rng: Rng, o: ResizedCropOptions = {}): { image: Volume; label?: Volume; choice: ResizedCropChoice } {
  checkPair('randomResizedCrop', image, label);
  const out = checkSize('randomResizedCrop', outSize, 'output size');
  const lo = o.scaleLower ?? [0.7, 0.7, 0.7], hi = o.scaleUpper ?? [1.5, 1.5, 1.5];
  if (![0, 1, 2].every((a) => lo[a]! > 0 && hi[a]! >= lo[a]!)) {
    throw new MisfmError('ARGUMENT', `randomResizedCrop: need 0 < scaleLower <= scaleUpper, got [${lo.join(',')}] and [${hi.join(',')}]`);
  }
  const scale = [0, 1, 2].map((a) => rng.uniform(lo[a]!, hi[a]!)) as Vec3;
  const crop = [0, 1, 2].map((a) => Math.max(1, Math.min(Math.trunc(out[a]! * scale[a]!), image.size[a]!))) as Vec3;
  const start = [0, 1, 2].map((a) => rng.randint(0, image.size[a]! - crop[a]!)) as Vec3;
  const box: Box = { start, end: [start[0] + crop[0], start[1] + crop[1], start[2] + crop[2]] };
  const backend = o.backend ?? 'js';
  const res: { image: Volume; label?: Volume; choice: ResizedCropChoice } = {
    image: zoom(cropToBox(image, box), out, { interpolation: 'linear', backend }),
    choice: { scale, box },
  };
  if (label !== undefined) res.label = zoom(cropToBox(label, box), out, { interpolation: 'nearest', backend });
  return res;
}
