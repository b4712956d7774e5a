/**
 * VoCo's pretext geometry (spec 1.2-1.4), in misfm's (D, H, W) axes.
 *
 * A prepared volume is (depth, n·roi, n·roi). Base crop k = i·n + j covers W (MONAI X) cell i and
 * H (MONAI Y) cell j, W outer, and the whole depth. A random crop has centre (cx over W, cy over H)
 * drawn with an exclusive upper bound, so it never lies flush with the far edge (spec 10.2). Its
 * label is the in-plane overlap area with each base cell divided by its own area.
 */
import { Rng } from '../../util/rng.js';
import { MisfmError } from '../../util/errors.js';

/** A half-open box in voxels of the prepared (D, H, W) volume. */
export interface Box { d: [number, number]; h: [number, number]; w: [number, number] }

export interface VoCoGeometry {
  /** n: the base crops form an n×n grid in the H-W plane (TPAMI 3, CVPR 4). */
  grid: number;
  /** In-plane crop edge (TPAMI 64). */
  roi: number;
  /** Base-cell edge used for the labels; the CVPR code keeps 96 whatever roi is. Default roi. */
  baseRoi?: number;
  /** Crop depth = the prepared volume's depth: every crop spans it (TPAMI 64). */
  depth: number;
}

/** The prepared volume's shape (D, H, W). */
export function volumeShape(g: VoCoGeometry): [number, number, number] {
  return [g.depth, g.grid * g.roi, g.grid * g.roi];
}

/** Base-crop boxes, index k = i·n + j with i along W (outer) and j along H. */
export function baseBoxes(g: VoCoGeometry): Box[] {
  const out: Box[] = [];
  for (let i = 0; i < g.grid; i++) for (let j = 0; j < g.grid; j++) {
    out.push({ d: [0, g.depth], h: [j * g.roi, (j + 1) * g.roi], w: [i * g.roi, (i + 1) * g.roi] });
  }
  return out;
}

/** numpy's randint(lo, hi) (exclusive hi) for the centre: cx ∈ [half, maxRoi − half − 1]. */
export function drawCenter(rng: Rng, g: VoCoGeometry): [number, number] {
  const half = Math.floor(g.roi / 2), maxRoi = g.grid * g.roi;
  const cx = rng.randint(half, maxRoi - half - 1);
  const cy = rng.randint(half, maxRoi - half - 1);
  return [cx, cy];
}

/** The random crop around centre (cx over W, cy over H), full depth. */
export function randomBox(center: readonly [number, number], g: VoCoGeometry): Box {
  const half = Math.floor(g.roi / 2);
  const [cx, cy] = center;
  return { d: [0, g.depth], h: [cy - half, cy + half], w: [cx - half, cx + half] };
}

/**
 * Overlap-proportion labels [n²] (get_position_label, float64 as in numpy): for base cell (i, j),
 * the overlap area of the random crop with [i·b, (i+1)·b) × [j·b, (j+1)·b) over roi², 0 when the
 * overlap is empty on either axis.
 */
export function positionLabels(center: readonly [number, number], roi: number, baseRoi: number, n: number): Float64Array {
  const half = Math.floor(roi / 2);
  const [cx, cy] = center;
  const xMin = cx - half, xMax = cx + half, yMin = cy - half, yMax = cy + half;
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
    const dx = Math.min((i + 1) * baseRoi, xMax) - Math.max(i * baseRoi, xMin);
    const dy = Math.min((j + 1) * baseRoi, yMax) - Math.max(j * baseRoi, yMin);
    out[i * n + j] = dx > 0 && dy > 0 ? (dx * dy) / (roi * roi) : 0;
  }
  return out;
}

/** Copy a box out of a (D, H, W) volume. */
export function cropBox(vol: Float32Array, shape: readonly [number, number, number], b: Box): Float32Array {
  const [D, H, W] = shape;
  if (b.d[0] < 0 || b.h[0] < 0 || b.w[0] < 0 || b.d[1] > D || b.h[1] > H || b.w[1] > W) {
    throw new MisfmError('ARGUMENT', `crop box d${b.d} h${b.h} w${b.w} lies outside the volume ${D}x${H}x${W}`);
  }
  const d = b.d[1] - b.d[0], h = b.h[1] - b.h[0], w = b.w[1] - b.w[0];
  const out = new Float32Array(d * h * w);
  for (let z = 0; z < d; z++) for (let y = 0; y < h; y++) {
    const src = ((b.d[0] + z) * H + (b.h[0] + y)) * W + b.w[0];
    out.set(vol.subarray(src, src + w), (z * h + y) * w);
  }
  return out;
}

/** One volume's VoCo sample before augmentation. */
export interface VoCoVolumeSample {
  /** sw random crops, then n² base crops, each (depth, roi, roi). */
  random: Float32Array[];
  bases: Float32Array[];
  centers: [number, number][];
  /** [sw][n²] labels (float64). */
  labels: Float64Array[];
}

/** Crops and labels of one prepared volume (spec 1.2-1.3): sw random crops (centres drawn in order), n² base crops. */
export function vocoSample(vol: Float32Array, g: VoCoGeometry, sw: number, rng: Rng): VoCoVolumeSample {
  const shape = volumeShape(g);
  if (vol.length !== shape[0] * shape[1] * shape[2]) {
    throw new MisfmError('ARGUMENT', `VoCo volume has ${vol.length} voxels, expected ${shape.join('x')}`);
  }
  const centers: [number, number][] = [], random: Float32Array[] = [], labels: Float64Array[] = [];
  for (let r = 0; r < sw; r++) {
    const c = drawCenter(rng, g);
    centers.push(c);
    random.push(cropBox(vol, shape, randomBox(c, g)));
    labels.push(positionLabels(c, g.roi, g.baseRoi ?? g.roi, g.grid));
  }
  const bases = baseBoxes(g).map((b) => cropBox(vol, shape, b));
  return { random, bases, centers, labels };
}

/**
 * Row order of the batched network input (spec 1.4): all random crops volume-major
 * (v0 r0..r(sw−1), v1 r0, ...), then all base crops volume-major.
 */
export function assembleRows(samples: readonly VoCoVolumeSample[]): Float32Array[] {
  return [...samples.flatMap((s) => s.random), ...samples.flatMap((s) => s.bases)];
}
