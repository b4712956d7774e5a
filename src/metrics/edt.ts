/**
 * Exact Euclidean distance transform of a 3D binary "feature" mask with anisotropic spacing.
 *
 * For every voxel it gives the distance (mm) to the nearest feature voxel, which is what
 * `scipy.ndimage.distance_transform_edt(1 - feature, sampling=spacing)` returns. The algorithm is
 * the separable lower envelope of parabolas of Felzenszwalb & Huttenlocher (2012): one exact 1D
 * pass per axis, linear time overall. Squared distances are kept in float64 throughout.
 *
 * A box can restrict the work: inside the box the result is exact as long as every feature voxel
 * lies inside the box, because the separable passes only ever combine voxels of the box and the
 * minimum over all features is then a minimum over features in the box. Callers that only need
 * distances between two small surfaces (ASSD, HD95) use the bounding box of both surfaces.
 */
import type { Box3, Shape3, Spacing3 } from './types.js';
import { boxShape, checkBox, checkShape, checkSpacing, fullBox } from './types.js';
import { MisfmError } from '../util/errors.js';

/** Lines processed together by the strided passes: gathering a tile of TILE neighbouring lines
 * reads TILE contiguous values per step instead of one value per cache line. */
const TILE = 16;

/** Scratch buffers, sized for the longest line and reused for every line. */
interface Scratch {
  tileIn: Float64Array;  // TILE input lines, line c at offset c*n
  tileOut: Float64Array; // TILE output lines
  v: Int32Array;         // parabola vertices of the lower envelope
  z: Float64Array;       // boundaries between envelope segments (length n+1)
  done: Uint8Array;      // which lines of the tile produced output
}

function makeScratch(n: number): Scratch {
  return {
    tileIn: new Float64Array(TILE * n), tileOut: new Float64Array(TILE * n),
    v: new Int32Array(n), z: new Float64Array(n + 1), done: new Uint8Array(TILE),
  };
}

/**
 * 1D squared distance transform of f[fo .. fo+n): d[dof+p] = min_q w2*(p-q)^2 + f[fo+q].
 * Infinite entries of f are not parabolas and are skipped. Returns false when every entry was
 * infinite (d is then not written; the caller keeps its Infinity values).
 */
function envelope1d(f: Float64Array, fo: number, n: number, w2: number, d: Float64Array, dof: number, v: Int32Array, z: Float64Array): boolean {
  let k = -1;
  for (let q = 0; q < n; q++) {
    const fq = f[fo + q]!;
    if (fq === Infinity) continue;
    if (k < 0) {
      k = 0; v[0] = q; z[0] = -Infinity; z[1] = Infinity;
      continue;
    }
    const hq = fq + w2 * q * q;
    let sInt: number;
    for (;;) {
      const vk = v[k]!;
      // Abscissa where the parabola rooted at q overtakes the one rooted at vk.
      sInt = (hq - (f[fo + vk]! + w2 * vk * vk)) / (2 * w2 * (q - vk));
      if (sInt <= z[k]!) k--; else break;
      // z[0] is -Infinity, so k never drops below 0 here.
    }
    k++;
    v[k] = q; z[k] = sInt; z[k + 1] = Infinity;
  }
  if (k < 0) return false;
  let j = 0;
  for (let p = 0; p < n; p++) {
    while (z[j + 1]! < p) j++;
    const vj = v[j]!;
    const dp = p - vj;
    d[dof + p] = w2 * dp * dp + f[fo + vj]!;
  }
  return true;
}

/**
 * One exact pass along a strided axis. Lines have `n` samples `stride` apart; there are `outer`
 * groups (`outerStride` apart) of `inner` adjacent lines each.
 */
function stridedPass(res: Float64Array, s: Scratch, n: number, stride: number, w2: number, outer: number, outerStride: number, inner: number): void {
  const { tileIn, tileOut, v, z, done } = s;
  for (let o = 0; o < outer; o++) {
    for (let c0 = 0; c0 < inner; c0 += TILE) {
      const nb = Math.min(TILE, inner - c0);
      const base = o * outerStride + c0;
      for (let i = 0, src = base; i < n; i++, src += stride) {
        for (let c = 0; c < nb; c++) tileIn[c * n + i] = res[src + c]!;
      }
      let any = false;
      for (let c = 0; c < nb; c++) {
        const ok = envelope1d(tileIn, c * n, n, w2, tileOut, c * n, v, z);
        done[c] = ok ? 1 : 0;
        any ||= ok;
      }
      if (!any) continue;
      for (let i = 0, dst = base; i < n; i++, dst += stride) {
        for (let c = 0; c < nb; c++) if (done[c] !== 0) res[dst + c] = tileOut[c * n + i]!;
      }
    }
  }
}

/**
 * Squared Euclidean distance (mm^2) from each voxel of `box` to the nearest nonzero voxel of
 * `feature`, considering only feature voxels inside the box. Returns a C-order Float64Array of the
 * box's shape; voxels are Infinity when the box holds no feature at all.
 *
 * @param feature C-order mask of `shape` (nonzero = feature)
 * @param shape (D,H,W)
 * @param spacing (z,y,x) mm
 * @param box region to compute; defaults to the whole array
 * @param out optional reusable output buffer with at least the box's voxel count
 */
export function squaredEdt(feature: Uint8Array, shape: Shape3, spacing: Spacing3, box?: Box3, out?: Float64Array): Float64Array {
  checkShape('squaredEdt', shape, feature.length);
  checkSpacing('squaredEdt', spacing);
  const b = box ?? fullBox(shape);
  checkBox('squaredEdt', shape, b);
  const [bd, bh, bw] = boxShape(b);
  const nBox = bd * bh * bw;
  if (out !== undefined && out.length < nBox) {
    throw new MisfmError('SHAPE', `squaredEdt: output buffer holds ${out.length} values, box needs ${nBox}`);
  }
  const res = out !== undefined && out.length !== nBox ? out.subarray(0, nBox) : (out ?? new Float64Array(nBox));
  const [, H, W] = shape;
  const [sz, sy, sx] = spacing;
  const scratch = makeScratch(Math.max(bd, bh, bw));

  // Pass 1 (x, contiguous): nearest feature in the row by two scans, in index units, then squared.
  const sx2 = sx * sx;
  for (let z = 0; z < bd; z++) {
    for (let y = 0; y < bh; y++) {
      const inRow = ((z + b.z0) * H + (y + b.y0)) * W + b.x0;
      const outRow = (z * bh + y) * bw;
      let last = -1;
      for (let x = 0; x < bw; x++) {
        if (feature[inRow + x] !== 0) { last = x; res[outRow + x] = 0; } else res[outRow + x] = last < 0 ? Infinity : x - last;
      }
      let next = -1;
      for (let x = bw - 1; x >= 0; x--) {
        let v = res[outRow + x]!;
        if (v === 0) { next = x; continue; }
        if (next >= 0 && next - x < v) v = next - x;
        res[outRow + x] = v * v * sx2;
      }
    }
  }
  // Pass 2 (y) and pass 3 (z): exact 1D envelopes along the strided axes.
  if (bh > 1) stridedPass(res, scratch, bh, bw, sy * sy, bd, bh * bw, bw);
  if (bd > 1) stridedPass(res, scratch, bd, bh * bw, sz * sz, 1, 0, bh * bw);
  return res;
}

/**
 * Euclidean distance (mm) from every voxel to the nearest nonzero voxel of `feature`, over the
 * whole array: scipy's `distance_transform_edt(feature == 0, sampling=spacing)`. Voxels are
 * Infinity when the mask has no feature voxel (scipy's output is meaningless in that case).
 */
export function distanceTransform(feature: Uint8Array, shape: Shape3, spacing: Spacing3): Float64Array {
  const d = squaredEdt(feature, shape, spacing);
  for (let i = 0; i < d.length; i++) d[i] = Math.sqrt(d[i]!);
  return d;
}
