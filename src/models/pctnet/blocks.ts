/**
 * Convolutional building blocks of PCT-Net. All are pre-activation (BN -> PReLU -> Conv) with a
 * single shared PReLU slope, and none has a residual connection. "dim 2" means an in-plane
 * operation ([1,3,3] kernel, [1,2,2] pool/stride), "dim 3" an isotropic one.
 */
import type { Tensor } from '../../engine/tensor.js';
import { cat } from '../../engine/creation.js';
import { Module } from '../../nn/module.js';
import { BatchNorm3d } from '../../nn/layers/norm.js';
import { PReLU, Dropout } from '../../nn/layers/activation.js';
import { Conv3d, ConvTranspose3d } from '../../nn/layers/conv.js';
import { MaxPool3d } from '../../nn/layers/pool.js';
import { Sequential } from '../../nn/layers/container.js';

/** 2 = in-plane ([1,3,3] kernels, [1,2,2] sampling), 3 = isotropic. */
export type ConvDim = 2 | 3;

export function convKernel(dim: ConvDim): number[] { return dim === 2 ? [1, 3, 3] : [3, 3, 3]; }
export function convPad(dim: ConvDim): number[] { return dim === 2 ? [0, 1, 1] : [1, 1, 1]; }
export function sampleFactor(dim: ConvDim): number[] { return dim === 2 ? [1, 2, 2] : [2, 2, 2]; }

/** BN(in) -> PReLU -> Conv(in, out, k) -> BN(out) -> PReLU -> Dropout(p) -> Conv(out, out, k). */
export class ConvBlock extends Module {
  readonly convConv: Sequential;
  constructor(inChannels: number, outChannels: number, dim: ConvDim, dropout: number) {
    super();
    const k = convKernel(dim), p = convPad(dim);
    this.convConv = this.registerModule('conv_conv', new Sequential(
      new BatchNorm3d(inChannels), new PReLU(), new Conv3d(inChannels, outChannels, k, { padding: p }),
      new BatchNorm3d(outChannels), new PReLU(), new Dropout(dropout), new Conv3d(outChannels, outChannels, k, { padding: p }),
    ));
  }
  forward(x: Tensor): Tensor { return this.convConv.forward(x); }
}

/** MaxPool (2 or [1,2,2]) then BN -> PReLU -> Conv(in, out, k of convDim). */
export class DownSample extends Module {
  readonly pool: MaxPool3d;
  readonly conv: Sequential;
  constructor(inChannels: number, outChannels: number, downDim: ConvDim, convDim: ConvDim) {
    super();
    this.pool = this.registerModule('pool', new MaxPool3d(sampleFactor(downDim)));
    this.conv = this.registerModule('conv', new Sequential(
      new BatchNorm3d(inChannels), new PReLU(), new Conv3d(inChannels, outChannels, convKernel(convDim), { padding: convPad(convDim) }),
    ));
  }
  forward(x: Tensor): Tensor {
    const p = this.pool.forward(x);
    try { return this.conv.forward(p); } finally { p.dispose(); }
  }
}

/** The prediction layer: BN -> PReLU -> 1x1x1 Conv. */
export class ConvLayer extends Module {
  readonly conv: Sequential;
  constructor(inChannels: number, outChannels: number) {
    super();
    this.conv = this.registerModule('conv', new Sequential(new BatchNorm3d(inChannels), new PReLU(), new Conv3d(inChannels, outChannels, 1)));
  }
  forward(x: Tensor): Tensor { return this.conv.forward(x); }
}

/**
 * Up-sample the coarse map (BN -> PReLU -> ConvTranspose with kernel = stride), concatenate
 * [skip, up] (skip first), then BN -> PReLU -> Conv(2*chnsL, chnsL).
 */
export class UpCatBlock extends Module {
  readonly up: Sequential;
  readonly conv: Sequential;
  constructor(chnsL: number, chnsH: number, upDim: ConvDim, convDim: ConvDim) {
    super();
    const f = sampleFactor(upDim);
    this.up = this.registerModule('up', new Sequential(new BatchNorm3d(chnsH), new PReLU(), new ConvTranspose3d(chnsH, chnsL, f, { stride: f })));
    this.conv = this.registerModule('conv', new Sequential(
      new BatchNorm3d(2 * chnsL), new PReLU(), new Conv3d(2 * chnsL, chnsL, convKernel(convDim), { padding: convPad(convDim) }),
    ));
  }
  /** xL: the fine skip map, xH: the coarse map. */
  forward(xL: Tensor, xH: Tensor): Tensor {
    const u = this.up.forward(xH);
    let y: Tensor;
    try { y = cat([xL, u], 1); } finally { u.dispose(); }
    try { return this.conv.forward(y); } finally { y.dispose(); }
  }
}
