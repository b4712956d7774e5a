/**
 * FMUNet (MIS-FM's second released backbone; PyMIC's FMUNetV3): a U-Net of residual
 * pre-activation blocks with instance norm, stride-2 conv down-sampling and 1x1 conv + trilinear
 * up-sampling, with four deep-supervision heads.
 *
 * ResConv: `depth` times x = [IN(affine) -> LeakyReLU -> Dropout -> Conv](x) + x.
 * res_mode picks in-plane ([1,3,3] kernel, [1,2,2] stride) operations for levels 0/1:
 * 0: both 3D, 1: level 0 in-plane, 2: levels 0 and 1 in-plane.
 * Shape: [N, C, D, H, W] -> [N, classNum, D, H, W]; D, H, W multiples of sizeDivisor.
 */
import type { Tensor } from '../engine/tensor.js';
import { cat } from '../engine/creation.js';
import { tidy } from '../engine/scope.js';
import { Module } from '../nn/module.js';
import { InstanceNorm3d } from '../nn/layers/norm.js';
import { Dropout, LeakyReLU } from '../nn/layers/activation.js';
import { Conv3d } from '../nn/layers/conv.js';
import { Sequential, ModuleList } from '../nn/layers/container.js';
import { ConfigError } from '../util/errors.js';
import type { ForwardOptions, SegmentationNetwork } from './types.js';
import { registerTapNames, tap, withTaps } from './taps.js';
import { consume } from './consume.js';
import { Upsample, initConvWeights, parseInit, checkIntList, checkPosInt, checkProb, checkDivisibleInput, type WeightInit } from './common.js';

type Dim = 2 | 3;
const kernel = (d: Dim): number[] => (d === 2 ? [1, 3, 3] : [3, 3, 3]);
const pad = (d: Dim): number[] => (d === 2 ? [0, 1, 1] : [1, 1, 1]);
const factor = (d: Dim): number[] => (d === 2 ? [1, 2, 2] : [2, 2, 2]);
/** Conv dims of levels 0 and 1 per res_mode. */
const LEVEL_DIMS: Readonly<Record<0 | 1 | 2, [Dim, Dim]>> = { 0: [3, 3], 1: [2, 3], 2: [2, 2] };

/** Input sizes (D, H, W) must be multiples of this, for a resolution mode (known without building the network). */
export function fmunetSizeDivisor(resMode: 0 | 1 | 2): [number, number, number] {
  const [d0, d1] = LEVEL_DIMS[resMode];
  return [(d0 === 3 ? 2 : 1) * (d1 === 3 ? 2 : 1) * 4, 16, 16];
}

export interface FMUNetOptions {
  inChannels: number;
  classNum: number;
  /** Default [32, 64, 128, 256, 512]. */
  featureChns?: readonly number[];
  /** Dropout of levels 2-4 (levels 0-1 use none); default 0.2. */
  dropout?: number;
  /** 0 isotropic (default), 1 level 0 in-plane, 2 levels 0-1 in-plane. */
  resMode?: 0 | 1 | 2;
  /** Residual units per block; default 2. */
  depth?: number;
  /** Return 4 logits (deep supervision); default true as in PyMIC. */
  multiscalePred?: boolean;
  initialization?: WeightInit;
}

export interface ResolvedFMUNetOptions {
  inChannels: number; classNum: number; featureChns: number[]; dropout: number; resMode: 0 | 1 | 2; depth: number;
  multiscalePred: boolean; initialization: WeightInit;
}

export function resolveFMUNetOptions(o: FMUNetOptions, prefix = ''): ResolvedFMUNetOptions {
  const k = (n: string): string => `${prefix}${n}`;
  const resMode = o.resMode ?? 0;
  if (resMode !== 0 && resMode !== 1 && resMode !== 2) throw new ConfigError(k('resMode'), `must be 0, 1 or 2, got ${JSON.stringify(resMode)}`);
  const multiscalePred = o.multiscalePred ?? true;
  if (typeof multiscalePred !== 'boolean') throw new ConfigError(k('multiscalePred'), `must be true or false, got ${JSON.stringify(multiscalePred)}`);
  return {
    inChannels: checkPosInt(k('inChannels'), o.inChannels), classNum: checkPosInt(k('classNum'), o.classNum),
    featureChns: checkIntList(k('featureChns'), o.featureChns ?? [32, 64, 128, 256, 512], [5], 1),
    dropout: checkProb(k('dropout'), o.dropout ?? 0.2), resMode, depth: checkPosInt(k('depth'), o.depth ?? 2),
    multiscalePred, initialization: parseInit(k('initialization'), o.initialization ?? 'he'),
  };
}

const preAct = (inC: number, outC: number, d: Dim, o: { stride?: number[]; dropout?: number } = {}): Sequential => new Sequential(
  new InstanceNorm3d(inC, { affine: true }), new LeakyReLU(),
  ...(o.dropout === undefined ? [] : [new Dropout(o.dropout)]),
  new Conv3d(inC, outC, kernel(d), { padding: pad(d), stride: o.stride ?? 1 }),
);

export class ResConv extends Module {
  readonly convList: ModuleList<Sequential>;
  constructor(chns: number, dim: Dim, dropout: number, depth: number) {
    super();
    const units: Sequential[] = [];
    for (let i = 0; i < depth; i++) units.push(preAct(chns, chns, dim, { dropout }));
    this.convList = this.registerModule('conv_list', new ModuleList(units));
  }
  forward(x: Tensor): Tensor {
    let cur = x;
    for (const unit of this.convList) {
      const next = tidy(() => unit.forward(cur).add(cur));
      if (cur !== x) cur.dispose();
      cur = next;
    }
    return cur === x ? x.view(x.shape) : cur;
  }
}

export class FMDownSample extends Module {
  readonly down: Sequential;
  constructor(inC: number, outC: number, dim: Dim) {
    super();
    this.down = this.registerModule('down', preAct(inC, outC, dim, { stride: factor(dim) }));
  }
  forward(x: Tensor): Tensor { return this.down.forward(x); }
}

export class UpCatConv extends Module {
  readonly up: Sequential;
  readonly conv: Sequential;
  /** inC1: coarse channels, inC2: skip channels. */
  constructor(inC1: number, inC2: number, outC: number, dim: Dim) {
    super();
    this.up = this.registerModule('up', new Sequential(
      new InstanceNorm3d(inC1, { affine: true }), new LeakyReLU(), new Conv3d(inC1, inC2, 1), new Upsample(factor(dim), 'trilinear', true),
    ));
    this.conv = this.registerModule('conv', preAct(2 * inC2, outC, dim));
  }
  /** xL: the low-resolution map, xH: the high-resolution skip map. */
  forward(xL: Tensor, xH: Tensor): Tensor {
    return tidy(() => consume(consume(this.up.forward(xL), (u) => cat([xH, u], 1)), (y) => this.conv.forward(y)));
  }
}

export class FMUNetEncoder extends Module {
  readonly enConvs: ResConv[] = [];
  readonly downs: FMDownSample[] = [];
  constructor(o: ResolvedFMUNetOptions) {
    super();
    const f = o.featureChns, [d0, d1] = LEVEL_DIMS[o.resMode];
    const dims: Dim[] = [d0, d1, 3, 3, 3];
    for (let i = 0; i < 5; i++) this.enConvs.push(this.registerModule(`en_conv${i}`, new ResConv(f[i]!, dims[i]!, i < 2 ? 0 : o.dropout, o.depth)));
    for (let i = 0; i < 4; i++) this.downs.push(this.registerModule(`down${i}`, new FMDownSample(f[i]!, f[i + 1]!, dims[i]!)));
  }
  forward(x: Tensor): Tensor[] {
    return tidy(() => {
      const out: Tensor[] = [];
      let cur = tap(this.enConvs[0]!, this.enConvs[0]!.forward(x));
      out.push(cur);
      for (let i = 1; i < 5; i++) {
        cur = consume(tap(this.downs[i - 1]!, this.downs[i - 1]!.forward(cur)), (t) => tap(this.enConvs[i]!, this.enConvs[i]!.forward(t)));
        out.push(cur);
      }
      return out;
    });
  }
}

export class FMUNetDecoder extends Module {
  readonly upcats: UpCatConv[] = [];
  readonly deConvs: ResConv[] = [];
  constructor(o: ResolvedFMUNetOptions) {
    super();
    const f = o.featureChns, [d0, d1] = LEVEL_DIMS[o.resMode];
    const dims: Dim[] = [d0, d1, 3, 3, 3];
    for (let i = 0; i < 4; i++) this.upcats.push(this.registerModule(`upcat${i}`, new UpCatConv(f[i + 1]!, f[i]!, f[i]!, dims[i]!)));
    for (let i = 0; i < 5; i++) this.deConvs.push(this.registerModule(`de_conv${i}`, new ResConv(f[i]!, dims[i]!, i < 2 ? 0 : o.dropout, o.depth)));
  }
  /** Returns the decoder maps [x0, x1, x2, x3] (fine to coarse). */
  forward(feats: Tensor[]): Tensor[] {
    return tidy(() => {
      const out: Tensor[] = [];
      let cur = tap(this.deConvs[4]!, this.deConvs[4]!.forward(feats[4]!));
      for (let i = 3; i >= 0; i--) {
        const next = consume(tap(this.upcats[i]!, this.upcats[i]!.forward(cur, feats[i]!)), (t) => tap(this.deConvs[i]!, this.deConvs[i]!.forward(t)));
        if (i === 3) cur.dispose();
        cur = next;
        out.unshift(cur);
      }
      return out;
    });
  }
}

export class FMUNet extends Module implements SegmentationNetwork {
  readonly options: ResolvedFMUNetOptions;
  readonly project: Conv3d;
  readonly encoder: FMUNetEncoder;
  readonly decoder: FMUNetDecoder;
  readonly outLayers: ModuleList<Sequential>;
  multiscalePred: boolean;
  readonly inputSize = null;

  constructor(options: FMUNetOptions) {
    super();
    const o = resolveFMUNetOptions(options);
    this.options = o;
    this.multiscalePred = o.multiscalePred;
    const [d0, d1] = LEVEL_DIMS[o.resMode];
    const f = o.featureChns;
    this.project = this.registerModule('project', new Conv3d(o.inChannels, f[0]!, kernel(d0), { padding: pad(d0) }));
    this.encoder = this.registerModule('encoder', new FMUNetEncoder(o));
    this.decoder = this.registerModule('decoder', new FMUNetDecoder(o));
    const dims: Dim[] = [d0, d1, 3, 3];
    this.outLayers = this.registerModule('out_layers', new ModuleList(dims.map((d, i) => preAct(f[i]!, o.classNum, d))));
    initConvWeights(this, o.initialization);
    registerTapNames(this);
  }
  get inChannels(): number { return this.options.inChannels; }
  get classNum(): number { return this.options.classNum; }
  get sizeDivisor(): readonly number[] { return fmunetSizeDivisor(this.options.resMode); }

  forward(x: Tensor, opts: ForwardOptions = {}): Tensor | Tensor[] {
    checkDivisibleInput('FMUNet', x, this.inChannels, this.sizeDivisor);
    const ms = this.multiscalePred;
    const outs = withTaps(opts.taps, () => tidy(() => {
      const p = tap(this.project, this.project.forward(x));
      const enc = this.encoder.forward(p);
      p.dispose();
      const maps = this.decoder.forward(enc);
      for (const t of enc) t.dispose();
      const res: Tensor[] = [];
      for (let i = 0; i < (ms ? 4 : 1); i++) res.push(this.outLayers.at(i).forward(maps[i]!));
      for (const m of maps) m.dispose();
      return res;
    }));
    return ms ? outs : outs[0]!;
  }
}
