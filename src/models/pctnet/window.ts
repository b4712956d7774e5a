/**
 * 3D window helpers for the Swin branch of PCT-Net: window partition/reverse, the relative-position
 * index (with PCT-Net's own axis multipliers) and the shifted-window region mask.
 *
 * Layout conventions follow the reference: token grids are [B, S, H, W, C]; windows are ordered
 * (b, sWin, hWin, wWin) and tokens inside a window are (s, h, w) row-major.
 */
import type { Tensor } from '../../engine/tensor.js';
import { fromTypedArray, zeros } from '../../engine/creation.js';
import { tidy } from '../../engine/scope.js';
import { ShapeError, fmtShape } from '../../util/errors.js';

/** [B, S, H, W, C] -> [B * nW, ws^3, C]. S, H, W must be multiples of ws. */
export function windowPartition(x: Tensor, ws: number): Tensor {
  const [b, s, h, w, c] = x.shape as [number, number, number, number, number];
  if (s % ws !== 0 || h % ws !== 0 || w % ws !== 0) {
    throw new ShapeError('windowPartition', `grid ${fmtShape([s, h, w])} is not a multiple of window ${ws}`);
  }
  return tidy(() => x
    .view([b, s / ws, ws, h / ws, ws, w / ws, ws, c])
    .permute([0, 1, 3, 5, 2, 4, 6, 7])
    .reshape([-1, ws * ws * ws, c]));
}

/** Inverse of windowPartition: [B * nW, ws^3, C] -> [B, S, H, W, C] (contiguous). */
export function windowReverse(windows: Tensor, ws: number, s: number, h: number, w: number): Tensor {
  const c = windows.shape[2]!;
  const nW = (s / ws) * (h / ws) * (w / ws);
  const b = windows.shape[0]! / nW;
  return tidy(() => windows
    .view([b, s / ws, h / ws, w / ws, ws, ws, ws, c])
    .permute([0, 1, 4, 2, 5, 3, 6, 7])
    .reshape([b, s, h, w, c]));
}

/**
 * Relative-position index [ws^3, ws^3] as int64 values. PCT-Net (after nnFormer) combines the
 * per-axis offsets with multipliers (3ws-1) and (2ws-1), not the collision-free (2ws-1)^2 and
 * (2ws-1); checkpoints were trained with these, so they are reproduced exactly.
 */
export function relativePositionIndexValues(ws: number): BigInt64Array {
  const n = ws * ws * ws;
  const out = new BigInt64Array(n * n);
  const ms = 3 * ws - 1, mh = 2 * ws - 1;
  for (let i = 0; i < n; i++) {
    const si = Math.floor(i / (ws * ws)), hi = Math.floor(i / ws) % ws, wi = i % ws;
    for (let j = 0; j < n; j++) {
      const sj = Math.floor(j / (ws * ws)), hj = Math.floor(j / ws) % ws, wj = j % ws;
      const v = (si - sj + ws - 1) * ms + (hi - hj + ws - 1) * mh + (wi - wj + ws - 1);
      out[i * n + j] = BigInt(v);
    }
  }
  return out;
}

/** The relative-position index as an int64 tensor [ws^3, ws^3]. */
export function relativePositionIndex(ws: number): Tensor {
  const n = ws * ws * ws;
  return fromTypedArray(relativePositionIndexValues(ws), [n, n]);
}

/** Rows of the bias table the index can reach: max index + 1. */
export function relativePositionTableRows(ws: number): number {
  return (2 * ws - 2) * (3 * ws - 1) + (2 * ws - 2) * (2 * ws - 1) + (2 * ws - 2) + 1;
}

/** Smallest multiple of ws that is >= n. */
export function padTo(n: number, ws: number): number {
  return Math.ceil(n / ws) * ws;
}

/**
 * Region labels of the shifted-window mask, per window and token: [nW, ws^3] (float32 values).
 * The padded grid is split along each axis into [0, P-ws), [P-ws, P-shift), [P-shift, P), and
 * the 27 region combinations are numbered in (s, h, w) order, as the reference's slice loops do.
 */
export function shiftRegionLabels(res: readonly [number, number, number], ws: number, shift: number): { labels: Float32Array; nW: number } {
  const [sp, hp, wp] = [padTo(res[0], ws), padTo(res[1], ws), padTo(res[2], ws)];
  const region = (i: number, p: number): number => (i < p - ws ? 0 : i < p - shift ? 1 : 2);
  const nS = sp / ws, nH = hp / ws, nWw = wp / ws;
  const nW = nS * nH * nWw;
  const n = ws * ws * ws;
  const labels = new Float32Array(nW * n);
  let k = 0;
  for (let a = 0; a < nS; a++) for (let b = 0; b < nH; b++) for (let c = 0; c < nWw; c++) {
    for (let s = 0; s < ws; s++) for (let h = 0; h < ws; h++) for (let w = 0; w < ws; w++) {
      labels[k++] = region(a * ws + s, sp) * 9 + region(b * ws + h, hp) * 3 + region(c * ws + w, wp);
    }
  }
  return { labels, nW };
}

/**
 * The additive attention mask of shifted blocks, [nW, N, N]: 0 where two tokens of a window come
 * from the same region of the rolled grid, -100 otherwise.
 */
export function shiftedWindowMask(res: readonly [number, number, number], ws: number, shift: number): Tensor {
  const { labels, nW } = shiftRegionLabels(res, ws, shift);
  const n = ws * ws * ws;
  return tidy(() => {
    const l = fromTypedArray(labels, [nW, n]);
    const differ = l.unsqueeze(1).ne(l.unsqueeze(2));
    return zeros([nW, n, n]).maskedFill(differ, -100);
  });
}
