/**
 * The transformer branch of a PCT block: 3D (shifted-)window self-attention in Swin style, with
 * PCT-Net's relative-position index. Tokens are [B, L, C] with L = S*H*W in (s, h, w) order.
 *
 * Attention runs as one batched matmul over all windows and heads ([B*nW, heads, N, N]); the large
 * attention matrices are freed as soon as they are consumed. torch 1.13 has no fused CPU attention
 * kernel (aten::_scaled_dot_product_attention is the same composite math), so this is the
 * straightforward matmul + softmax path, with the reference's operation order kept for parity.
 */
import type { Tensor } from '../../engine/tensor.js';
import { empty } from '../../engine/creation.js';
import { tidy } from '../../engine/scope.js';
import * as F from '../../engine/functional.js';
import { Module } from '../../nn/module.js';
import { Linear } from '../../nn/layers/linear.js';
import { LayerNorm } from '../../nn/layers/norm.js';
import { Dropout, DropPath, GELU } from '../../nn/layers/activation.js';
import { ModuleList } from '../../nn/layers/container.js';
import { truncNormal_ } from '../../nn/init.js';
import { ShapeError, fmtShape } from '../../util/errors.js';
import { tap } from '../taps.js';
import { consume } from '../consume.js';
import { padTo, relativePositionIndex, shiftedWindowMask, windowPartition, windowReverse } from './window.js';

export type Res3 = [number, number, number];

/** Multi-head self-attention inside each window, with a learned relative-position bias. */
export class WindowAttention extends Module {
  readonly relativePositionBiasTable: Tensor;
  readonly relativePositionIndex: Tensor;
  readonly qkv: Linear;
  readonly attnDrop: Dropout;
  readonly proj: Linear;
  readonly projDrop: Dropout;
  readonly scale: number;
  readonly tokens: number;

  constructor(readonly dim: number, readonly windowSize: number, readonly numHeads: number, attnDrop: number, projDrop: number) {
    super();
    if (dim % numHeads !== 0) throw new ShapeError('WindowAttention', `channels ${dim} are not divisible by ${numHeads} heads`);
    const ws = windowSize;
    this.tokens = ws * ws * ws;
    this.scale = (dim / numHeads) ** -0.5;
    this.relativePositionBiasTable = this.registerParameter('relative_position_bias_table',
      truncNormal_(empty([(2 * ws - 1) ** 3, numHeads]), 0.02));
    this.relativePositionIndex = this.registerBuffer('relative_position_index', relativePositionIndex(ws));
    this.qkv = this.registerModule('qkv', new Linear(dim, 3 * dim));
    this.attnDrop = this.registerModule('attn_drop', new Dropout(attnDrop));
    this.proj = this.registerModule('proj', new Linear(dim, dim));
    this.projDrop = this.registerModule('proj_drop', new Dropout(projDrop));
  }

  /** The bias [heads, N, N] gathered from the table. */
  positionBias(): Tensor {
    const n = this.tokens;
    return tidy(() => this.relativePositionBiasTable
      .indexSelect(0, this.relativePositionIndex.view([-1]))
      .view([n, n, this.numHeads])
      .permute([2, 0, 1])
      .contiguous());
  }

  /** x: [B*nW, N, C]; mask: [nW, N, N] additive, or null. */
  forward(x: Tensor, mask: Tensor | null): Tensor {
    const [bw, n, c] = x.shape as [number, number, number];
    const h = this.numHeads;
    // [3, B*nW, heads, N, hd]
    const qkv = tidy(() => this.qkv.forward(x).view([bw, n, 3, h, c / h]).permute([2, 0, 3, 1, 4]).contiguous());
    let attn: Tensor;
    try {
      attn = tidy(() => F.windowAttentionLogits(qkv.select(0, 0).mul(this.scale), qkv.select(0, 1), this.positionBias(), mask));
      attn = consume(attn, (a) => F.softmax(a, -1));
      attn = consume(attn, (a) => this.attnDrop.forward(a));
      attn = consume(attn, (a) => a.matmul(qkv.select(0, 2)));
    } finally {
      qkv.dispose();
    }
    const merged = consume(attn, (o) => o.transpose(1, 2).reshape([bw, n, c]));
    return consume(merged, (m) => this.projDrop.forward(this.proj.forward(m)));
  }
}

/** fc1 -> exact GELU -> dropout -> fc2 -> dropout. */
export class Mlp extends Module {
  readonly fc1: Linear;
  readonly act: GELU;
  readonly fc2: Linear;
  readonly drop: Dropout;
  constructor(dim: number, hidden: number, drop: number) {
    super();
    this.fc1 = this.registerModule('fc1', new Linear(dim, hidden));
    this.act = this.registerModule('act', new GELU());
    this.fc2 = this.registerModule('fc2', new Linear(hidden, dim));
    this.drop = this.registerModule('drop', new Dropout(drop));
  }
  forward(x: Tensor): Tensor {
    let t = this.fc1.forward(x);
    t = consume(t, (u) => this.act.forward(u));
    t = consume(t, (u) => this.drop.forward(u));
    t = consume(t, (u) => this.fc2.forward(u));
    return consume(t, (u) => this.drop.forward(u));
  }
}

export interface SwinBlockOptions {
  numHeads: number;
  windowSize: number;
  shiftSize: number;
  mlpRatio?: number;
  drop: number;
  attnDrop: number;
  dropPath: number;
}

/**
 * One Swin block: x + DropPath(W-MSA(LN(x))), then x + DropPath(MLP(LN(x))). When the resolution
 * is not larger than the window on some axis, the window shrinks to min(resolution) and the
 * shift is dropped (this changes the bias table's shape).
 */
export class SwinTransformerBlock extends Module {
  readonly windowSize: number;
  readonly shiftSize: number;
  readonly norm1: LayerNorm;
  readonly attn: WindowAttention;
  readonly dropPath: DropPath;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;

  constructor(readonly dim: number, readonly resolution: Res3, o: SwinBlockOptions) {
    super();
    let ws = o.windowSize, shift = o.shiftSize;
    const minRes = Math.min(...resolution);
    if (minRes <= ws) { shift = 0; ws = minRes; }
    if (shift < 0 || shift >= ws) throw new ShapeError('SwinTransformerBlock', `shift ${shift} must be in [0, window ${ws})`);
    this.windowSize = ws;
    this.shiftSize = shift;
    this.norm1 = this.registerModule('norm1', new LayerNorm(dim));
    this.attn = this.registerModule('attn', new WindowAttention(dim, ws, o.numHeads, o.attnDrop, o.drop));
    this.dropPath = this.registerModule('drop_path', new DropPath(o.dropPath));
    this.norm2 = this.registerModule('norm2', new LayerNorm(dim));
    this.mlp = this.registerModule('mlp', new Mlp(dim, Math.floor(dim * (o.mlpRatio ?? 4)), o.drop));
  }

  /** x: [B, S*H*W, C]; mask: the layer's shifted-window mask (used only when this block shifts). */
  forward(x: Tensor, mask: Tensor | null): Tensor {
    const [b, l, c] = x.shape as [number, number, number];
    const [s, h, w] = this.resolution;
    if (l !== s * h * w || c !== this.dim) {
      throw new ShapeError('SwinTransformerBlock', `expected tokens [B, ${s * h * w}, ${this.dim}] for resolution ${fmtShape(this.resolution)}, got ${fmtShape(x.shape)}`);
    }
    const ws = this.windowSize, shift = this.shiftSize;
    const sp = padTo(s, ws), hp = padTo(h, ws), wp = padTo(w, ws);
    const padded = sp !== s || hp !== h || wp !== w;
    let g = tidy(() => this.norm1.forward(x).view([b, s, h, w, c]));
    // Zero padding comes after the norm, at the end of each axis, and is not masked.
    if (padded) g = consume(g, (t) => F.pad(t, [0, 0, 0, wp - w, 0, hp - h, 0, sp - s]));
    if (shift > 0) g = consume(g, (t) => t.roll([-shift, -shift, -shift], [1, 2, 3]));
    g = consume(g, (t) => windowPartition(t, ws));
    g = consume(g, (t) => this.attn.forward(t, shift > 0 ? mask : null));
    g = consume(g, (t) => windowReverse(t, ws, sp, hp, wp));
    if (shift > 0) g = consume(g, (t) => t.roll([shift, shift, shift], [1, 2, 3]));
    if (padded) g = consume(g, (t) => t.crop([null, [0, s], [0, h], [0, w], null]).contiguous());
    const attnOut = consume(g, (t) => t.view([b, l, c]));
    return tidy(() => {
      const x1 = x.add(this.dropPath.forward(attnOut));
      attnOut.dispose();
      return x1.add(this.dropPath.forward(this.mlp.forward(this.norm2.forward(x1))));
    });
  }
}

export interface BasicLayerOptions {
  depth: number;
  numHeads: number;
  windowSize: number;
  mlpRatio?: number;
  drop: number;
  attnDrop: number;
  dropPath: number;
}

/**
 * A stack of Swin blocks alternating shift 0 and windowSize/2. The shifted-window mask depends only
 * on the (fixed) resolution, so it is built on first use and cached as a non-persistent buffer.
 */
export class BasicLayer extends Module {
  readonly blocks: ModuleList<SwinTransformerBlock>;
  readonly windowSize: number;
  readonly shiftSize: number;
  #maskReady = false;

  constructor(readonly dim: number, readonly resolution: Res3, o: BasicLayerOptions) {
    super();
    this.windowSize = o.windowSize;
    this.shiftSize = Math.floor(o.windowSize / 2);
    const blocks: SwinTransformerBlock[] = [];
    for (let i = 0; i < o.depth; i++) {
      blocks.push(new SwinTransformerBlock(dim, resolution, {
        numHeads: o.numHeads, windowSize: o.windowSize, shiftSize: i % 2 === 0 ? 0 : this.shiftSize,
        mlpRatio: o.mlpRatio ?? 4, drop: o.drop, attnDrop: o.attnDrop, dropPath: o.dropPath,
      }));
    }
    this.blocks = this.registerModule('blocks', new ModuleList(blocks));
    this.registerBuffer('attn_mask', null, false);
  }

  /** The cached [nW, N, N] mask on `device`, or null when no block shifts. */
  shiftMask(device: string): Tensor | null {
    if (!this.blocks.items.some((blk) => blk.shiftSize > 0)) return null;
    if (this.#maskReady) {
      const m = this.tensor('attn_mask');
      if (m.device === device) return m;
    }
    // The reference builds it with the layer's window and shift (shifting blocks always use those).
    let m = shiftedWindowMask(this.resolution, this.windowSize, this.shiftSize);
    if (device !== 'cpu') { const d = m.to(device); m.dispose(); m = d; }
    this.setBuffer('attn_mask', m);
    this.#maskReady = true;
    return m;
  }

  forward(x: Tensor): Tensor {
    const mask = this.shiftMask(x.device);
    let cur = x;
    for (const blk of this.blocks) {
      const next = tap(blk, blk.forward(cur, mask));
      if (cur !== x) cur.dispose();
      cur = next;
    }
    return cur === x ? x.view(x.shape) : cur;
  }
}
