/**
 * MONAI SwinTransformer window helpers (monai/networks/nets/swin_unetr.py, MONAI 1.3.0): per-axis
 * window sizes that shrink to the input, window partition/reverse with a per-axis window, the
 * standard Swin relative-position index and MONAI's shifted-window region mask.
 *
 * These differ from PCT-Net's (../pctnet/window.ts) in three ways that weights depend on: windows
 * shrink per axis (not to min over axes), the index uses the collision-free multipliers
 * (2w1-1)(2w2-1) and (2w2-1), and the mask reproduces MONAI's slice loops exactly (an axis whose
 * shift is 0 ends up in one region because `slice(-0, None)` covers the whole axis).
 */
import type { Tensor } from '../../engine/tensor.js';
import { fromTypedArray, zeros } from '../../engine/creation.js';
import { tidy } from '../../engine/scope.js';
import { ShapeError, fmtShape } from '../../util/errors.js';

export type V3 = [number, number, number];

/** MONAI get_window_size: on an axis where the input is not larger than the window, the window becomes the input size and the shift 0. */
export function effectiveWindow(size: readonly number[], window: readonly number[], shift: readonly number[]): { window: V3; shift: V3 } {
  const w = [...window] as V3, s = [...shift] as V3;
  for (let i = 0; i < 3; i++) if (size[i]! <= window[i]!) { w[i] = size[i]!; s[i] = 0; }
  return { window: w, shift: s };
}

/** [B, D, H, W, C] -> [B*nW, w0*w1*w2, C]; D, H, W must be multiples of the window. */
export function windowPartition3(x: Tensor, ws: V3): Tensor {
  const [b, d, h, w, c] = x.shape as [number, number, number, number, number];
  if (d % ws[0] !== 0 || h % ws[1] !== 0 || w % ws[2] !== 0) {
    throw new ShapeError('windowPartition', `grid ${fmtShape([d, h, w])} is not a multiple of window ${fmtShape(ws)}`);
  }
  return tidy(() => x
    .view([b, d / ws[0], ws[0], h / ws[1], ws[1], w / ws[2], ws[2], c])
    .permute([0, 1, 3, 5, 2, 4, 6, 7])
    .reshape([-1, ws[0] * ws[1] * ws[2], c]));
}

/** Inverse of windowPartition3: [B*nW, N, C] -> [B, D, H, W, C] (contiguous). */
export function windowReverse3(windows: Tensor, ws: V3, b: number, d: number, h: number, w: number): Tensor {
  return tidy(() => windows
    .view([b, d / ws[0], h / ws[1], w / ws[2], ws[0], ws[1], ws[2], -1])
    .permute([0, 1, 4, 2, 5, 3, 6, 7])
    .reshape([b, d, h, w, -1]));
}

/** The standard Swin relative-position index [N, N] (N = w0*w1*w2) as int64 values. */
export function swinRelativePositionIndexValues(ws: V3): BigInt64Array {
  const [w0, w1, w2] = ws;
  const n = w0 * w1 * w2;
  const m0 = (2 * w1 - 1) * (2 * w2 - 1), m1 = 2 * w2 - 1;
  const out = new BigInt64Array(n * n);
  for (let i = 0; i < n; i++) {
    const a0 = Math.floor(i / (w1 * w2)), a1 = Math.floor(i / w2) % w1, a2 = i % w2;
    for (let j = 0; j < n; j++) {
      const b0 = Math.floor(j / (w1 * w2)), b1 = Math.floor(j / w2) % w1, b2 = j % w2;
      out[i * n + j] = BigInt((a0 - b0 + w0 - 1) * m0 + (a1 - b1 + w1 - 1) * m1 + (a2 - b2 + w2 - 1));
    }
  }
  return out;
}

export function swinRelativePositionIndex(ws: V3): Tensor {
  const n = ws[0] * ws[1] * ws[2];
  return fromTypedArray(swinRelativePositionIndexValues(ws), [n, n]);
}

/** Python's range(len)[slice(start, stop)] as [from, to). */
function pySlice(len: number, start: number | null, stop: number | null): [number, number] {
  const norm = (v: number | null, dflt: number): number => (v === null ? dflt : v < 0 ? Math.max(0, len + v) : Math.min(v, len));
  const a = norm(start, 0), b = norm(stop, len);
  return [a, Math.max(a, b)];
}

/**
 * Region labels of MONAI compute_mask on the padded grid [dp, hp, wp], per window and token:
 * [nW * N] float32. The slice loops are replayed literally (later assignments overwrite earlier).
 */
export function monaiRegionLabels(dims: V3, ws: V3, shift: V3): Float32Array {
  const [dp, hp, wp] = dims;
  const img = new Float32Array(dp * hp * wp);
  const sl = (ax: number): [number, number][] => {
    const len = dims[ax]!, w = ws[ax]!, s = shift[ax]!;
    return [pySlice(len, null, -w), pySlice(len, -w, -s), pySlice(len, -s, null)];
  };
  let cnt = 0;
  for (const [d0, d1] of sl(0)) for (const [h0, h1] of sl(1)) for (const [w0, w1] of sl(2)) {
    for (let d = d0; d < d1; d++) for (let h = h0; h < h1; h++) for (let w = w0; w < w1; w++) img[(d * hp + h) * wp + w] = cnt;
    cnt++;
  }
  // window_partition order: windows (d, h, w) row-major, tokens row-major inside.
  const n = ws[0] * ws[1] * ws[2];
  const nD = dp / ws[0], nH = hp / ws[1], nW = wp / ws[2];
  const out = new Float32Array(nD * nH * nW * n);
  let k = 0;
  for (let a = 0; a < nD; a++) for (let b = 0; b < nH; b++) for (let c = 0; c < nW; c++) {
    for (let i = 0; i < ws[0]; i++) for (let j = 0; j < ws[1]; j++) for (let l = 0; l < ws[2]; l++) {
      out[k++] = img[((a * ws[0] + i) * hp + (b * ws[1] + j)) * wp + (c * ws[2] + l)]!;
    }
  }
  return out;
}

/** MONAI compute_mask: [nW, N, N], 0 within a region, -100 across regions. */
export function monaiShiftMask(dims: V3, ws: V3, shift: V3): Tensor {
  const labels = monaiRegionLabels(dims, ws, shift);
  const n = ws[0] * ws[1] * ws[2];
  const nW = labels.length / n;
  return tidy(() => {
    const l = fromTypedArray(labels, [nW, n]);
    const differ = l.unsqueeze(1).ne(l.unsqueeze(2));
    return zeros([nW, n, n]).maskedFill(differ, -100);
  });
}
