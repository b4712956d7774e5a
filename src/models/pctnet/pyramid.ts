/**
 * The PCT blocks (parallel convolution + Swin branches, summed) and the pyramid of them that forms
 * the middle of PCT-Net (levels 2-4, encoder e2/e3/e4 and decoder d3/d2).
 */
import type { Tensor } from '../../engine/tensor.js';
import { tidy } from '../../engine/scope.js';
import { Module } from '../../nn/module.js';
import { LayerNorm } from '../../nn/layers/norm.js';
import { Dropout } from '../../nn/layers/activation.js';
import { tap } from '../taps.js';
import { consume } from '../consume.js';
import { ConvBlock, ConvLayer, DownSample, UpCatBlock } from './blocks.js';
import { BasicLayer, type Res3 } from './swin.js';

/** Swin blocks use the constructor default of the reference, never overridden by PCT-Net. */
export const PCT_DROP_PATH = 0.2;

export interface ConvTransOptions { depth: number; numHeads: number; windowSize: number; drop: number; attnDrop: number; }

/** A PCT block: ConvBlock(x) + Swin(x). `norm_layer` exists (and is in checkpoints) but is unused. */
export class ConvTransBlock extends Module {
  readonly conv: ConvBlock;
  readonly trans: BasicLayer;
  readonly normLayer: LayerNorm;
  readonly posDrop: Dropout;

  constructor(readonly chns: number, readonly resolution: Res3, o: ConvTransOptions) {
    super();
    this.conv = this.registerModule('conv', new ConvBlock(chns, chns, 3, o.drop));
    this.trans = this.registerModule('trans', new BasicLayer(chns, resolution, {
      depth: o.depth, numHeads: o.numHeads, windowSize: o.windowSize, mlpRatio: 4, drop: o.drop, attnDrop: o.attnDrop, dropPath: PCT_DROP_PATH,
    }));
    this.normLayer = this.registerModule('norm_layer', new LayerNorm(chns));
    this.posDrop = this.registerModule('pos_drop', new Dropout(o.drop));
  }

  forward(x: Tensor): Tensor {
    const [b, c, s, h, w] = x.shape as [number, number, number, number, number];
    const x1 = tap(this.conv, this.conv.forward(x));
    try {
      let t = tidy(() => x.flatten(2).transpose(1, 2).contiguous());
      t = consume(t, (u) => this.posDrop.forward(u));
      t = consume(t, (u) => this.trans.forward(u));
      const x2 = consume(t, (u) => u.view([b, s, h, w, c]).permute([0, 4, 1, 2, 3]).contiguous());
      try { return x1.add(x2); } finally { x2.dispose(); }
    } finally {
      x1.dispose();
    }
  }
}

export interface PyramidOptions {
  /** Level-2 resolution (input size / stem scale). */
  resolution: Res3;
  /** Channels at levels 2, 3, 4. */
  chns: readonly [number, number, number];
  dropout: readonly [number, number, number];
  depths: readonly [number, number, number];
  numHeads: readonly [number, number, number];
  windowSizes: readonly [number, number, number];
  classNum: number;
}

/** Pyramid outputs: the level-2 decoder map, and (multiscale) level-2/3 logits. */
export interface PyramidOutput { xd2: Tensor; out2: Tensor | null; out3: Tensor | null; }

export class PyramidConvTrans extends Module {
  readonly down3: DownSample;
  readonly down4: DownSample;
  readonly up3: UpCatBlock;
  readonly up4: UpCatBlock;
  readonly convtransE2: ConvTransBlock;
  readonly convtransD2: ConvTransBlock;
  readonly convtransE3: ConvTransBlock;
  readonly convtransD3: ConvTransBlock;
  readonly convtransE4: ConvTransBlock;
  readonly outConv2: ConvLayer;
  readonly outConv3: ConvLayer;
  /** Resolutions of levels 2, 3, 4. */
  readonly resolutions: readonly [Res3, Res3, Res3];

  constructor(o: PyramidOptions) {
    super();
    const [c2, c3, c4] = o.chns;
    const r2 = o.resolution;
    const r3: Res3 = [Math.floor(r2[0] / 2), Math.floor(r2[1] / 2), Math.floor(r2[2] / 2)];
    const r4: Res3 = [Math.floor(r3[0] / 2), Math.floor(r3[1] / 2), Math.floor(r3[2] / 2)];
    this.resolutions = [r2, r3, r4];
    const level = (i: 0 | 1 | 2): ConvTransOptions => ({
      depth: o.depths[i], numHeads: o.numHeads[i], windowSize: o.windowSizes[i], drop: o.dropout[i], attnDrop: o.dropout[i],
    });
    this.down3 = this.registerModule('down3', new DownSample(c2, c3, 3, 3));
    this.down4 = this.registerModule('down4', new DownSample(c3, c4, 3, 3));
    this.up3 = this.registerModule('up3', new UpCatBlock(c2, c3, 3, 3));
    this.up4 = this.registerModule('up4', new UpCatBlock(c3, c4, 3, 3));
    this.convtransE2 = this.registerModule('convtrans_e2', new ConvTransBlock(c2, r2, level(0)));
    this.convtransD2 = this.registerModule('convtrans_d2', new ConvTransBlock(c2, r2, level(0)));
    this.convtransE3 = this.registerModule('convtrans_e3', new ConvTransBlock(c3, r3, level(1)));
    this.convtransD3 = this.registerModule('convtrans_d3', new ConvTransBlock(c3, r3, level(1)));
    this.convtransE4 = this.registerModule('convtrans_e4', new ConvTransBlock(c4, r4, level(2)));
    this.outConv2 = this.registerModule('out_conv2', new ConvLayer(c2, o.classNum));
    this.outConv3 = this.registerModule('out_conv3', new ConvLayer(c3, o.classNum));
  }

  forward(x: Tensor, multiscale: boolean): PyramidOutput {
    return tidy(() => {
      const run = (m: { forward(t: Tensor): Tensor } & Module, t: Tensor): Tensor => tap(m, m.forward(t));
      const x2 = run(this.convtransE2, x);
      const x3 = consume(run(this.down3, x2), (t) => run(this.convtransE3, t));
      const x4 = consume(run(this.down4, x3), (t) => run(this.convtransE4, t));
      const u4 = tap(this.up4, this.up4.forward(x3, x4));
      x4.dispose(); x3.dispose();
      const xd3 = consume(u4, (t) => run(this.convtransD3, t));
      const u3 = tap(this.up3, this.up3.forward(x2, xd3));
      x2.dispose();
      const xd2 = consume(u3, (t) => run(this.convtransD2, t));
      const out2 = multiscale ? this.outConv2.forward(xd2) : null;
      const out3 = multiscale ? this.outConv3.forward(xd3) : null;
      xd3.dispose();
      return { xd2, out2, out3 };
    });
  }
}
