/**
 * VISTA3D's interactive branch, MONAI's `PointMappingSAM`: a random-Fourier positional encoding,
 * point tokens (position + click-type embedding), the two-way transformer over the half-resolution
 * image tokens, and a hypernetwork that turns the mask token into a per-voxel dot product with the
 * upscaled image tokens. Unused MONAI members (`mask_downsample`, `class_embeddings`) exist so
 * official checkpoints load with nothing missing or unexpected.
 */
import type { Tensor } from '../../engine/tensor.js';
import * as F from '../../engine/functional.js';
import { arange, cat, empty, fromTypedArray, stack, zeros } from '../../engine/creation.js';
import { Module } from '../../nn/module.js';
import { Conv3d, ConvTranspose3d } from '../../nn/layers/conv.js';
import { InstanceNorm3d } from '../../nn/layers/norm.js';
import { Linear } from '../../nn/layers/linear.js';
import { Embedding } from '../../nn/layers/embedding.js';
import { GELU } from '../../nn/layers/activation.js';
import { ModuleList, Sequential } from '../../nn/layers/container.js';
import { normal_ } from '../../nn/init.js';
import { ShapeError, fmtShape } from '../../util/errors.js';
import { TwoWayTransformer } from './transformer.js';

/** Random Fourier features of normalised 3-D coordinates; the Gaussian matrix is a saved buffer. */
export class PositionEmbeddingRandom extends Module {
  readonly gaussian: Tensor;
  constructor(readonly numPosFeats: number, scale = 1) {
    super();
    const g = normal_(empty([3, numPosFeats]));
    if (scale !== 1) g.mul_(scale);
    this.gaussian = this.registerBuffer('positional_encoding_gaussian_matrix', g);
  }
  /** u in [0,1]^3, shape [..., 3] -> [..., 2·numPosFeats] = concat(sin, cos) of 2π·(2u−1)·G. */
  encode(u: Tensor): Tensor {
    const v = u.mul(2); const v1 = v.sub(1); v.dispose();
    const p = v1.matmul(this.gaussian); v1.dispose();
    const p2 = p.mul(2 * Math.PI); p.dispose();
    const s = p2.sin(), c = p2.cos(); p2.dispose();
    try { return cat([s, c], -1); } finally { s.dispose(); c.dispose(); }
  }
  /** The dense grid for a [h, w, d] feature map: [E, h, w, d], voxel (i,j,k) at ((i+.5)/h, (j+.5)/w, (k+.5)/d). */
  grid(size: readonly [number, number, number]): Tensor {
    const [h, w, d] = size;
    const device = this.gaussian.device;
    const axis = (n: number, shape: number[]): Tensor => {
      const a = arange(0, n, 1, { device }); const b = a.add(0.5); a.dispose();
      const c = b.div(n); b.dispose();
      const v = c.view(shape); c.dispose();
      try { return v.expand([h, w, d]); } finally { v.dispose(); }
    };
    const xs = axis(h, [h, 1, 1]), ys = axis(w, [1, w, 1]), zs = axis(d, [1, 1, d]);
    const u = stack([xs, ys, zs], -1); xs.dispose(); ys.dispose(); zs.dispose();
    const pe = this.encode(u); u.dispose();
    const perm = pe.permute([3, 0, 1, 2]); pe.dispose();
    try { return perm.contiguous(); } finally { perm.dispose(); }
  }
  /** Points [B, N, 3] (already shifted to voxel centres) normalised by `size` = (H, W, D): [B, N, E]. */
  withCoords(coords: Tensor, size: readonly [number, number, number]): Tensor {
    const sz = fromTypedArray(new Float32Array(size), [3], { device: coords.device });
    const f = coords.dtype === 'float32' ? coords.view(coords.shape) : coords.to('float32');
    const u = f.div(sz); f.dispose(); sz.dispose();
    try { return this.encode(u); } finally { u.dispose(); }
  }
}

/** A one-row embedding (`nn.Embedding(1, E)`) used as a learnt vector. */
const vector = (e: number): Embedding => new Embedding(1, e);

/** MLP(E, E, E, 3): Linear → ReLU → Linear → ReLU → Linear, under `layers.i`. */
class HyperMlp extends Module {
  readonly layers: ModuleList<Linear>;
  constructor(e: number, n: number) {
    super();
    this.layers = this.registerModule('layers', new ModuleList(Array.from({ length: n }, () => new Linear(e, e))));
  }
  forward(x: Tensor): Tensor {
    let cur = x;
    this.layers.items.forEach((l, i) => {
      const y = l.forward(cur); if (cur !== x) cur.dispose();
      if (i < this.layers.length - 1) { cur = F.relu(y); y.dispose(); } else cur = y;
    });
    return cur;
  }
}

export interface PointHeadOptions {
  featureSize: number; maxPrompt: number; nClasses: number; lastSupported: number;
  transformerDepth: number; numHeads: number; mlpDim: number; attentionDownsampleRate: number;
}

/** Taps of the point head's intermediates, for parity tests (off unless given). */
export type PointHeadTap = (name: string, t: Tensor) => void;

export class PointMappingSAM extends Module {
  readonly featDownsample: Sequential;
  readonly maskDownsample: Conv3d;
  readonly transformer: TwoWayTransformer;
  readonly peLayer: PositionEmbeddingRandom;
  readonly pointEmbeddings: ModuleList<Embedding>;
  readonly notAPointEmbed: Embedding;
  readonly specialClassEmbed: Embedding;
  readonly maskTokens: Embedding;
  readonly outputUpscaling: Sequential;
  readonly outputHypernetworksMlps: HyperMlp;
  readonly classEmbeddings: Embedding;
  readonly zeroshotEmbed: Embedding;
  readonly supportedEmbed: Embedding;
  readonly o: PointHeadOptions;

  constructor(o: PointHeadOptions) {
    super();
    this.o = o;
    const e = o.featureSize;
    this.featDownsample = this.registerModule('feat_downsample', new Sequential(
      new Conv3d(e, e, 3, { stride: 2, padding: 1 }), new InstanceNorm3d(e), new GELU(), new Conv3d(e, e, 3, { padding: 1 }), new InstanceNorm3d(e)));
    this.maskDownsample = this.registerModule('mask_downsample', new Conv3d(2, 2, 3, { stride: 2, padding: 1 }));
    this.transformer = this.registerModule('transformer', new TwoWayTransformer(o.transformerDepth, e, o.numHeads, o.mlpDim, o.attentionDownsampleRate));
    this.peLayer = this.registerModule('pe_layer', new PositionEmbeddingRandom(e / 2));
    this.pointEmbeddings = this.registerModule('point_embeddings', new ModuleList([vector(e), vector(e)]));
    this.notAPointEmbed = this.registerModule('not_a_point_embed', vector(e));
    this.specialClassEmbed = this.registerModule('special_class_embed', vector(e));
    this.maskTokens = this.registerModule('mask_tokens', vector(e));
    this.outputUpscaling = this.registerModule('output_upscaling', new Sequential(
      new ConvTranspose3d(e, e, 3, { stride: 2, padding: 1, outputPadding: 1 }), new InstanceNorm3d(e), new GELU(), new Conv3d(e, e, 3, { padding: 1 })));
    this.outputHypernetworksMlps = this.registerModule('output_hypernetworks_mlps', new HyperMlp(e, 3));
    this.classEmbeddings = this.registerModule('class_embeddings', new Embedding(o.nClasses, e));
    this.zeroshotEmbed = this.registerModule('zeroshot_embed', vector(e));
    this.supportedEmbed = this.registerModule('supported_embed', vector(e));
  }

  /** The half-resolution image tokens (cacheable: they depend only on the image). */
  downsample(out: Tensor): Tensor {
    const s = out.shape;
    if (s.length !== 5 || s[0] !== 1 || s[1] !== this.o.featureSize) throw new ShapeError('PointMappingSAM', `expected features [1, ${this.o.featureSize}, H, W, D], got ${fmtShape(s)}`);
    return this.featDownsample.forward(out);
  }

  /**
   * Point tokens [B, N+2, E]: mask token, one token per point (position + click type) and the
   * supported / zero-shot class-type token. `labels`: -1 padding, 0/1 neg/pos, 2/3 special neg/pos.
   */
  tokens(coords: Tensor, labels: readonly (readonly number[])[], fullSize: readonly [number, number, number], promptClass: readonly number[] | null, tap?: PointHeadTap): Tensor {
    const [B, N] = coords.shape as [number, number, number];
    const shifted = coords.to('float32'); const c5 = shifted.add(0.5); shifted.dispose();
    const pe = this.peLayer.withCoords(c5, fullSize); c5.dispose();
    if (tap !== undefined) { const p0 = pe.narrow(0, 0, 1); tap('pe_of_points_obj0', p0); p0.dispose(); }
    const w = (m: Embedding): Tensor => m.weight.view([this.o.featureSize]);
    const neg = w(this.pointEmbeddings.at(0)), pos = w(this.pointEmbeddings.at(1)), special = w(this.specialClassEmbed), pad = w(this.notAPointEmbed);
    const negS = neg.add(special), posS = pos.add(special);
    const zero = zeros([this.o.featureSize], { device: neg.device });
    // Row r of the table is added to a point of label r-1; row 5 (zero) to any other value.
    const table = stack([pad, neg, pos, negS, posS, zero], 0);
    for (const t of [neg, pos, special, pad, negS, posS, zero]) t.dispose();
    const idx = new BigInt64Array(B * N), keep = new Float32Array(B * N);
    for (let b = 0; b < B; b++) for (let n = 0; n < N; n++) {
      const l = labels[b]![n]!;
      idx[b * N + n] = BigInt(l >= -1 && l <= 3 ? l + 1 : 5);
      keep[b * N + n] = l === -1 ? 0 : 1;
    }
    const device = coords.device;
    const idxT = fromTypedArray(idx, [B * N], { device }), keepT = fromTypedArray(keep, [B, N, 1], { device });
    const add = table.indexSelect(0, idxT); table.dispose(); idxT.dispose();
    const add3 = add.view([B, N, this.o.featureSize]); add.dispose();
    const kept = pe.mul(keepT); pe.dispose(); keepT.dispose();
    const pts = kept.add(add3); kept.dispose(); add3.dispose();
    const mask = this.maskTokens.weight.unsqueeze(0); const maskB = mask.expand([B, 1, this.o.featureSize]); mask.dispose();
    const typeRows = Array.from({ length: B }, (_, b) => (promptClass !== null && promptClass[b]! > this.o.lastSupported ? this.zeroshotEmbed : this.supportedEmbed).weight);
    const types = stack(typeRows, 0);
    try { return cat([maskB, pts, types], 1); } finally { maskB.dispose(); pts.dispose(); types.dispose(); }
  }

  /** Logits [B,1,H,W,D] from cached half-resolution tokens `low` [1,E,h,w,d] and point tokens [B,T,E]. */
  decode(low: Tensor, tokensAll: Tensor, tap?: PointHeadTap): Tensor {
    const B = tokensAll.shape[0]!;
    const [, E, h, w, d] = low.shape as [number, number, number, number, number];
    const pos = this.peLayer.grid([h, w, d]);
    if (tap !== undefined) tap('transformer_in_pos_src', pos);
    const masks: Tensor[] = [];
    try {
      for (let start = 0; start < B; start += this.o.maxPrompt) {
        const n = Math.min(this.o.maxPrompt, B - start);
        const tokens = tokensAll.narrow(0, start, n);
        const src = low.expand([n, E, h, w, d]);
        const posB = pos.unsqueeze(0); const posN = posB.expand([n, E, h, w, d]); posB.dispose();
        const [hs, keys] = this.transformer.forward(src, posN, tokens);
        src.dispose(); posN.dispose(); tokens.dispose();
        if (tap !== undefined) { tap('transformer_out_queries', hs); tap('transformer_out_keys', keys); }
        const first = hs.narrow(1, 0, 1); hs.dispose();
        const hyper = this.outputHypernetworksMlps.forward(first); first.dispose();
        if (tap !== undefined) tap('hyper_in', hyper);
        const kt = keys.transpose(1, 2); keys.dispose();
        const img = kt.reshape([n, E, h, w, d]); kt.dispose();
        const up = this.outputUpscaling.forward(img); img.dispose();
        const [, c, H, W, D] = up.shape as [number, number, number, number, number];
        const flat = up.view([n, c, H * W * D]);
        const m = hyper.matmul(flat); hyper.dispose(); flat.dispose(); up.dispose();
        masks.push(m.view([n, 1, H, W, D])); m.dispose();
      }
      return masks.length === 1 ? masks[0]! : cat(masks, 0);
    } finally {
      pos.dispose();
      if (masks.length > 1) for (const m of masks) m.dispose();
    }
  }

  /** MONAI's forward: logits [B,1,H,W,D] for `out` [1,E,H,W,D] and points [B,N,3]. */
  forward(out: Tensor, coords: Tensor, labels: readonly (readonly number[])[], promptClass: readonly number[] | null = null, tap?: PointHeadTap): Tensor {
    const low = this.downsample(out);
    if (tap !== undefined) tap('feat_downsample_out', low);
    const s = out.shape;
    const tok = this.tokens(coords, labels, [s[2]!, s[3]!, s[4]!], promptClass, tap);
    if (tap !== undefined) tap('transformer_in_tokens', tok);
    try { return this.decode(low, tok, tap); } finally { low.dispose(); tok.dispose(); }
  }
}

