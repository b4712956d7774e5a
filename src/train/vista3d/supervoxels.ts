/**
 * Supervoxels for VISTA3D's zero-shot training prompts (spec §10.1, §11).
 *
 * The research code makes `label_sv` offline with Algorithm 2: SLIC on SAM ViT-H features summed
 * over three slicing directions, then the largest air component zeroed. SAM's 2.5 GB weights and a
 * GPU are out of reach here, so misfm runs SLIC on the CT intensity itself (misfm's stand-in, named
 * as such in the docs): k-means in (intensity, position) space seeded on a regular grid, each centre
 * searching a 2S window (S = grid step), followed by the same air removal. Supervoxels then follow
 * intensity edges rather than SAM's learnt ones; the sampler that consumes them is the research one.
 * A dataset may bring its own `label_sv` maps instead.
 */
import { largestComponent, morph, type Shape3 } from './sampler.js';

export interface SlicOptions {
  /** Requested number of supervoxels (Algorithm 2: 400 per CT; misfm's default 48 suits a 64³ patch at 3 mm). */
  segments?: number;
  /** Weight of distance against intensity (intensity in [0, 1]): D = ΔI² + (compactness·Δx/S)². Default 0.1. */
  compactness?: number;
  /** k-means iterations (skimage's default 10). */
  iterations?: number;
  /** Voxels below this intensity are air candidates; the largest closed air component gets label 0 (null: keep). Default null. */
  airBelow?: number | null;
}

/**
 * SLIC supervoxels of an [H,W,D] volume (C order): labels 1..K (0 only for removed air). Every voxel
 * gets the label of its nearest centre in the combined distance; centres move to their voxels' means.
 */
export function slicSupervoxels(image: Float32Array, shape: Shape3, o: SlicOptions = {}): Int32Array {
  const [H, W, D] = shape;
  const n = H * W * D;
  if (image.length !== n) throw new Error(`slicSupervoxels: ${image.length} voxels do not fill ${H}x${W}x${D}`);
  const K = Math.max(1, o.segments ?? 48);
  const S = Math.max(1, Math.cbrt(n / K));
  const m = o.compactness ?? 0.1;
  const w = (m / S) ** 2;
  // Seeds at the centres of a regular grid of step S.
  const cx: number[] = [], cy: number[] = [], cz: number[] = [], ci: number[] = [];
  for (let x = S / 2; x < H; x += S) for (let y = S / 2; y < W; y += S) for (let z = S / 2; z < D; z += S) {
    const xi = Math.min(H - 1, Math.floor(x)), yi = Math.min(W - 1, Math.floor(y)), zi = Math.min(D - 1, Math.floor(z));
    cx.push(xi); cy.push(yi); cz.push(zi); ci.push(image[(xi * W + yi) * D + zi]!);
  }
  const k = cx.length;
  const label = new Int32Array(n).fill(-1);
  const dist = new Float64Array(n);
  const sums = new Float64Array(k * 5);
  const r = Math.ceil(S);
  for (let it = 0; it < (o.iterations ?? 10); it++) {
    dist.fill(Infinity);
    for (let c = 0; c < k; c++) {
      const x0 = Math.max(0, Math.floor(cx[c]! - r)), x1 = Math.min(H - 1, Math.ceil(cx[c]! + r));
      const y0 = Math.max(0, Math.floor(cy[c]! - r)), y1 = Math.min(W - 1, Math.ceil(cy[c]! + r));
      const z0 = Math.max(0, Math.floor(cz[c]! - r)), z1 = Math.min(D - 1, Math.ceil(cz[c]! + r));
      for (let x = x0; x <= x1; x++) {
        const dx2 = (x - cx[c]!) ** 2;
        for (let y = y0; y <= y1; y++) {
          const dxy2 = dx2 + (y - cy[c]!) ** 2, row = (x * W + y) * D;
          for (let z = z0; z <= z1; z++) {
            const j = row + z, di = image[j]! - ci[c]!;
            const dd = di * di + w * (dxy2 + (z - cz[c]!) ** 2);
            if (dd < dist[j]!) { dist[j] = dd; label[j] = c; }
          }
        }
      }
    }
    sums.fill(0);
    for (let x = 0, j = 0; x < H; x++) for (let y = 0; y < W; y++) for (let z = 0; z < D; z++, j++) {
      const c = label[j]!;
      if (c < 0) continue;
      const o = c * 5;
      sums[o] = sums[o]! + x; sums[o + 1] = sums[o + 1]! + y; sums[o + 2] = sums[o + 2]! + z; sums[o + 3] = sums[o + 3]! + image[j]!; sums[o + 4] = sums[o + 4]! + 1;
    }
    for (let c = 0; c < k; c++) {
      const cnt = sums[c * 5 + 4]!;
      if (cnt === 0) continue;
      cx[c] = sums[c * 5]! / cnt; cy[c] = sums[c * 5 + 1]! / cnt; cz[c] = sums[c * 5 + 2]! / cnt; ci[c] = sums[c * 5 + 3]! / cnt;
    }
  }
  // Renumber the used centres 1..K' in raster order of first appearance.
  const ids = new Int32Array(k).fill(0);
  const out = new Int32Array(n);
  let next = 0;
  for (let j = 0; j < n; j++) {
    const c = label[j]!;
    if (c < 0) continue;
    if (ids[c] === 0) ids[c] = ++next;
    out[j] = ids[c]!;
  }
  if (o.airBelow != null) removeLargestAir(out, image, shape, o.airBelow);
  return out;
}

/** Algorithm 2 step 5: the largest component of (intensity < t), closed by a 3³ dilation then erosion, gets label 0. */
export function removeLargestAir(labels: Int32Array, image: Float32Array, shape: Shape3, t: number): void {
  const air = new Uint8Array(image.length);
  for (let j = 0; j < air.length; j++) air[j] = image[j]! < t ? 1 : 0;
  const largest = largestComponent(morph(morph(air, shape, 3, 'dilate'), shape, 3, 'erode'), shape);
  for (let j = 0; j < labels.length; j++) if (largest[j]) labels[j] = 0;
}
