/**
 * The full-resolution parts of PCT-Net: the convolutional patch embedding (levels 0-2) and the
 * prediction head that decodes back to full resolution. PCT-Net builds three of each (one per
 * resolution mode) and runs only the selected one.
 */
import type { Tensor } from '../../engine/tensor.js';
import { tidy } from '../../engine/scope.js';
import { Module } from '../../nn/module.js';
import { Conv3d } from '../../nn/layers/conv.js';
import { tap } from '../taps.js';
import { consume } from '../consume.js';
import { ConvBlock, ConvLayer, DownSample, UpCatBlock, convKernel, convPad, type ConvDim } from './blocks.js';

/** Feature maps of levels 0, 1 and 2. */
export interface EmbeddingOutput { x0: Tensor; x1: Tensor; x2: Tensor; }

export class PatchEmbedding extends Module {
  readonly proj: Conv3d;
  readonly conv0: ConvBlock;
  readonly conv1: ConvBlock;
  readonly down1: DownSample;
  readonly down2: DownSample;

  constructor(inChannels: number, ft: readonly number[], convDims: readonly [ConvDim, ConvDim], downDims: readonly [ConvDim, ConvDim], dropout: readonly number[]) {
    super();
    const [f0, f1, f2] = ft as [number, number, number];
    this.proj = this.registerModule('proj', new Conv3d(inChannels, f0, convKernel(convDims[0]), { padding: convPad(convDims[0]) }));
    this.conv0 = this.registerModule('conv0', new ConvBlock(f0, f0, convDims[0], dropout[0] ?? 0));
    this.conv1 = this.registerModule('conv1', new ConvBlock(f1, f1, convDims[1], dropout[1] ?? 0));
    this.down1 = this.registerModule('down1', new DownSample(f0, f1, downDims[0], convDims[1]));
    // The second down-sampling always uses a 3x3x3 conv, whatever the mode.
    this.down2 = this.registerModule('down2', new DownSample(f1, f2, downDims[1], 3));
  }

  forward(x: Tensor): EmbeddingOutput {
    return tidy(() => {
      const x0 = consume(tap(this.proj, this.proj.forward(x)), (t) => tap(this.conv0, this.conv0.forward(t)));
      const x1 = consume(tap(this.down1, this.down1.forward(x0)), (t) => tap(this.conv1, this.conv1.forward(t)));
      const x2 = tap(this.down2, this.down2.forward(x1));
      return { x0, x1, x2 };
    });
  }
}

export class PredictionHead extends Module {
  readonly up1: UpCatBlock;
  readonly up2: UpCatBlock;
  readonly conv0: ConvBlock;
  readonly conv1: ConvBlock;
  readonly outConv0: ConvLayer;
  readonly outConv1: ConvLayer;

  constructor(ft: readonly number[], convDims: readonly [ConvDim, ConvDim], downDims: readonly [ConvDim, ConvDim], dropout: readonly number[], classNum: number) {
    super();
    const [f0, f1, f2] = ft as [number, number, number];
    this.up1 = this.registerModule('up1', new UpCatBlock(f0, f1, downDims[0], convDims[0]));
    this.up2 = this.registerModule('up2', new UpCatBlock(f1, f2, downDims[1], convDims[1]));
    this.conv0 = this.registerModule('conv0', new ConvBlock(f0, f0, convDims[0], dropout[0] ?? 0));
    this.conv1 = this.registerModule('conv1', new ConvBlock(f1, f1, convDims[1], dropout[1] ?? 0));
    this.outConv0 = this.registerModule('out_conv0', new ConvLayer(f0, classNum));
    this.outConv1 = this.registerModule('out_conv1', new ConvLayer(f1, classNum));
  }

  /**
   * Decode from the level-2 map. Returns [out0] or, with multiscale, [out0, out1] (the pyramid adds
   * out2 and out3). The inputs are not disposed.
   */
  forward(x0: Tensor, x1: Tensor, xd2: Tensor, multiscale: boolean): Tensor[] {
    return tidy(() => {
      const xd1 = consume(tap(this.up2, this.up2.forward(x1, xd2)), (t) => tap(this.conv1, this.conv1.forward(t)));
      const xd0 = consume(tap(this.up1, this.up1.forward(x0, xd1)), (t) => tap(this.conv0, this.conv0.forward(t)));
      const out0 = consume(xd0, (t) => this.outConv0.forward(t));
      if (!multiscale) { xd1.dispose(); return [out0]; }
      return [out0, consume(xd1, (t) => this.outConv1.forward(t))];
    });
  }
}
