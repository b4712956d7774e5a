/** nn.Embedding: a [num, dim] table looked up by integer index (PyTorch init N(0, 1)). */
import { Module } from '../module.js';
import type { Tensor } from '../../engine/tensor.js';
import { empty } from '../../engine/creation.js';
import { call1 } from '../../engine/call.js';
import { normal_ } from '../init.js';

export class Embedding extends Module {
  weight: Tensor;
  constructor(readonly numEmbeddings: number, readonly embeddingDim: number) {
    super();
    this.weight = this.registerParameter('weight', normal_(empty([numEmbeddings, embeddingDim])));
  }
  /** Rows of the table for int64 `indices` of any shape: [...indices.shape, dim]. */
  forward(indices: Tensor): Tensor { return call1('embedding', [this.weight, indices, -1, false, false]); }
  protected override extraRepr(): string { return `${this.numEmbeddings}, ${this.embeddingDim}`; }
}
