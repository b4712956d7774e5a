/**
 * Neural-network functions (torch.nn.functional equivalents) on NCDHW / NCHW tensors. Each checks
 * ranks and channel counts first so that a mistake names the op and both shapes.
 */
import { Tensor } from './tensor.js';
import { call1, callOp } from './call.js';
import { native } from './native.js';
import { isGradEnabled } from './creation.js';
import { SCALAR_TYPE } from './dtype.js';
import { lowPrecisionFor, runInBf16 } from './precision.js';
import { ShapeError, fmtShape } from '../util/errors.js';

export type Int3 = number | readonly [number, number, number];
export type Int2 = number | readonly [number, number];

/** Expand `n` to an n-tuple (PyTorch's _triple/_pair). */
export function ntuple(v: number | readonly number[], n: number, op: string, name: string): number[] {
  if (typeof v === 'number') return Array<number>(n).fill(v);
  if (v.length !== n) throw new ShapeError(op, `${name} must be a number or ${n} numbers, got ${fmtShape(v)}`);
  return [...v];
}

function rank(op: string, x: Tensor, r: number, layout: string): void {
  if (x.ndim !== r) throw new ShapeError(op, `input must be rank ${r} ${layout}, got shape ${fmtShape(x.shape)}`);
}

export interface ConvOptions { stride?: number | readonly number[]; padding?: number | readonly number[]; dilation?: number | readonly number[]; groups?: number; }

function convCheck(op: string, x: Tensor, w: Tensor, nd: number, groups: number, transposed: boolean): void {
  rank(op, x, nd + 2, nd === 3 ? '(N, C, D, H, W)' : '(N, C, H, W)');
  if (w.ndim !== nd + 2) throw new ShapeError(op, `weight must be rank ${nd + 2}, got ${fmtShape(w.shape)}`);
  const cin = x.shape[1]!;
  const wIn = transposed ? w.shape[0]! : w.shape[1]! * groups;
  if (cin !== wIn) {
    throw new ShapeError(op, `input has ${cin} channels but weight ${fmtShape(w.shape)} expects ${wIn} (input ${fmtShape(x.shape)}, groups ${groups})`);
  }
}

export function conv3d(x: Tensor, w: Tensor, b: Tensor | null = null, o: ConvOptions = {}): Tensor {
  const g = o.groups ?? 1;
  convCheck('conv3d', x, w, 3, g, false);
  const stride = ntuple(o.stride ?? 1, 3, 'conv3d', 'stride'), padding = ntuple(o.padding ?? 0, 3, 'conv3d', 'padding');
  const dilation = ntuple(o.dilation ?? 1, 3, 'conv3d', 'dilation');
  if (lowPrecisionFor(x.dtype)) return runInBf16([x, w, b], ([xc, wc, bc]) => call1('conv3d', [xc, wc, bc, stride, padding, dilation, g]));
  if (useOneDnnForward(x, w, g)) return call1('mkldnn_convolution', [x, w, b, padding, stride, dilation, g]);
  return call1('conv3d', [x, w, b, stride, padding, dilation, g]);
}

let oneDnn: boolean | undefined;
/**
 * libtorch 1.13 sends a float32 CPU conv3d with batch 1, kernels of at most 3 and
 * N·C·D·H <= 20480 to its im2col path instead of oneDNN; oneDNN ran those forwards 7-11x faster
 * here (e.g. PCT-Net's 512-channel convolutions at 4x8x8). Its backward is not wired to autograd
 * in 1.13, so the direct oneDNN call is taken only where no gradient can be needed: eval / no-grad.
 */
function useOneDnnForward(x: Tensor, w: Tensor, groups: number): boolean {
  const s = x.shape, k = w.shape;
  if (s[0] !== 1 || (k[3]! > 3 && k[4]! > 3) || s[0]! * s[1]! * s[2]! * s[3]! > 20480 || groups !== 1) return false;
  if (x.dtype !== 'float32' || x.device !== 'cpu' || isGradEnabled() || x.numel === 0) return false;
  oneDnn ??= native().info().mkldnnAvailable;
  return oneDnn;
}
export function conv2d(x: Tensor, w: Tensor, b: Tensor | null = null, o: ConvOptions = {}): Tensor {
  const g = o.groups ?? 1;
  convCheck('conv2d', x, w, 2, g, false);
  if (lowPrecisionFor(x.dtype)) return runInBf16([x, w, b], ([xc, wc, bc]) => conv2d(xc!, wc!, bc, o));
  return call1('conv2d', [x, w, b, ntuple(o.stride ?? 1, 2, 'conv2d', 'stride'), ntuple(o.padding ?? 0, 2, 'conv2d', 'padding'), ntuple(o.dilation ?? 1, 2, 'conv2d', 'dilation'), g]);
}
export interface ConvTransposeOptions extends ConvOptions { outputPadding?: number | readonly number[]; }
/** Weight layout [in, out/groups, kd, kh, kw] as in PyTorch. */
export function convTranspose3d(x: Tensor, w: Tensor, b: Tensor | null = null, o: ConvTransposeOptions = {}): Tensor {
  const g = o.groups ?? 1;
  convCheck('conv_transpose3d', x, w, 3, g, true);
  // Stays float32 under the bf16 policy: libtorch 1.13's bfloat16 conv_transpose3d checks the
  // weight as if it were a plain convolution and fails ("expected input ... to have Cout channels").
  return call1('conv_transpose3d.input', [x, w, b, ntuple(o.stride ?? 1, 3, 'conv_transpose3d', 'stride'), ntuple(o.padding ?? 0, 3, 'conv_transpose3d', 'padding'),
    ntuple(o.outputPadding ?? 0, 3, 'conv_transpose3d', 'outputPadding'), g, ntuple(o.dilation ?? 1, 3, 'conv_transpose3d', 'dilation')]);
}

export function linear(x: Tensor, w: Tensor, b: Tensor | null = null): Tensor {
  const s = x.shape;
  if (s[s.length - 1] !== w.shape[1]) throw new ShapeError('linear', `input ${fmtShape(s)} last dim does not match weight ${fmtShape(w.shape)}`);
  if (lowPrecisionFor(x.dtype)) return runInBf16([x, w, b], ([xc, wc, bc]) => call1('linear', [xc, wc, bc]));
  return call1('linear', [x, w, b]);
}

export interface PoolOptions { stride?: number | readonly number[]; padding?: number | readonly number[]; ceilMode?: boolean; }
export function maxPool3d(x: Tensor, kernel: number | readonly number[], o: PoolOptions = {}): Tensor {
  rank('max_pool3d', x, 5, '(N, C, D, H, W)');
  const k = ntuple(kernel, 3, 'max_pool3d', 'kernel');
  return call1('max_pool3d', [x, k, ntuple(o.stride ?? k, 3, 'max_pool3d', 'stride'), ntuple(o.padding ?? 0, 3, 'max_pool3d', 'padding'), [1, 1, 1], o.ceilMode ?? false]);
}
export function avgPool3d(x: Tensor, kernel: number | readonly number[], o: PoolOptions & { countIncludePad?: boolean } = {}): Tensor {
  rank('avg_pool3d', x, 5, '(N, C, D, H, W)');
  const k = ntuple(kernel, 3, 'avg_pool3d', 'kernel');
  return call1('avg_pool3d', [x, k, ntuple(o.stride ?? k, 3, 'avg_pool3d', 'stride'), ntuple(o.padding ?? 0, 3, 'avg_pool3d', 'padding'), o.ceilMode ?? false, o.countIncludePad ?? true, null]);
}
export function adaptiveAvgPool3d(x: Tensor, size: number | readonly number[]): Tensor {
  rank('adaptive_avg_pool3d', x, 5, '(N, C, D, H, W)');
  return call1('adaptive_avg_pool3d', [x, ntuple(size, 3, 'adaptive_avg_pool3d', 'size')]);
}

export interface BatchNormOptions { weight?: Tensor | null; bias?: Tensor | null; training: boolean; momentum?: number; eps?: number; }
/**
 * Batch normalisation. In training mode the running stats (if given) are updated in place, as
 * PyTorch does (momentum 0.1, unbiased running variance).
 */
export function batchNorm(x: Tensor, runningMean: Tensor | null, runningVar: Tensor | null, o: BatchNormOptions): Tensor {
  if (x.ndim < 2) throw new ShapeError('batch_norm', `input must have a channel dim, got ${fmtShape(x.shape)}`);
  const c = x.shape[1]!;
  for (const [name, t] of [['weight', o.weight], ['bias', o.bias], ['running_mean', runningMean], ['running_var', runningVar]] as const) {
    if (t != null && t.numel !== c) throw new ShapeError('batch_norm', `${name} has ${t.numel} elements, input ${fmtShape(x.shape)} has ${c} channels`);
  }
  if (o.training) {
    const per = x.numel / c;
    if (per <= 1) throw new ShapeError('batch_norm', `expected more than 1 value per channel when training, got input ${fmtShape(x.shape)}`);
  }
  return call1('batch_norm', [x, o.weight ?? null, o.bias ?? null, runningMean, runningVar, o.training, o.momentum ?? 0.1, o.eps ?? 1e-5, false]);
}
export function instanceNorm(x: Tensor, o: { weight?: Tensor | null; bias?: Tensor | null; eps?: number } = {}): Tensor {
  return call1('instance_norm', [x, o.weight ?? null, o.bias ?? null, null, null, true, 0.1, o.eps ?? 1e-5, false]);
}
export function layerNorm(x: Tensor, normalizedShape: readonly number[], weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  const s = x.shape;
  const tail = s.slice(s.length - normalizedShape.length);
  if (tail.some((v, i) => v !== normalizedShape[i])) throw new ShapeError('layer_norm', `input ${fmtShape(s)} does not end with normalized shape ${fmtShape(normalizedShape)}`);
  return call1('layer_norm', [x, normalizedShape, weight, bias, eps, false]);
}
export function groupNorm(x: Tensor, groups: number, weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  return call1('group_norm', [x, groups, weight, bias, eps, false]);
}

export function relu(x: Tensor): Tensor { return call1('relu', [x]); }
export function leakyRelu(x: Tensor, slope = 0.01): Tensor { return call1('leaky_relu', [x, slope]); }
/** PReLU with a weight of 1 element (shared) or C elements (per channel). */
export function prelu(x: Tensor, weight: Tensor): Tensor { return call1('prelu', [x, weight]); }
/** GELU; exact (erf) unless approximate = 'tanh'. */
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor { return call1('gelu', [x, approximate]); }
export function sigmoid(x: Tensor): Tensor { return call1('sigmoid', [x]); }
/**
 * Attention logits with an additive term: `bias + q·kᵀ`, q [..., N, d], k [..., M, d], bias
 * broadcastable to [..., N, M] (relative-position bias, shifted-window mask). The same values as
 * `q.matmul(kᵀ).add(bias)`, computed with the expanded bias as the GEMM's accumulator (baddbmm,
 * beta 1): BLAS then skips the zeroing pass of a plain bmm, and the separate add over the result,
 * the largest tensor of a window-attention block, goes away. Measured on PCT-Net's first Swin
 * stage (22 crops, 2376 windows x heads of 216 tokens, head dim 8): forward 0.40 -> 0.29 s.
 * Under the bfloat16 policy: matmul (in bf16) then add, as before.
 */
export function attentionLogits(q: Tensor, k: Tensor, bias: Tensor): Tensor {
  if (q.ndim < 3 || k.ndim !== q.ndim) throw new ShapeError('attentionLogits', `q and k must have the same rank >= 3, got ${fmtShape(q.shape)} and ${fmtShape(k.shape)}`);
  const lead = q.shape.slice(0, -2), n = q.shape[q.ndim - 2]!, d = q.shape[q.ndim - 1]!, m = k.shape[k.ndim - 2]!;
  if (k.shape[k.ndim - 1] !== d || k.shape.slice(0, -2).some((v, i) => v !== lead[i])) throw new ShapeError('attentionLogits', `k ${fmtShape(k.shape)} does not match q ${fmtShape(q.shape)}`);
  if (lowPrecisionFor(q.dtype)) {
    const kt = k.transpose(-2, -1);
    try { const s = q.matmul(kt); try { return s.add(bias); } finally { s.dispose(); } } finally { kt.dispose(); }
  }
  const b = lead.reduce((a, v) => a * v, 1);
  // The accumulator must be a fresh tensor and not an autograd view: baddbmm_ writes it in place,
  // and in-place ops on views make autograd replay them through CopySlices (extra passes).
  const full = bias.expand([...lead, n, m]);
  const copy = full.clone('contiguous');
  const acc = call1('_unsafe_view', [copy, [b, n, m]]);
  copy.dispose(); full.dispose();
  const q3 = q.reshape([b, n, d]), k3 = k.reshape([b, m, d]), kt = k3.transpose(1, 2);
  try {
    callOp('baddbmm_', [acc, q3, kt, 1, 1]);
    try { return acc.view([...lead, n, m]); } finally { acc.dispose(); }
  } finally { q3.dispose(); k3.dispose(); kt.dispose(); }
}

/**
 * Swin window-attention logits (PCT-Net and SwinUNETR alike): q, k [B*nW, heads, N, d], the
 * relative-position bias [heads, N, N] and, for shifted blocks, the additive window mask
 * [nW, N, N] (windows ordered batch-major). Bias and mask are summed first (small) and then
 * serve as the product's accumulator (attentionLogits). Returns [B*nW, heads, N, N].
 */
export function windowAttentionLogits(q: Tensor, k: Tensor, bias: Tensor, mask: Tensor | null): Tensor {
  if (mask === null) {
    const b = bias.unsqueeze(0);
    try { return attentionLogits(q, k, b); } finally { b.dispose(); }
  }
  const [bw, h, n] = q.shape as [number, number, number, number];
  const nW = mask.shape[0]!;
  if (bw % nW !== 0) throw new ShapeError('windowAttentionLogits', `${bw} windows are not a multiple of the mask's ${nW}`);
  const parts: Tensor[] = [];
  const keep = (t: Tensor): Tensor => { parts.push(t); return t; };
  try {
    const add = keep(keep(bias.unsqueeze(0)).add(keep(mask.unsqueeze(1))));
    const q5 = keep(q.view([bw / nW, nW, h, n, -1])), k5 = keep(k.view([bw / nW, nW, h, n, -1]));
    return keep(attentionLogits(q5, k5, keep(add.unsqueeze(0)))).view([bw, h, n, n]);
  } finally { for (const t of parts) t.dispose(); }
}

export function softmax(x: Tensor, dim: number): Tensor { return call1('softmax.int', [x, dim]); }
export function logSoftmax(x: Tensor, dim: number): Tensor { return call1('log_softmax.int', [x, dim]); }

/** Dropout; identity when not training or p == 0 (returns a new handle either way). */
export function dropout(x: Tensor, p: number, training: boolean): Tensor {
  if (p < 0 || p > 1) throw new RangeError(`dropout: p must be in [0, 1], got ${p}`);
  if (!training || p === 0) return x.view(x.shape);
  return call1('dropout', [x, p, true]);
}

export type PadMode = 'constant' | 'reflect' | 'replicate' | 'circular';
/**
 * Pad the trailing dims. `pad` is PyTorch's flat list from the last dim backwards:
 * [wBefore, wAfter, hBefore, hAfter, dBefore, dAfter].
 */
export function pad(x: Tensor, padding: readonly number[], mode: PadMode = 'constant', value = 0): Tensor {
  if (padding.length % 2 !== 0 || padding.length / 2 > x.ndim) throw new ShapeError('pad', `padding ${fmtShape(padding)} does not fit input ${fmtShape(x.shape)}`);
  if (mode === 'constant') return call1('constant_pad_nd', [x, padding, value]);
  const nd = padding.length / 2;
  if (mode === 'reflect') {
    const s = x.shape;
    for (let i = 0; i < nd; i++) {
      const size = s[s.length - 1 - i]!;
      if (padding[2 * i]! >= size || padding[2 * i + 1]! >= size) {
        throw new ShapeError('pad', `reflect padding ${fmtShape(padding)} must be smaller than the input dims, got input ${fmtShape(s)}`);
      }
    }
  }
  const op = `${mode === 'reflect' ? 'reflection' : mode === 'replicate' ? 'replication' : 'circular'}_pad${nd}d`;
  if (mode === 'circular') return call1('_pad_circular', [x, padding]);
  return call1(op, [x, padding]);
}

export type InterpolateMode = 'nearest' | 'trilinear' | 'bilinear' | 'linear' | 'nearest-exact';
/** Resize the spatial dims to `size` (PyTorch semantics, align_corners default false for linear modes). */
export function interpolate(x: Tensor, size: readonly number[], mode: InterpolateMode = 'nearest', alignCorners = false): Tensor {
  const nd = x.ndim - 2;
  if (size.length !== nd) throw new ShapeError('interpolate', `size ${fmtShape(size)} does not match the ${nd} spatial dims of ${fmtShape(x.shape)}`);
  switch (mode) {
    case 'nearest': return call1(`upsample_nearest${nd}d.vec`, [x, size, null]);
    case 'nearest-exact': return call1(`_upsample_nearest_exact${nd}d.vec`, [x, size, null]);
    case 'trilinear': return call1('upsample_trilinear3d.vec', [x, size, alignCorners, null]);
    case 'bilinear': return call1('upsample_bilinear2d.vec', [x, size, alignCorners, null]);
    case 'linear': return call1('upsample_linear1d.vec', [x, size, alignCorners, null]);
  }
}

/** One-hot encode integer labels [N, ...] into [N, C, ...] float32 (channel dim 1, as segmentation wants). */
export function oneHot(labels: Tensor, numClasses: number, channelDim = 1): Tensor {
  const l = labels.dtype === 'int64' ? labels : labels.to('int64');
  const oh = call1('one_hot', [l, numClasses]);
  if (l !== labels) l.dispose();
  const nd = oh.ndim;
  const perm = [...Array(nd).keys()];
  perm.splice(channelDim, 0, perm.pop()!);
  const p = oh.permute(perm);
  const f = p.to('float32');
  oh.dispose(); p.dispose();
  return f;
}

/** Cross-entropy of logits [N,C,...] against integer targets [N,...] (mean over elements). */
export function crossEntropy(logits: Tensor, target: Tensor, o: { weight?: Tensor | null; ignoreIndex?: number; reduction?: 'mean' | 'sum' | 'none' } = {}): Tensor {
  const red = { none: 0, mean: 1, sum: 2 }[o.reduction ?? 'mean'];
  return call1('cross_entropy_loss', [logits, target, o.weight ?? null, red, o.ignoreIndex ?? -100, 0.0]);
}

/** Matrix product helpers. */
export function matmul(a: Tensor, b: Tensor): Tensor { return a.matmul(b); }
export function bmm(a: Tensor, b: Tensor): Tensor { return a.bmm(b); }

/** Cast helper used by modules: dtype code for ops that want one. */
export function scalarTypeCode(d: keyof typeof SCALAR_TYPE): number { return SCALAR_TYPE[d]; }

/** Count of elements that are non-zero. */
export function countNonzero(x: Tensor): number {
  const t = callOp('count_nonzero', [x, null]) as Tensor;
  try { return t.item(); } finally { t.dispose(); }
}
