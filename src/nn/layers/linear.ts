/** Fully connected layer. */
import { Module } from '../module.js';
import type { Tensor } from '../../engine/tensor.js';
import { empty } from '../../engine/creation.js';
import * as F from '../../engine/functional.js';
import { kaimingUniform_, defaultBias_ } from '../init.js';

export class Linear extends Module {
  weight: Tensor;
  bias: Tensor | null;
  constructor(readonly inFeatures: number, readonly outFeatures: number, o: { bias?: boolean } = {}) {
    super();
    this.weight = this.registerParameter('weight', kaimingUniform_(empty([outFeatures, inFeatures])));
    this.bias = (o.bias ?? true) ? this.registerParameter('bias', defaultBias_(empty([outFeatures]), [outFeatures, inFeatures])) : this.registerParameter('bias', null);
  }
  forward(x: Tensor): Tensor { return F.linear(x, this.weight, this.bias); }
  protected override extraRepr(): string { return `in_features=${this.inFeatures}, out_features=${this.outFeatures}`; }
}
