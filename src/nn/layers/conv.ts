/** Convolution layers (PyTorch names, defaults and init). Kernels may be anisotropic, e.g. [1,3,3]. */
import { Module } from '../module.js';
import type { Tensor } from '../../engine/tensor.js';
import { empty } from '../../engine/creation.js';
import * as F from '../../engine/functional.js';
import { kaimingUniform_, defaultBias_ } from '../init.js';

export interface ConvLayerOptions {
  stride?: number | number[];
  padding?: number | number[];
  dilation?: number | number[];
  groups?: number;
  bias?: boolean;
}

abstract class ConvNd extends Module {
  readonly kernelSize: number[];
  readonly stride: number[];
  readonly padding: number[];
  readonly dilation: number[];
  readonly groups: number;
  weight: Tensor;
  bias: Tensor | null;

  constructor(readonly inChannels: number, readonly outChannels: number, kernel: number | number[], nd: number, o: ConvLayerOptions, transposed: boolean) {
    super();
    const op = this.constructor.name;
    this.kernelSize = F.ntuple(kernel, nd, op, 'kernelSize');
    this.stride = F.ntuple(o.stride ?? 1, nd, op, 'stride');
    this.padding = F.ntuple(o.padding ?? 0, nd, op, 'padding');
    this.dilation = F.ntuple(o.dilation ?? 1, nd, op, 'dilation');
    this.groups = o.groups ?? 1;
    const wShape = transposed
      ? [inChannels, outChannels / this.groups, ...this.kernelSize]
      : [outChannels, inChannels / this.groups, ...this.kernelSize];
    this.weight = this.registerParameter('weight', kaimingUniform_(empty(wShape)));
    this.bias = (o.bias ?? true) ? this.registerParameter('bias', defaultBias_(empty([outChannels]), wShape)) : this.registerParameter('bias', null);
  }
  protected override extraRepr(): string {
    return `${this.inChannels}, ${this.outChannels}, kernel_size=[${this.kernelSize}], stride=[${this.stride}], padding=[${this.padding}]`;
  }
}

export class Conv3d extends ConvNd {
  constructor(inChannels: number, outChannels: number, kernel: number | number[], o: ConvLayerOptions = {}) {
    super(inChannels, outChannels, kernel, 3, o, false);
  }
  forward(x: Tensor): Tensor {
    return F.conv3d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups });
  }
}

export class Conv2d extends ConvNd {
  constructor(inChannels: number, outChannels: number, kernel: number | number[], o: ConvLayerOptions = {}) {
    super(inChannels, outChannels, kernel, 2, o, false);
  }
  forward(x: Tensor): Tensor {
    return F.conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups });
  }
}

/** ConvTranspose3d; weight layout [in, out/groups, kd, kh, kw]. */
export class ConvTranspose3d extends ConvNd {
  readonly outputPadding: number[];
  constructor(inChannels: number, outChannels: number, kernel: number | number[], o: ConvLayerOptions & { outputPadding?: number | number[] } = {}) {
    super(inChannels, outChannels, kernel, 3, o, true);
    this.outputPadding = F.ntuple(o.outputPadding ?? 0, 3, 'ConvTranspose3d', 'outputPadding');
  }
  forward(x: Tensor): Tensor {
    return F.convTranspose3d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, outputPadding: this.outputPadding, dilation: this.dilation, groups: this.groups });
  }
}
