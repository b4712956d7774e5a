/** Activation and regularisation layers. */
import { Module } from '../module.js';
import type { Tensor } from '../../engine/tensor.js';
import { full } from '../../engine/creation.js';
import * as F from '../../engine/functional.js';
import { bernoulliKeepMask } from './drop-path.js';

export class ReLU extends Module { forward(x: Tensor): Tensor { return F.relu(x); } }
export class LeakyReLU extends Module {
  constructor(readonly negativeSlope = 0.01) { super(); }
  forward(x: Tensor): Tensor { return F.leakyRelu(x, this.negativeSlope); }
}
/** GELU, exact (erf) by default as in torch.nn.GELU(). */
export class GELU extends Module {
  constructor(readonly approximate: 'none' | 'tanh' = 'none') { super(); }
  forward(x: Tensor): Tensor { return F.gelu(x, this.approximate); }
}
/** PReLU with `numSlopes` slopes (PyTorch default: one shared slope, init 0.25). */
export class PReLU extends Module {
  weight: Tensor;
  constructor(readonly numSlopes = 1, init = 0.25) {
    super();
    this.weight = this.registerParameter('weight', full([numSlopes], init));
  }
  forward(x: Tensor): Tensor { return F.prelu(x, this.weight); }
}
export class Sigmoid extends Module { forward(x: Tensor): Tensor { return F.sigmoid(x); } }
export class Identity extends Module { forward(x: Tensor): Tensor { return x.view(x.shape); } }

export class Dropout extends Module {
  constructor(readonly p = 0.5) { super(); }
  forward(x: Tensor): Tensor { return F.dropout(x, this.p, this.training); }
  protected override extraRepr(): string { return `p=${this.p}`; }
}

/** Stochastic depth per sample (timm's DropPath): keep with prob 1-p, scale by 1/(1-p), training only. */
export class DropPath extends Module {
  constructor(readonly p = 0) { super(); }
  forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) return x.view(x.shape);
    const mask = bernoulliKeepMask(x, 1 - this.p);
    try { return x.mul(mask); } finally { mask.dispose(); }
  }
  protected override extraRepr(): string { return `p=${this.p}`; }
}
