/**
 * MONAI's UNETR convolution blocks (monai/networks/blocks/{dynunet_block,unetr_block}.py) with
 * their state-dict names: a MONAI `Convolution` holding one `conv`, so keys read
 * `encoder1.layer.conv1.conv.weight`, `decoder5.transp_conv.conv.weight`, `out.conv.conv.weight`.
 * Norms are InstanceNorm3d(affine=False) and have no entries; activations LeakyReLU(0.01).
 */
import type { Tensor } from '../../engine/tensor.js';
import { cat } from '../../engine/creation.js';
import { tidy } from '../../engine/scope.js';
import { Module } from '../../nn/module.js';
import { Conv3d, ConvTranspose3d } from '../../nn/layers/conv.js';
import { InstanceNorm3d } from '../../nn/layers/norm.js';
import { LeakyReLU } from '../../nn/layers/activation.js';
import { consume } from '../consume.js';

/** MONAI Convolution(conv_only): a container whose only child is `conv`. */
export class MonaiConv extends Module {
  readonly conv: Conv3d | ConvTranspose3d;
  constructor(inC: number, outC: number, kernel: number, o: { stride?: number; bias?: boolean; transposed?: boolean } = {}) {
    super();
    const stride = o.stride ?? 1;
    this.conv = this.registerModule('conv', o.transposed === true
      ? new ConvTranspose3d(inC, outC, kernel, { stride, bias: o.bias ?? false })
      // MONAI's same padding for odd kernels and stride 1: (k - s + 1) / 2.
      : new Conv3d(inC, outC, kernel, { stride, padding: Math.floor((kernel - stride + 1) / 2), bias: o.bias ?? false }));
  }
  forward(x: Tensor): Tensor { return this.conv.forward(x); }
}

/**
 * UnetResBlock: conv1 -> IN -> LeakyReLU -> conv2 -> IN, plus the input (through conv3 + IN when
 * the channel count changes), then LeakyReLU. Kernel 3, stride 1, no conv biases.
 */
export class UnetResBlock extends Module {
  readonly conv1: MonaiConv;
  readonly conv2: MonaiConv;
  readonly conv3: MonaiConv | null = null;
  readonly lrelu: LeakyReLU;
  readonly norm1: InstanceNorm3d;
  readonly norm2: InstanceNorm3d;
  readonly norm3: InstanceNorm3d | null = null;
  constructor(inC: number, outC: number) {
    super();
    this.conv1 = this.registerModule('conv1', new MonaiConv(inC, outC, 3));
    this.conv2 = this.registerModule('conv2', new MonaiConv(outC, outC, 3));
    this.lrelu = this.registerModule('lrelu', new LeakyReLU(0.01));
    this.norm1 = this.registerModule('norm1', new InstanceNorm3d(outC));
    this.norm2 = this.registerModule('norm2', new InstanceNorm3d(outC));
    if (inC !== outC) {
      this.conv3 = this.registerModule('conv3', new MonaiConv(inC, outC, 1));
      this.norm3 = this.registerModule('norm3', new InstanceNorm3d(outC));
    }
  }
  forward(x: Tensor): Tensor {
    let out = this.conv1.forward(x);
    out = consume(out, (t) => this.lrelu.forward(this.norm1.forward(t)));
    out = consume(out, (t) => this.norm2.forward(this.conv2.forward(t)));
    const c3 = this.conv3, n3 = this.norm3;
    out = consume(out, (t) => (c3 !== null && n3 !== null ? t.add(tidy(() => n3.forward(c3.forward(x)))) : t.add(x)));
    return consume(out, (t) => this.lrelu.forward(t));
  }
}

/** UnetrBasicBlock(res_block=True): one UnetResBlock under `layer`. */
export class UnetrBasicBlock extends Module {
  readonly layer: UnetResBlock;
  constructor(inC: number, outC: number) {
    super();
    this.layer = this.registerModule('layer', new UnetResBlock(inC, outC));
  }
  forward(x: Tensor): Tensor { return this.layer.forward(x); }
}

/** UnetrUpBlock: transposed conv (k = s = 2, no bias), concatenation [up, skip], UnetResBlock(2·out -> out). */
export class UnetrUpBlock extends Module {
  readonly transpConv: MonaiConv;
  readonly convBlock: UnetResBlock;
  constructor(inC: number, outC: number) {
    super();
    this.transpConv = this.registerModule('transp_conv', new MonaiConv(inC, outC, 2, { stride: 2, transposed: true }));
    this.convBlock = this.registerModule('conv_block', new UnetResBlock(2 * outC, outC));
  }
  forward(x: Tensor, skip: Tensor): Tensor {
    const up = this.transpConv.forward(x);
    const joined = consume(up, (u) => cat([u, skip], 1));
    return consume(joined, (j) => this.convBlock.forward(j));
  }
}

/** UnetOutBlock: 1x1x1 conv with bias. */
export class UnetOutBlock extends Module {
  readonly conv: MonaiConv;
  constructor(inC: number, outC: number) {
    super();
    this.conv = this.registerModule('conv', new MonaiConv(inC, outC, 1, { bias: true }));
  }
  forward(x: Tensor): Tensor { return this.conv.forward(x); }
}
