/** Pooling layers. */
import { Module } from '../module.js';
import type { Tensor } from '../../engine/tensor.js';
import * as F from '../../engine/functional.js';

export class MaxPool3d extends Module {
  constructor(readonly kernelSize: number | number[], readonly o: F.PoolOptions = {}) { super(); }
  forward(x: Tensor): Tensor { return F.maxPool3d(x, this.kernelSize, this.o); }
  protected override extraRepr(): string { return `kernel_size=${JSON.stringify(this.kernelSize)}`; }
}
export class AvgPool3d extends Module {
  constructor(readonly kernelSize: number | number[], readonly o: F.PoolOptions = {}) { super(); }
  forward(x: Tensor): Tensor { return F.avgPool3d(x, this.kernelSize, this.o); }
}
export class AdaptiveAvgPool3d extends Module {
  constructor(readonly outputSize: number | number[]) { super(); }
  forward(x: Tensor): Tensor { return F.adaptiveAvgPool3d(x, this.outputSize); }
}
