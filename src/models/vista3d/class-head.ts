/**
 * VISTA3D's automatic branch, MONAI's `ClassMappingClassify(use_mlp=True)`: two residual
 * post-mapping blocks on the image features, a class-embedding table passed through an MLP, and
 * one logit map per requested class as the dot product of its embedding with every voxel's feature.
 */
import type { Tensor } from '../../engine/tensor.js';
import * as F from '../../engine/functional.js';
import { cat } from '../../engine/creation.js';
import { Module } from '../../nn/module.js';
import { Conv3d } from '../../nn/layers/conv.js';
import { Linear } from '../../nn/layers/linear.js';
import { Embedding } from '../../nn/layers/embedding.js';
import { ShapeError, fmtShape } from '../../util/errors.js';

/** MONAI's `Convolution` wrapper: the conv is its child `conv`. */
class WrappedConv extends Module {
  readonly conv: Conv3d;
  constructor(c: number) { super(); this.conv = this.registerModule('conv', new Conv3d(c, c, 3, { padding: 1, bias: false })); }
  forward(x: Tensor): Tensor { return this.conv.forward(x); }
}

/** UnetResBlock (in = out, stride 1): lrelu(norm2(conv2(lrelu(norm1(conv1 x)))) + x); norms without affine. */
class UnetResBlock extends Module {
  readonly conv1: WrappedConv; readonly conv2: WrappedConv;
  constructor(c: number) {
    super();
    this.conv1 = this.registerModule('conv1', new WrappedConv(c));
    this.conv2 = this.registerModule('conv2', new WrappedConv(c));
  }
  forward(x: Tensor): Tensor {
    const a = this.conv1.forward(x); const b = F.instanceNorm(a); a.dispose();
    const c = F.leakyRelu(b, 0.01); b.dispose();
    const d = this.conv2.forward(c); c.dispose();
    const e = F.instanceNorm(d); d.dispose();
    const f = e.add(x); e.dispose();
    const y = F.leakyRelu(f, 0.01); f.dispose();
    return y;
  }
}

/** UnetrBasicBlock(res_block=True): the residual block under `.layer`. */
class UnetrBasicBlock extends Module {
  readonly layer: UnetResBlock;
  constructor(c: number) { super(); this.layer = this.registerModule('layer', new UnetResBlock(c)); }
  forward(x: Tensor): Tensor { return this.layer.forward(x); }
}

/** Linear → InstanceNorm1d(1) (per row over the features) → GELU → Linear; indices 0 and 3 as in MONAI. */
class ClassMlp extends Module {
  readonly l0: Linear; readonly l3: Linear;
  constructor(e: number) {
    super();
    this.l0 = this.registerModule('0', new Linear(e, e));
    this.l3 = this.registerModule('3', new Linear(e, e));
  }
  /** x: [B, 1, E]. */
  forward(x: Tensor): Tensor {
    const a = this.l0.forward(x); const b = F.instanceNorm(a); a.dispose();
    const c = F.gelu(b); b.dispose();
    const y = this.l3.forward(c); c.dispose();
    return y;
  }
}

class PostMapping extends Module {
  readonly blocks: UnetrBasicBlock[];
  constructor(e: number) {
    super();
    this.blocks = [0, 1].map((i) => this.registerModule(String(i), new UnetrBasicBlock(e)));
  }
  forward(x: Tensor): Tensor {
    const a = this.blocks[0]!.forward(x);
    const y = this.blocks[1]!.forward(a); a.dispose();
    return y;
  }
}

export class ClassMappingClassify extends Module {
  readonly mlp: ClassMlp;
  readonly classEmbeddings: Embedding;
  readonly imagePostMapping: PostMapping;
  constructor(readonly nClasses: number, readonly featureSize: number) {
    super();
    this.mlp = this.registerModule('mlp', new ClassMlp(featureSize));
    this.classEmbeddings = this.registerModule('class_embeddings', new Embedding(nClasses, featureSize));
    this.imagePostMapping = this.registerModule('image_post_mapping', new PostMapping(featureSize));
  }

  /** The class embeddings after the MLP for `classVector` [B,1] int64: [B,1,E]. */
  embed(classVector: Tensor): Tensor {
    const e = this.classEmbeddings.forward(classVector);
    const e3 = e.ndim === 2 ? e.unsqueeze(1) : e.view(e.shape);
    e.dispose();
    try { return this.mlp.forward(e3); } finally { e3.dispose(); }
  }

  /** Post-mapped features for `src` [b,E,h,w,d] (cacheable: they do not depend on the classes). */
  mapImage(src: Tensor): Tensor {
    if (src.ndim !== 5 || src.shape[1] !== this.featureSize) throw new ShapeError('ClassMappingClassify', `expected features [b, ${this.featureSize}, h, w, d], got ${fmtShape(src.shape)}`);
    return this.imagePostMapping.forward(src);
  }

  /** Logits [B, b, h, w, d] from post-mapped features and class embeddings [B,1,E]. */
  logits(mapped: Tensor, embedding: Tensor): Tensor {
    const [b, c, h, w, d] = mapped.shape as [number, number, number, number, number];
    const parts: Tensor[] = [];
    for (let i = 0; i < b; i++) {
      const sel = mapped.select(0, i); const one = sel.reshape([1, c, h * w * d]); sel.dispose();
      const m = embedding.matmul(one); one.dispose();
      parts.push(m.view([-1, 1, h, w, d])); m.dispose();
    }
    if (parts.length === 1) return parts[0]!;
    try { return cat(parts, 1); } finally { for (const p of parts) p.dispose(); }
  }

  /** MONAI's forward: logits [B, b, h, w, d] for `classVector` [B,1]. */
  forward(src: Tensor, classVector: Tensor): Tensor {
    const mapped = this.mapImage(src);
    const e = this.embed(classVector);
    try { return this.logits(mapped, e); } finally { mapped.dispose(); e.dispose(); }
  }
}
