/**
 * MONAI SwinUNETR (v1, and v2 with `useV2`) and VoCo's backbone (`Swin` in VoCo's voco_head.py:
 * the same swinViT + encoder1-4, encoder10, pooled into one embedding per crop).
 *
 *   hidden = swinViT(x)                      5 maps at 1/2 .. 1/32, layer-normalised
 *   enc0 = encoder1(x), enc1..3 = encoder2..4(hidden[0..2]), dec4 = encoder10(hidden[4])
 *   SwinUNETR: decoder5(dec4, hidden[3]) -> decoder4(., enc3) -> ... -> decoder1(., enc0) -> out
 *   VoCo:      embedding = cat(avgpool(enc0), avgpool(enc1), avgpool(enc2), avgpool(enc3), avgpool(dec4))
 *
 * Inputs are misfm's [N, C, D, H, W]; with axisOrder 'xyz' the network runs on the transpose
 * (W, H, D) as the released weights expect, and logits come back in (D, H, W).
 */
import type { Tensor } from '../../engine/tensor.js';
import { cat } from '../../engine/creation.js';
import { tidy, dispose } from '../../engine/scope.js';
import * as F from '../../engine/functional.js';
import { Module } from '../../nn/module.js';
import { ShapeError, fmtShape } from '../../util/errors.js';
import type { ForwardOptions, SegmentationNetwork } from '../types.js';
import { registerTapNames, tap, withTaps } from '../taps.js';
import { consume } from '../consume.js';
import { SwinTransformer } from './swin.js';
import { UnetOutBlock, UnetrBasicBlock, UnetrUpBlock } from './blocks.js';
import { resolveSwinUNETROptions, type AxisOrder, type ResolvedSwinUNETROptions, type SwinUNETROptions } from './options.js';

/** Options of the encoder part (what VoCo pretrains). */
export type SwinEncoderOptions = Omit<ResolvedSwinUNETROptions, 'classNum' | 'multiscalePred'>;

/** The modules SwinUNETR and VoCo's backbone share, registered under MONAI's names on `owner`. */
interface EncoderParts {
  swinViT: SwinTransformer;
  encoder1: UnetrBasicBlock; encoder2: UnetrBasicBlock; encoder3: UnetrBasicBlock; encoder4: UnetrBasicBlock; encoder10: UnetrBasicBlock;
}

function buildEncoder(reg: <M extends Module>(name: string, m: M) => M, o: SwinEncoderOptions): EncoderParts {
  const fs = o.featureSize;
  return {
    swinViT: reg('swinViT', new SwinTransformer({
      inChans: o.inChannels, embedDim: fs, windowSize: o.windowSize, patchSize: 2, depths: o.depths, numHeads: o.numHeads, mlpRatio: 4,
      qkvBias: true, dropRate: o.dropRate, attnDropRate: o.attnDropRate, dropPathRate: o.dropPathRate, downsample: o.downsample, useV2: o.useV2,
    })),
    encoder1: reg('encoder1', new UnetrBasicBlock(o.inChannels, fs)),
    encoder2: reg('encoder2', new UnetrBasicBlock(fs, fs)),
    encoder3: reg('encoder3', new UnetrBasicBlock(2 * fs, 2 * fs)),
    encoder4: reg('encoder4', new UnetrBasicBlock(4 * fs, 4 * fs)),
    encoder10: reg('encoder10', new UnetrBasicBlock(16 * fs, 16 * fs)),
  };
}

/** Encoder outputs; `hidden3` is only kept when asked (SwinUNETR's decoder5 skip). */
interface Encoded { enc0: Tensor; enc1: Tensor; enc2: Tensor; enc3: Tensor; dec4: Tensor; hidden3: Tensor | null }

function runEncoder(p: EncoderParts, x: Tensor, normalize: boolean, keepHidden3: boolean): Encoded {
  const hidden = p.swinViT.forward(x, normalize);
  try {
    const enc0 = tap(p.encoder1, p.encoder1.forward(x));
    const enc1 = tap(p.encoder2, p.encoder2.forward(hidden[0]!));
    const enc2 = tap(p.encoder3, p.encoder3.forward(hidden[1]!));
    const enc3 = tap(p.encoder4, p.encoder4.forward(hidden[2]!));
    const dec4 = tap(p.encoder10, p.encoder10.forward(hidden[4]!));
    const hidden3 = keepHidden3 ? hidden[3]! : null;
    return { enc0, enc1, enc2, enc3, dec4, hidden3 };
  } finally {
    hidden.forEach((h, i) => { if (!(keepHidden3 && i === 3)) h.dispose(); });
  }
}

function checkInput(net: string, x: Tensor, inChannels: number): void {
  const s = x.shape;
  if (s.length !== 5 || s[1] !== inChannels) throw new ShapeError(net, `expected input [N, ${inChannels}, D, H, W], got ${fmtShape(s)}`);
  // MONAI's _check_input_size: five halvings (patch embedding + 4 mergings).
  if (s.slice(2).some((v) => v % 32 !== 0)) throw new ShapeError(net, `input spatial size ${fmtShape(s.slice(2))} must be a multiple of 32 on every axis; pad or crop the input`);
}

/** (D, H, W) <-> (W, H, D): the same permutation both ways. */
function toNetAxes(x: Tensor, order: AxisOrder): Tensor {
  return order === 'xyz' ? x.permute([0, 1, 4, 3, 2]).contiguous() : x.view(x.shape);
}

/** MONAI SwinUNETR with MONAI's state-dict names. */
export class SwinUNETR extends Module implements SegmentationNetwork {
  readonly options: ResolvedSwinUNETROptions;
  readonly inChannels: number;
  readonly classNum: number;
  readonly inputSize = null;
  readonly sizeDivisor = [32, 32, 32] as const;
  /** SwinUNETR has no deep-supervision heads; always false. */
  multiscalePred = false;
  readonly parts: EncoderParts;
  readonly decoder5: UnetrUpBlock;
  readonly decoder4: UnetrUpBlock;
  readonly decoder3: UnetrUpBlock;
  readonly decoder2: UnetrUpBlock;
  readonly decoder1: UnetrUpBlock;
  readonly out: UnetOutBlock;

  constructor(opts: SwinUNETROptions | ResolvedSwinUNETROptions) {
    super();
    const o = resolveSwinUNETROptions(opts);
    this.options = o;
    this.inChannels = o.inChannels;
    this.classNum = o.classNum;
    const fs = o.featureSize;
    this.parts = buildEncoder((n, m) => this.registerModule(n, m), o);
    this.decoder5 = this.registerModule('decoder5', new UnetrUpBlock(16 * fs, 8 * fs));
    this.decoder4 = this.registerModule('decoder4', new UnetrUpBlock(8 * fs, 4 * fs));
    this.decoder3 = this.registerModule('decoder3', new UnetrUpBlock(4 * fs, 2 * fs));
    this.decoder2 = this.registerModule('decoder2', new UnetrUpBlock(2 * fs, fs));
    this.decoder1 = this.registerModule('decoder1', new UnetrUpBlock(fs, fs));
    this.out = this.registerModule('out', new UnetOutBlock(fs, o.classNum));
    registerTapNames(this);
  }

  /** [N, C, D, H, W] -> logits [N, classNum, D, H, W]. */
  forward(x: Tensor, opts: ForwardOptions = {}): Tensor {
    checkInput('SwinUNETR', x, this.inChannels);
    return withTaps(opts.taps, () => {
      const xin = tidy(() => toNetAxes(x, this.options.axisOrder));
      let e: Encoded;
      try { e = runEncoder(this.parts, xin, this.options.normalize, true); } finally { xin.dispose(); }
      let d = consume(e.dec4, (t) => tap(this.decoder5, this.decoder5.forward(t, e.hidden3!)));
      e.hidden3!.dispose();
      d = consume(d, (t) => tap(this.decoder4, this.decoder4.forward(t, e.enc3)));
      e.enc3.dispose();
      d = consume(d, (t) => tap(this.decoder3, this.decoder3.forward(t, e.enc2)));
      e.enc2.dispose();
      d = consume(d, (t) => tap(this.decoder2, this.decoder2.forward(t, e.enc1)));
      e.enc1.dispose();
      d = consume(d, (t) => tap(this.decoder1, this.decoder1.forward(t, e.enc0)));
      e.enc0.dispose();
      d = consume(d, (t) => this.out.forward(t));
      return consume(d, (t) => toNetAxes(t, this.options.axisOrder));
    });
  }
}

/**
 * VoCo's backbone: SwinUNETR's encoder (keys swinViT.*, encoder1-4.*, encoder10.*, i.e. the 145
 * tensors of the released VoCo checkpoints at feature size 48) and the pooled embedding.
 */
export class SwinVoCoBackbone extends Module {
  readonly options: SwinEncoderOptions;
  readonly parts: EncoderParts;
  constructor(opts: Omit<SwinUNETROptions, 'classNum' | 'multiscalePred'>) {
    super();
    const { classNum: _c, multiscalePred: _m, ...o } = resolveSwinUNETROptions({ ...opts, classNum: 1 });
    this.options = o;
    this.parts = buildEncoder((n, m) => this.registerModule(n, m), o);
    registerTapNames(this);
  }
  /** Width of the embedding: fs·(1 + 1 + 2 + 4 + 16) = 24·fs. */
  get embeddingDim(): number { return 24 * this.options.featureSize; }

  /** [N, C, D, H, W] -> [N, 24·fs]: adaptive-average-pooled enc0, enc1, enc2, enc3, dec4, concatenated. */
  embed(x: Tensor, opts: ForwardOptions = {}): Tensor {
    checkInput('SwinVoCoBackbone', x, this.options.inChannels);
    if (x.shape.slice(2).some((v) => v < 64)) {
      throw new ShapeError('SwinVoCoBackbone', `input spatial size ${fmtShape(x.shape.slice(2))} is below 64: encoder10's instance norm would see a single voxel`);
    }
    return withTaps(opts.taps, () => {
      const xin = tidy(() => toNetAxes(x, this.options.axisOrder));
      let e: Encoded;
      try { e = runEncoder(this.parts, xin, this.options.normalize, false); } finally { xin.dispose(); }
      const maps = [e.enc0, e.enc1, e.enc2, e.enc3, e.dec4];
      try {
        return tidy(() => cat(maps.map((m) => F.adaptiveAvgPool3d(m, 1).flatten(1)), 1));
      } finally {
        dispose(maps);
      }
    });
  }
}
