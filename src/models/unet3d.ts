/**
 * PyMIC's UNet3D (v0.5 module names: encoder.* / decoder.*), the 3D U-Net baseline of the VolF
 * experiments, plus the key mapping from PyMIC v0.4 checkpoints (flat names) to v0.5.
 *
 * ConvBlock = [Conv3d k3, Norm, LeakyReLU(0.01), Dropout, Conv3d k3, Norm, LeakyReLU]; down blocks
 * are MaxPool3d(2) + ConvBlock; up blocks are 1x1 conv + x2 up-sampling (or a transposed conv),
 * concatenation [skip, up] and a ConvBlock. Shape: [N, C, D, H, W] -> [N, classNum, D, H, W] with
 * D, H, W multiples of 16 (8 with four levels).
 */
import type { Tensor } from '../engine/tensor.js';
import { cat } from '../engine/creation.js';
import { tidy } from '../engine/scope.js';
import { Module } from '../nn/module.js';
import { BatchNorm3d, InstanceNorm3d } from '../nn/layers/norm.js';
import { Dropout, LeakyReLU } from '../nn/layers/activation.js';
import { Conv3d, ConvTranspose3d } from '../nn/layers/conv.js';
import { MaxPool3d } from '../nn/layers/pool.js';
import { Sequential, type UnaryModule } from '../nn/layers/container.js';
import { ConfigError } from '../util/errors.js';
import type { ForwardOptions, SegmentationNetwork } from './types.js';
import { registerTapNames, tap, withTaps } from './taps.js';
import { consume } from './consume.js';
import { Upsample, initConvWeights, parseInit, checkIntList, checkPosInt, checkProb, checkDivisibleInput, type WeightInit } from './common.js';

export type UpMode = 'transconv' | 'nearest' | 'trilinear';
export type NormType = 'batch_norm' | 'instance_norm';

export interface UNet3DOptions {
  inChannels: number;
  classNum: number;
  /** 4 or 5 levels; default [32, 64, 128, 256, 512]. */
  featureChns?: readonly number[];
  /** Per level; default [0, 0, 0.2, 0.3, 0.4] (PyMIC's default; the VolF demos use [0, 0, 0.2, 0.2, 0.2]). */
  dropout?: readonly number[];
  /** 0 / 'transconv', 1 / 'nearest', 2 / 'trilinear' (default). */
  upMode?: UpMode | 0 | 1 | 2;
  /** Default 'batch_norm'. (PyMIC always uses BN in encoder.down4, whatever this says.) */
  normType?: NormType;
  /** Also return level 1-3 logits (deep supervision); default false. */
  multiscalePred?: boolean;
  /** Default 'he' (kaiming_normal_(a=0.01), bias 0). */
  initialization?: WeightInit;
}

export interface ResolvedUNet3DOptions {
  inChannels: number; classNum: number; featureChns: number[]; dropout: number[]; upMode: UpMode; normType: NormType;
  multiscalePred: boolean; initialization: WeightInit;
}

const UP_MODES: readonly UpMode[] = ['transconv', 'nearest', 'trilinear'];

export function resolveUNet3DOptions(o: UNet3DOptions, prefix = ''): ResolvedUNet3DOptions {
  const k = (n: string): string => `${prefix}${n}`;
  const featureChns = checkIntList(k('featureChns'), o.featureChns ?? [32, 64, 128, 256, 512], [4, 5], 1);
  const dropout = o.dropout ?? [0, 0, 0.2, 0.3, 0.4].slice(0, featureChns.length);
  if (!Array.isArray(dropout) || dropout.length !== featureChns.length) {
    throw new ConfigError(k('dropout'), `must be a list of ${featureChns.length} probabilities (one per level), got ${JSON.stringify(o.dropout)}`);
  }
  dropout.forEach((p, i) => checkProb(`${k('dropout')}[${i}]`, p));
  const um = o.upMode ?? 2;
  const upMode = typeof um === 'number' ? UP_MODES[um] : (UP_MODES as readonly string[]).includes(String(um).toLowerCase()) ? String(um).toLowerCase() as UpMode : undefined;
  if (upMode === undefined) throw new ConfigError(k('upMode'), `must be 0/'transconv', 1/'nearest' or 2/'trilinear', got ${JSON.stringify(um)}`);
  const normType = o.normType ?? 'batch_norm';
  if (normType !== 'batch_norm' && normType !== 'instance_norm') throw new ConfigError(k('normType'), `must be 'batch_norm' or 'instance_norm', got ${JSON.stringify(normType)}`);
  const multiscalePred = o.multiscalePred ?? false;
  if (typeof multiscalePred !== 'boolean') throw new ConfigError(k('multiscalePred'), `must be true or false, got ${JSON.stringify(multiscalePred)}`);
  return {
    inChannels: checkPosInt(k('inChannels'), o.inChannels), classNum: checkPosInt(k('classNum'), o.classNum), featureChns, dropout: [...dropout],
    upMode, normType, multiscalePred, initialization: parseInit(k('initialization'), o.initialization ?? 'he'),
  };
}

function norm(c: number, t: NormType): UnaryModule {
  return t === 'batch_norm' ? new BatchNorm3d(c) : new InstanceNorm3d(c, { affine: true });
}

export class UNetConvBlock extends Module {
  readonly convConv: Sequential;
  constructor(inC: number, outC: number, dropout: number, normType: NormType) {
    super();
    this.convConv = this.registerModule('conv_conv', new Sequential(
      new Conv3d(inC, outC, 3, { padding: 1 }), norm(outC, normType), new LeakyReLU(), new Dropout(dropout),
      new Conv3d(outC, outC, 3, { padding: 1 }), norm(outC, normType), new LeakyReLU(),
    ));
  }
  forward(x: Tensor): Tensor { return this.convConv.forward(x); }
}

export class UNetDownBlock extends Module {
  readonly maxpoolConv: Sequential;
  constructor(inC: number, outC: number, dropout: number, normType: NormType) {
    super();
    this.maxpoolConv = this.registerModule('maxpool_conv', new Sequential(new MaxPool3d(2), new UNetConvBlock(inC, outC, dropout, normType)));
  }
  forward(x: Tensor): Tensor { return this.maxpoolConv.forward(x); }
}

export class UNetUpBlock extends Module {
  readonly conv1x1: Conv3d | null = null;
  readonly up: UnaryModule;
  readonly conv: UNetConvBlock;
  constructor(inC1: number, inC2: number, outC: number, dropout: number, upMode: UpMode, normType: NormType) {
    super();
    if (upMode === 'transconv') {
      this.up = this.registerModule('up', new ConvTranspose3d(inC1, inC2, 2, { stride: 2 }));
    } else {
      this.conv1x1 = this.registerModule('conv1x1', new Conv3d(inC1, inC2, 1));
      this.up = this.registerModule('up', new Upsample([2, 2, 2], upMode, true));
    }
    this.conv = this.registerModule('conv', new UNetConvBlock(2 * inC2, outC, dropout, normType));
  }
  /** x1: coarse map, x2: skip map. */
  forward(x1: Tensor, x2: Tensor): Tensor {
    return tidy(() => {
      const c = this.conv1x1;
      const u = c === null ? this.up.forward(x1) : consume(c.forward(x1), (t) => this.up.forward(t));
      const y = consume(u, (t) => cat([x2, t], 1));
      return consume(y, (t) => this.conv.forward(t));
    });
  }
}

export class UNet3DEncoder extends Module {
  readonly blocks: (UNetConvBlock | UNetDownBlock)[] = [];
  constructor(o: ResolvedUNet3DOptions) {
    super();
    const f = o.featureChns, d = o.dropout;
    this.blocks.push(this.registerModule('in_conv', new UNetConvBlock(o.inChannels, f[0]!, d[0]!, o.normType)));
    for (let i = 1; i < f.length; i++) {
      // PyMIC ignores norm_type for down4 (always batch norm); reproduced so checkpoints match.
      this.blocks.push(this.registerModule(`down${i}`, new UNetDownBlock(f[i - 1]!, f[i]!, d[i]!, i === 4 ? 'batch_norm' : o.normType)));
    }
  }
  forward(x: Tensor): Tensor[] {
    return tidy(() => {
      const out: Tensor[] = [];
      let cur = x;
      for (const b of this.blocks) { cur = tap(b, b.forward(cur)); out.push(cur); }
      return out;
    });
  }
}

export class UNet3DDecoder extends Module {
  readonly ups: UNetUpBlock[] = [];
  readonly outConv: Conv3d;
  readonly auxConvs: Conv3d[] = [];
  constructor(o: ResolvedUNet3DOptions) {
    super();
    const f = o.featureChns, d = o.dropout, n = f.length;
    // up1 joins levels 4->3 (only with 5 levels), up2 3->2, up3 2->1, up4 1->0.
    for (let lvl = n - 1; lvl >= 1; lvl--) {
      const name = `up${5 - lvl}`;
      this.ups.push(this.registerModule(name, new UNetUpBlock(f[lvl]!, f[lvl - 1]!, f[lvl - 1]!, d[lvl - 1]!, o.upMode, o.normType)));
    }
    this.outConv = this.registerModule('out_conv', new Conv3d(f[0]!, o.classNum, 1));
    if (o.multiscalePred) for (let i = 1; i <= 3; i++) this.auxConvs.push(this.registerModule(`out_conv${i}`, new Conv3d(f[i]!, o.classNum, 1)));
  }
  /** feats: encoder outputs [x0, ..., x(n-1)]. Returns [out0] or [out0, out1, out2, out3]. */
  forward(feats: Tensor[], multiscale: boolean): Tensor[] {
    return tidy(() => {
      const n = feats.length;
      let cur = feats[n - 1]!;
      const dec: Tensor[] = [];   // decoder maps at levels n-2 ... 0
      for (let i = 0; i < this.ups.length; i++) {
        const up = this.ups[i]!;
        const next = tap(up, up.forward(cur, feats[n - 2 - i]!));
        // Without deep supervision only the newest decoder map is needed.
        if (!multiscale && i > 0) cur.dispose();
        cur = next;
        dec.push(cur);
      }
      const outs = [this.outConv.forward(cur)];
      if (multiscale && this.auxConvs.length === 3) {
        // aux i reads the decoder map at level i (level 3 is the bottom feature map with 4 levels).
        for (let i = 1; i <= 3; i++) {
          const src = n - 2 - i >= 0 ? dec[dec.length - 1 - i]! : feats[3]!;
          outs.push(this.auxConvs[i - 1]!.forward(src));
        }
      }
      return outs;
    });
  }
}

export class UNet3D extends Module implements SegmentationNetwork {
  readonly options: ResolvedUNet3DOptions;
  readonly encoder: UNet3DEncoder;
  readonly decoder: UNet3DDecoder;
  multiscalePred: boolean;
  readonly inputSize = null;

  constructor(options: UNet3DOptions) {
    super();
    this.options = resolveUNet3DOptions(options);
    this.multiscalePred = this.options.multiscalePred;
    this.encoder = this.registerModule('encoder', new UNet3DEncoder(this.options));
    this.decoder = this.registerModule('decoder', new UNet3DDecoder(this.options));
    initConvWeights(this, this.options.initialization);
    registerTapNames(this);
  }
  get inChannels(): number { return this.options.inChannels; }
  get classNum(): number { return this.options.classNum; }
  get sizeDivisor(): readonly number[] { const d = 2 ** (this.options.featureChns.length - 1); return [d, d, d]; }

  forward(x: Tensor, opts: ForwardOptions = {}): Tensor | Tensor[] {
    checkDivisibleInput('UNet3D', x, this.inChannels, this.sizeDivisor);
    const ms = this.multiscalePred && this.decoder.auxConvs.length === 3;
    const outs = withTaps(opts.taps, () => tidy(() => {
      const feats = this.encoder.forward(x);
      const o = this.decoder.forward(feats, ms);
      for (const f of feats) f.dispose();
      return o;
    }));
    return ms ? outs : outs[0]!;
  }
}

/**
 * Map a PyMIC v0.4 UNet3D key (flat: `in_conv.*`, `down1.*`, `up1.*`, `out_conv*`) to v0.5
 * (`encoder.*` / `decoder.*`). Keys already in v0.5 form are returned unchanged.
 */
export function unet3dKeyV04ToV05(key: string): string {
  if (/^(in_conv|down\d)\./.test(key)) return `encoder.${key}`;
  if (/^(up\d|out_conv\d?)\./.test(key)) return `decoder.${key}`;
  return key;
}

/** A state dict with v0.4 keys renamed to v0.5 (order kept); other keys pass through. */
export function convertUNet3DStateDictV04<T>(sd: ReadonlyMap<string, T>): Map<string, T> {
  const out = new Map<string, T>();
  for (const [k, v] of sd) out.set(unet3dKeyV04ToV05(k), v);
  return out;
}
