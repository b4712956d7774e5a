/**
 * MONAI's SwinTransformer (the `swinViT` of SwinUNETR and of VoCo's backbone), with MONAI 1.3.0's
 * state-dict names: patch_embed.proj, layers{1-4}.0.blocks.{i}.{norm1,attn,norm2,mlp.linear1/2},
 * layers{1-4}.0.downsample.{reduction,norm}, and with use_v2 the residual conv blocks
 * layers{1-4}c.0.layer.conv{1,2}.
 *
 * Shapes are channels-first outside ([B, C, D, H, W]) and channels-last inside a stage, as in
 * MONAI. Spatial axes 0, 1, 2 of the tensor given here are MONAI's axes 0, 1, 2; the caller
 * decides which misfm axes they are (see SwinUNETR's axisOrder).
 */
import type { Tensor } from '../../engine/tensor.js';
import { cat, zeros } from '../../engine/creation.js';
import { keep as keepTensor, tidy } from '../../engine/scope.js';
import * as F from '../../engine/functional.js';
import { Module } from '../../nn/module.js';
import { Linear } from '../../nn/layers/linear.js';
import { LayerNorm } from '../../nn/layers/norm.js';
import { Conv3d } from '../../nn/layers/conv.js';
import { Dropout, DropPath, GELU } from '../../nn/layers/activation.js';
import { ModuleList } from '../../nn/layers/container.js';
import { truncNormal_ } from '../../nn/init.js';
import { ShapeError, fmtShape } from '../../util/errors.js';
import { consume } from '../consume.js';
import { tapAs } from '../taps.js';
import { effectiveWindow, monaiShiftMask, swinRelativePositionIndex, windowPartition3, windowReverse3, type V3 } from './window.js';
import { UnetrBasicBlock } from './blocks.js';

/** Window multi-head self-attention with a relative-position bias (MONAI WindowAttention). */
export class WindowAttention extends Module {
  readonly relativePositionBiasTable: Tensor;
  readonly relativePositionIndex: Tensor;
  readonly qkv: Linear;
  readonly attnDrop: Dropout;
  readonly proj: Linear;
  readonly projDrop: Dropout;
  readonly scale: number;
  readonly #bias = new Map<number, Tensor>();

  constructor(readonly dim: number, readonly numHeads: number, readonly windowSize: V3, qkvBias: boolean, attnDrop: number, projDrop: number) {
    super();
    if (dim % numHeads !== 0) throw new ShapeError('WindowAttention', `channels ${dim} are not divisible by ${numHeads} heads`);
    this.scale = (dim / numHeads) ** -0.5;
    const rows = (2 * windowSize[0] - 1) * (2 * windowSize[1] - 1) * (2 * windowSize[2] - 1);
    this.relativePositionBiasTable = this.registerParameter('relative_position_bias_table', zeros([rows, numHeads]));
    this.relativePositionIndex = this.registerBuffer('relative_position_index', swinRelativePositionIndex(windowSize));
    this.qkv = this.registerModule('qkv', new Linear(dim, 3 * dim, { bias: qkvBias }));
    this.attnDrop = this.registerModule('attn_drop', new Dropout(attnDrop));
    this.proj = this.registerModule('proj', new Linear(dim, dim));
    this.projDrop = this.registerModule('proj_drop', new Dropout(projDrop));
    // MONAI draws the table's truncated normal after the linear layers' init.
    truncNormal_(this.relativePositionBiasTable, 0.02);
  }

  /**
   * The bias [heads, n, n]. MONAI gathers with index[:n, :n] of the full window's index, also when
   * the window shrank (a quirk the released weights were trained with), so this does the same.
   */
  positionBias(n: number): Tensor {
    return tidy(() => {
      let idx = this.#bias.get(n);
      if (idx === undefined) {
        const full = this.relativePositionIndex.shape[0]!;
        if (n > full) throw new ShapeError('WindowAttention', `${n} tokens per window exceed the configured window (${full})`);
        idx = this.relativePositionIndex.narrow(0, 0, n).narrow(1, 0, n).contiguous().view([-1]);
        // Kept for later calls; freed in dispose().
        this.#bias.set(n, keepTensor(idx));
      }
      return this.relativePositionBiasTable.indexSelect(0, idx).view([n, n, this.numHeads]).permute([2, 0, 1]).contiguous();
    });
  }

  /** x: [B*nW, N, C]; mask: [nW, N, N] or null. */
  forward(x: Tensor, mask: Tensor | null): Tensor {
    const [bw, n, c] = x.shape as [number, number, number];
    const h = this.numHeads;
    const qkv = tidy(() => this.qkv.forward(x).view([bw, n, 3, h, c / h]).permute([2, 0, 3, 1, 4]).contiguous());
    let attn: Tensor;
    try {
      attn = tidy(() => F.softmax(F.windowAttentionLogits(qkv.select(0, 0).mul(this.scale), qkv.select(0, 1), this.positionBias(n), mask), -1));
      attn = consume(attn, (a) => this.attnDrop.forward(a));
      attn = consume(attn, (a) => a.matmul(qkv.select(0, 2)));
    } finally {
      qkv.dispose();
    }
    const merged = consume(attn, (o) => o.transpose(1, 2).reshape([bw, n, c]));
    return consume(merged, (m) => this.projDrop.forward(this.proj.forward(m)));
  }

  override dispose(): void {
    for (const t of this.#bias.values()) t.dispose();
    this.#bias.clear();
    super.dispose();
  }
}

/** MONAI MLPBlock in "swin" dropout mode: linear1 -> GELU -> drop -> linear2 -> drop. */
export class MlpBlock extends Module {
  readonly linear1: Linear;
  readonly linear2: Linear;
  readonly fn: GELU;
  readonly drop1: Dropout;
  readonly drop2: Dropout;
  constructor(dim: number, hidden: number, drop: number) {
    super();
    this.linear1 = this.registerModule('linear1', new Linear(dim, hidden));
    this.linear2 = this.registerModule('linear2', new Linear(hidden, dim));
    this.fn = this.registerModule('fn', new GELU());
    this.drop1 = this.registerModule('drop1', new Dropout(drop));
    this.drop2 = this.registerModule('drop2', new Dropout(drop));
  }
  forward(x: Tensor): Tensor {
    let t = this.linear1.forward(x);
    t = consume(t, (u) => this.drop1.forward(this.fn.forward(u)));
    t = consume(t, (u) => this.linear2.forward(u));
    return consume(t, (u) => this.drop2.forward(u));
  }
}

/** One Swin block on a channels-last grid [B, D, H, W, C]. */
export class SwinTransformerBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attn: WindowAttention;
  readonly dropPath: DropPath;
  readonly norm2: LayerNorm;
  readonly mlp: MlpBlock;

  constructor(readonly dim: number, numHeads: number, readonly windowSize: V3, readonly shiftSize: V3,
    o: { mlpRatio: number; qkvBias: boolean; drop: number; attnDrop: number; dropPath: number }) {
    super();
    this.norm1 = this.registerModule('norm1', new LayerNorm(dim));
    this.attn = this.registerModule('attn', new WindowAttention(dim, numHeads, windowSize, o.qkvBias, o.attnDrop, o.drop));
    this.dropPath = this.registerModule('drop_path', new DropPath(o.dropPath));
    this.norm2 = this.registerModule('norm2', new LayerNorm(dim));
    this.mlp = this.registerModule('mlp', new MlpBlock(dim, Math.floor(dim * o.mlpRatio), o.drop));
  }

  private attnPart(x: Tensor, mask: Tensor | null): Tensor {
    const [b, d, h, w, c] = x.shape as [number, number, number, number, number];
    const { window: ws, shift } = effectiveWindow([d, h, w], this.windowSize, this.shiftSize);
    const pd = (ws[0] - (d % ws[0])) % ws[0], ph = (ws[1] - (h % ws[1])) % ws[1], pw = (ws[2] - (w % ws[2])) % ws[2];
    const dp = d + pd, hp = h + ph, wp = w + pw;
    const shifted = shift.some((s) => s > 0);
    let g = this.norm1.forward(x);
    if (pd + ph + pw > 0) g = consume(g, (t) => F.pad(t, [0, 0, 0, pw, 0, ph, 0, pd]));
    if (shifted) g = consume(g, (t) => t.roll([-shift[0], -shift[1], -shift[2]], [1, 2, 3]));
    g = consume(g, (t) => windowPartition3(t, ws));
    g = consume(g, (t) => this.attn.forward(t, shifted ? mask : null));
    g = consume(g, (t) => windowReverse3(t, ws, b, dp, hp, wp));
    if (shifted) g = consume(g, (t) => t.roll([shift[0], shift[1], shift[2]], [1, 2, 3]));
    if (pd + ph + pw > 0) g = consume(g, (t) => t.crop([null, [0, d], [0, h], [0, w], null]).contiguous());
    return g;
  }

  /** x: [B, D, H, W, C]; mask: the layer's mask for shifted blocks. */
  forward(x: Tensor, mask: Tensor | null): Tensor {
    if (x.ndim !== 5 || x.shape[4] !== this.dim) throw new ShapeError('SwinTransformerBlock', `expected [B, D, H, W, ${this.dim}], got ${fmtShape(x.shape)}`);
    const a = this.attnPart(x, mask);
    return tidy(() => {
      const x1 = x.add(this.dropPath.forward(a));
      a.dispose();
      return x1.add(this.dropPath.forward(this.mlp.forward(this.norm2.forward(x1))));
    });
  }
}

/**
 * Patch merging on a channels-last grid: odd sizes are zero-padded, 8 strided sub-grids are
 * concatenated, LayerNorm(8C), Linear(8C -> 2C, no bias). 'merging' is MONAI's legacy
 * PatchMerging (v0.9 order, with sub-grids (0,1,0) and (0,0,1) twice and (1,1,0), (0,1,1) never),
 * the default of SwinUNETR and what VoCo's weights use; 'mergingv2' takes itertools.product order.
 */
export class PatchMerging extends Module {
  readonly reduction: Linear;
  readonly norm: LayerNorm;
  constructor(readonly dim: number, readonly mode: 'merging' | 'mergingv2') {
    super();
    this.reduction = this.registerModule('reduction', new Linear(8 * dim, 2 * dim, { bias: false }));
    this.norm = this.registerModule('norm', new LayerNorm(8 * dim));
  }
  static readonly LEGACY_ORDER: readonly V3[] = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [0, 1, 0], [0, 0, 1], [1, 1, 1]];
  static readonly V2_ORDER: readonly V3[] = [[0, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 1], [1, 0, 0], [1, 0, 1], [1, 1, 0], [1, 1, 1]];
  forward(x: Tensor): Tensor {
    const [, d, h, w] = x.shape as [number, number, number, number, number];
    return tidy(() => {
      let t = x;
      if (d % 2 === 1 || h % 2 === 1 || w % 2 === 1) t = F.pad(t, [0, 0, 0, w % 2, 0, h % 2, 0, d % 2]);
      const order = this.mode === 'merging' ? PatchMerging.LEGACY_ORDER : PatchMerging.V2_ORDER;
      const parts = order.map(([i, j, k]) => t.slice(1, i, undefined, 2).slice(2, j, undefined, 2).slice(3, k, undefined, 2));
      const merged = cat(parts, -1);
      return this.reduction.forward(this.norm.forward(merged));
    });
  }
}

/** One stage: Swin blocks alternating shift 0 and window//2, then patch merging. In/out channels-first. */
export class BasicLayer extends Module {
  readonly blocks: ModuleList<SwinTransformerBlock>;
  readonly downsample: PatchMerging;
  readonly shiftSize: V3;
  readonly #masks = new Map<string, Tensor>();

  constructor(readonly dim: number, depth: number, numHeads: number, readonly windowSize: V3, dropPath: readonly number[],
    o: { mlpRatio: number; qkvBias: boolean; drop: number; attnDrop: number; downsample: 'merging' | 'mergingv2' }) {
    super();
    this.shiftSize = windowSize.map((v) => Math.floor(v / 2)) as V3;
    const blocks: SwinTransformerBlock[] = [];
    for (let i = 0; i < depth; i++) {
      blocks.push(new SwinTransformerBlock(dim, numHeads, windowSize, i % 2 === 0 ? [0, 0, 0] : this.shiftSize,
        { mlpRatio: o.mlpRatio, qkvBias: o.qkvBias, drop: o.drop, attnDrop: o.attnDrop, dropPath: dropPath[i] ?? 0 }));
    }
    this.blocks = this.registerModule('blocks', new ModuleList(blocks));
    this.downsample = this.registerModule('downsample', new PatchMerging(dim, o.downsample));
  }

  /** The layer's mask for a (padded) grid, cached per size (it depends on the size only). */
  private mask(d: number, h: number, w: number): Tensor {
    const { window: ws, shift } = effectiveWindow([d, h, w], this.windowSize, this.shiftSize);
    const dims: V3 = [Math.ceil(d / ws[0]) * ws[0], Math.ceil(h / ws[1]) * ws[1], Math.ceil(w / ws[2]) * ws[2]];
    const key = `${d},${h},${w}`;
    let m = this.#masks.get(key);
    if (m === undefined) { m = keepTensor(monaiShiftMask(dims, ws, shift)); this.#masks.set(key, m); }
    return m;
  }

  /** x: [B, C, D, H, W] -> [B, 2C, D/2, H/2, W/2] (a channels-first view of a channels-last tensor). */
  forward(x: Tensor): Tensor {
    const [, , d, h, w] = x.shape as [number, number, number, number, number];
    const mask = this.blocks.items.some((b) => b.shiftSize.some((s) => s > 0)) ? this.mask(d, h, w) : null;
    let cur = tidy(() => x.permute([0, 2, 3, 4, 1]));
    for (const blk of this.blocks) cur = consume(cur, (t) => blk.forward(t, mask));
    cur = consume(cur, (t) => this.downsample.forward(t));
    return consume(cur, (t) => t.permute([0, 4, 1, 2, 3]));
  }

  override dispose(): void {
    for (const m of this.#masks.values()) m.dispose();
    this.#masks.clear();
    super.dispose();
  }
}

/** Conv3d(k = stride = patch) patch embedding; the input is zero-padded at the end to a multiple of the patch. */
export class PatchEmbed extends Module {
  readonly proj: Conv3d;
  constructor(readonly patch: number, inChans: number, embedDim: number) {
    super();
    this.proj = this.registerModule('proj', new Conv3d(inChans, embedDim, patch, { stride: patch }));
  }
  forward(x: Tensor): Tensor {
    const [, , d, h, w] = x.shape as [number, number, number, number, number];
    const p = this.patch;
    const pad = [d, h, w].map((v) => (v % p === 0 ? 0 : p - (v % p)));
    if (pad.every((v) => v === 0)) return this.proj.forward(x);
    return tidy(() => this.proj.forward(F.pad(x, [0, pad[2]!, 0, pad[1]!, 0, pad[0]!])));
  }
}

export interface SwinTransformerOptions {
  inChans: number;
  embedDim: number;
  windowSize: number;
  patchSize: number;
  depths: readonly number[];
  numHeads: readonly number[];
  mlpRatio: number;
  qkvBias: boolean;
  dropRate: number;
  attnDropRate: number;
  dropPathRate: number;
  downsample: 'merging' | 'mergingv2';
  useV2: boolean;
}

/** layer_norm over channels without affine parameters, on a channels-first map (MONAI proj_out). */
export function projOut(x: Tensor): Tensor {
  const c = x.shape[1]!;
  return tidy(() => F.layerNorm(x.permute([0, 2, 3, 4, 1]), [c], null, null, 1e-5).permute([0, 4, 1, 2, 3]));
}

/** MONAI SwinTransformer: forward(x, normalize) returns the 5 stage outputs. */
export class SwinTransformer extends Module {
  readonly patchEmbed: PatchEmbed;
  readonly posDrop: Dropout;
  readonly stages: BasicLayer[] = [];
  readonly convStages: UnetrBasicBlock[] = [];

  constructor(readonly o: SwinTransformerOptions) {
    super();
    if (o.depths.length !== 4 || o.numHeads.length !== 4) throw new ShapeError('SwinTransformer', 'depths and numHeads need 4 entries (layers1..4)');
    this.patchEmbed = this.registerModule('patch_embed', new PatchEmbed(o.patchSize, o.inChans, o.embedDim));
    this.posDrop = this.registerModule('pos_drop', new Dropout(o.dropRate));
    const total = o.depths.reduce((a, b) => a + b, 0);
    const dpr = Array.from({ length: total }, (_, i) => (total === 1 ? 0 : (o.dropPathRate * i) / (total - 1)));
    const lists = [1, 2, 3, 4].map((i) => this.registerModule(`layers${i}`, new ModuleList<BasicLayer>()));
    const cLists = o.useV2 ? [1, 2, 3, 4].map((i) => this.registerModule(`layers${i}c`, new ModuleList<UnetrBasicBlock>())) : [];
    const ws: V3 = [o.windowSize, o.windowSize, o.windowSize];
    let start = 0;
    // Construction order as MONAI (stage i, then its conv block), so seeded init draws match.
    for (let i = 0; i < 4; i++) {
      const dim = o.embedDim * 2 ** i;
      const layer = new BasicLayer(dim, o.depths[i]!, o.numHeads[i]!, ws, dpr.slice(start, start + o.depths[i]!),
        { mlpRatio: o.mlpRatio, qkvBias: o.qkvBias, drop: o.dropRate, attnDrop: o.attnDropRate, downsample: o.downsample });
      start += o.depths[i]!;
      lists[i]!.append(layer);
      this.stages.push(layer);
      if (o.useV2) {
        const blk = new UnetrBasicBlock(dim, dim);
        cLists[i]!.append(blk);
        this.convStages.push(blk);
      }
    }
  }

  /** [B, C, D, H, W] -> 5 maps (normalised with proj_out when `normalize`). */
  forward(x: Tensor, normalize = true): Tensor[] {
    const out: Tensor[] = [];
    const norm = (t: Tensor): Tensor => (normalize ? projOut(t) : t.view(t.shape));
    let cur = tidy(() => this.posDrop.forward(this.patchEmbed.forward(x)));
    try {
      out.push(tapAs(this, 'out0', norm(cur)));
      for (let i = 0; i < 4; i++) {
        if (this.o.useV2) cur = consume(cur, (t) => this.convStages[i]!.forward(t.contiguous()));
        const stage = this.stages[i]!;
        cur = consume(cur, (t) => stage.forward(t.contiguous()));
        out.push(tapAs(this, `out${i + 1}`, norm(cur)));
      }
    } catch (e) {
      for (const t of out) t.dispose();
      throw e;
    } finally {
      cur.dispose();
    }
    return out;
  }
}
