/**
 * The SAM-style two-way transformer of VISTA3D's point head (MONAI `TwoWayTransformer`,
 * `TwoWayAttentionBlock`, `Attention`): point tokens attend to image tokens and back. No dropout.
 */
import type { Tensor } from '../../engine/tensor.js';
import * as F from '../../engine/functional.js';
import { Module } from '../../nn/module.js';
import { Linear } from '../../nn/layers/linear.js';
import { LayerNorm } from '../../nn/layers/norm.js';
import { ModuleList } from '../../nn/layers/container.js';
import { ConfigError } from '../../util/errors.js';

/** Multi-head attention with an optional channel reduction (`internal = E / downsample`). */
export class Attention extends Module {
  readonly qProj: Linear; readonly kProj: Linear; readonly vProj: Linear; readonly outProj: Linear;
  readonly internal: number;
  constructor(readonly embeddingDim: number, readonly numHeads: number, downsample = 1) {
    super();
    this.internal = embeddingDim / downsample;
    if (!Number.isInteger(this.internal) || this.internal % numHeads !== 0) throw new ConfigError('numHeads', `num_heads must divide embedding_dim (${embeddingDim}/${downsample})`);
    this.qProj = this.registerModule('q_proj', new Linear(embeddingDim, this.internal));
    this.kProj = this.registerModule('k_proj', new Linear(embeddingDim, this.internal));
    this.vProj = this.registerModule('v_proj', new Linear(embeddingDim, this.internal));
    this.outProj = this.registerModule('out_proj', new Linear(this.internal, embeddingDim));
  }
  /** [b, n, c] -> [b, heads, n, c/heads] */
  private separate(x: Tensor): Tensor {
    const [b, n, c] = x.shape as [number, number, number];
    const v = x.reshape([b, n, this.numHeads, c / this.numHeads]);
    try { return v.transpose(1, 2); } finally { v.dispose(); }
  }
  forward(q: Tensor, k: Tensor, v: Tensor): Tensor {
    const qp = this.qProj.forward(q), kp = this.kProj.forward(k), vp = this.vProj.forward(v);
    const qh = this.separate(qp), kh = this.separate(kp), vh = this.separate(vp);
    qp.dispose(); kp.dispose(); vp.dispose();
    const cPerHead = qh.shape[3]!;
    const kt = kh.permute([0, 1, 3, 2]); kh.dispose();
    const a0 = qh.matmul(kt); qh.dispose(); kt.dispose();
    const a1 = a0.div(Math.sqrt(cPerHead)); a0.dispose();
    const a2 = F.softmax(a1, -1); a1.dispose();
    const o = a2.matmul(vh); a2.dispose(); vh.dispose();
    const [b, h, n, c] = o.shape as [number, number, number, number];
    const ot = o.transpose(1, 2); o.dispose();
    const r = ot.reshape([b, n, h * c]); ot.dispose();
    try { return this.outProj.forward(r); } finally { r.dispose(); }
  }
}

/** MLPBlock(E, mlp_dim, act relu, dropout_mode 'vista3d'): linear1 → relu → linear2. */
class MlpBlock extends Module {
  readonly linear1: Linear; readonly linear2: Linear;
  constructor(e: number, hidden: number) {
    super();
    this.linear1 = this.registerModule('linear1', new Linear(e, hidden));
    this.linear2 = this.registerModule('linear2', new Linear(hidden, e));
  }
  forward(x: Tensor): Tensor {
    const a = this.linear1.forward(x); const b = F.relu(a); a.dispose();
    try { return this.linear2.forward(b); } finally { b.dispose(); }
  }
}

/** add then dispose the first operand when it is owned (a small helper for long chains). */
function addOwned(a: Tensor, b: Tensor, ownA: boolean): Tensor {
  const r = a.add(b);
  if (ownA) a.dispose();
  return r;
}

export class TwoWayAttentionBlock extends Module {
  readonly selfAttn: Attention; readonly norm1: LayerNorm;
  readonly crossTokenToImage: Attention; readonly norm2: LayerNorm;
  readonly mlp: MlpBlock; readonly norm3: LayerNorm; readonly norm4: LayerNorm;
  readonly crossImageToToken: Attention;
  constructor(e: number, heads: number, mlpDim: number, downsample: number, readonly skipFirstLayerPe: boolean) {
    super();
    this.selfAttn = this.registerModule('self_attn', new Attention(e, heads));
    this.norm1 = this.registerModule('norm1', new LayerNorm(e));
    this.crossTokenToImage = this.registerModule('cross_attn_token_to_image', new Attention(e, heads, downsample));
    this.norm2 = this.registerModule('norm2', new LayerNorm(e));
    this.mlp = this.registerModule('mlp', new MlpBlock(e, mlpDim));
    this.norm3 = this.registerModule('norm3', new LayerNorm(e));
    this.norm4 = this.registerModule('norm4', new LayerNorm(e));
    this.crossImageToToken = this.registerModule('cross_attn_image_to_token', new Attention(e, heads, downsample));
  }
  /** Returns new [queries, keys]; the inputs are not disposed. */
  forward(queries: Tensor, keys: Tensor, queryPe: Tensor, keyPe: Tensor): [Tensor, Tensor] {
    let qs: Tensor;
    if (this.skipFirstLayerPe) {
      qs = this.selfAttn.forward(queries, queries, queries);
    } else {
      const q = queries.add(queryPe);
      const a = this.selfAttn.forward(q, q, queries); q.dispose();
      qs = addOwned(queries, a, false); a.dispose();
    }
    let n = this.norm1.forward(qs); qs.dispose();
    const q2 = n.add(queryPe), k2 = keys.add(keyPe);
    const a2 = this.crossTokenToImage.forward(q2, k2, keys); q2.dispose();
    qs = addOwned(n, a2, true); a2.dispose();
    n = this.norm2.forward(qs); qs.dispose();
    const m = this.mlp.forward(n);
    qs = addOwned(n, m, true); m.dispose();
    const outQ = this.norm3.forward(qs); qs.dispose();
    const q3 = outQ.add(queryPe);
    const a3 = this.crossImageToToken.forward(k2, q3, outQ); q3.dispose(); k2.dispose();
    const ks = keys.add(a3); a3.dispose();
    const outK = this.norm4.forward(ks); ks.dispose();
    return [outQ, outK];
  }
}

export class TwoWayTransformer extends Module {
  readonly layers: ModuleList<TwoWayAttentionBlock>;
  readonly finalAttn: Attention;
  readonly normFinal: LayerNorm;
  constructor(depth: number, e: number, heads: number, mlpDim: number, downsample: number) {
    super();
    this.layers = this.registerModule('layers', new ModuleList(Array.from({ length: depth }, (_, i) => new TwoWayAttentionBlock(e, heads, mlpDim, downsample, i === 0))));
    this.finalAttn = this.registerModule('final_attn_token_to_image', new Attention(e, heads, downsample));
    this.normFinal = this.registerModule('norm_final_attn', new LayerNorm(e));
  }
  /**
   * image, imagePe: [b, E, h, w, d]; tokens: [b, T, E]. Returns [queries [b,T,E], keys [b,hwd,E]].
   */
  forward(image: Tensor, imagePe: Tensor, tokens: Tensor): [Tensor, Tensor] {
    const tokenMajor = (t: Tensor): Tensor => { const f = t.flatten(2); try { return f.permute([0, 2, 1]); } finally { f.dispose(); } };
    let keys = tokenMajor(image);
    const keyPe = tokenMajor(imagePe);
    let queries = tokens;
    try {
      for (const layer of this.layers) {
        const [q, k] = layer.forward(queries, keys, tokens, keyPe);
        if (queries !== tokens) queries.dispose();
        keys.dispose();
        queries = q; keys = k;
      }
      const q = queries.add(tokens), k = keys.add(keyPe);
      const a = this.finalAttn.forward(q, k, keys); q.dispose(); k.dispose();
      const s = queries.add(a); a.dispose();
      const out = this.normFinal.forward(s); s.dispose();
      return [out, keys];
    } catch (err) {
      keys.dispose();
      throw err;
    } finally {
      if (queries !== tokens) queries.dispose();
      keyPe.dispose();
    }
  }
}
