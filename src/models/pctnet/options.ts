/**
 * PCT-Net constructor options: defaults as in the reference code, and validation that names the
 * offending key and the allowed values (ConfigError, code 'CONFIG').
 */
import { ConfigError } from '../../util/errors.js';
import type { ConvDim } from './blocks.js';

export type ResolutionMode = 0 | 1 | 2;
export type Triple = [number, number, number];
export type Quint = [number, number, number, number, number];

/** What `new PCTNet(...)` takes; omitted keys take the reference defaults. */
export interface PCTNetOptions {
  /** Input channels (in_chns). */
  inChannels: number;
  /** Output classes including background (class_num). */
  classNum: number;
  /** The one input size [D, H, W] the network accepts (input_size). */
  inputSize: readonly number[];
  /** Channels at levels 0-4 (feature_chns); default [32, 64, 128, 256, 512]. */
  featureChns?: readonly number[];
  /** Dropout per level (dropout); default [0, 0, 0.2, 0.2, 0.2]. Levels 0-1 feed the stem/head ConvBlocks, 2-4 the PCT blocks. */
  dropout?: readonly number[];
  /** Swin blocks per PCT block at levels 2-4 (depths); default [2, 2, 2]. */
  depths?: readonly number[];
  /** Attention heads at levels 2-4 (num_heads); default [4, 8, 16]. */
  numHeads?: readonly number[];
  /** Window size at levels 2-4 (window_sizes); default [6, 6, 6]. */
  windowSizes?: readonly number[];
  /** 0: isotropic stem, 1: first stem level in-plane, 2: both in-plane (resolution_mode); default 0. */
  resolutionMode?: ResolutionMode;
  /** Return [out0, out1, out2, out3] logits for deep supervision (multiscale_pred); default false. */
  multiscalePred?: boolean;
}

/** Options with every default filled in. */
export interface ResolvedPCTNetOptions {
  inChannels: number;
  classNum: number;
  inputSize: Triple;
  featureChns: Quint;
  dropout: Quint;
  depths: Triple;
  numHeads: Triple;
  windowSizes: Triple;
  resolutionMode: ResolutionMode;
  multiscalePred: boolean;
}

export const PCTNET_DEFAULTS = {
  featureChns: [32, 64, 128, 256, 512] as Quint,
  dropout: [0, 0, 0.2, 0.2, 0.2] as Quint,
  depths: [2, 2, 2] as Triple,
  numHeads: [4, 8, 16] as Triple,
  windowSizes: [6, 6, 6] as Triple,
  resolutionMode: 0 as ResolutionMode,
  multiscalePred: false,
};

/** Per mode: the stem's total down-sampling per axis, and the conv/down dims of its two levels. */
export const RESOLUTION_MODES: Readonly<Record<ResolutionMode, { scale: Triple; convDims: [ConvDim, ConvDim]; downDims: [ConvDim, ConvDim] }>> = {
  0: { scale: [4, 4, 4], convDims: [3, 3], downDims: [3, 3] },
  1: { scale: [2, 4, 4], convDims: [2, 3], downDims: [2, 3] },
  2: { scale: [1, 4, 4], convDims: [2, 2], downDims: [2, 2] },
};

function intList(key: string, v: unknown, n: number, min: number): number[] {
  if (!Array.isArray(v) || v.length !== n || v.some((x) => typeof x !== 'number' || !Number.isInteger(x) || x < min)) {
    throw new ConfigError(key, `must be a list of ${n} integers >= ${min}, got ${JSON.stringify(v)}`);
  }
  return [...(v as number[])];
}

function posInt(key: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new ConfigError(key, `must be an integer >= 1, got ${JSON.stringify(v)}`);
  return v;
}

/** Fill defaults and validate; `prefix` is prepended to key names in errors (e.g. 'network.'). */
export function resolvePCTNetOptions(o: PCTNetOptions, prefix = ''): ResolvedPCTNetOptions {
  const k = (name: string): string => `${prefix}${name}`;
  const inChannels = posInt(k('inChannels'), o.inChannels);
  const classNum = posInt(k('classNum'), o.classNum);
  const mode = o.resolutionMode ?? PCTNET_DEFAULTS.resolutionMode;
  if (mode !== 0 && mode !== 1 && mode !== 2) throw new ConfigError(k('resolutionMode'), `must be 0, 1 or 2, got ${JSON.stringify(mode)}`);
  const inputSize = intList(k('inputSize'), o.inputSize, 3, 1) as Triple;
  const { scale } = RESOLUTION_MODES[mode];
  // Two stem down-samplings (scale) and two pyramid ones (x4) must divide exactly, or the skip
  // concatenations do not line up.
  const bad = inputSize.findIndex((s, i) => s % (scale[i]! * 4) !== 0);
  if (bad >= 0) {
    const need = scale.map((s) => s * 4);
    throw new ConfigError(k('inputSize'), `${JSON.stringify(inputSize)} does not fit resolutionMode ${mode}: D, H, W must be multiples of ${JSON.stringify(need)}`);
  }
  const featureChns = intList(k('featureChns'), o.featureChns ?? PCTNET_DEFAULTS.featureChns, 5, 1) as Quint;
  const dropout = [...(o.dropout ?? PCTNET_DEFAULTS.dropout)];
  if (dropout.length !== 5 || dropout.some((p) => typeof p !== 'number' || !(p >= 0 && p < 1))) {
    throw new ConfigError(k('dropout'), `must be a list of 5 probabilities in [0, 1), got ${JSON.stringify(o.dropout)}`);
  }
  const depths = intList(k('depths'), o.depths ?? PCTNET_DEFAULTS.depths, 3, 1) as Triple;
  const numHeads = intList(k('numHeads'), o.numHeads ?? PCTNET_DEFAULTS.numHeads, 3, 1) as Triple;
  numHeads.forEach((h, i) => {
    const c = featureChns[i + 2]!;
    if (c % h !== 0) throw new ConfigError(k('numHeads'), `${h} heads do not divide the ${c} channels of level ${i + 2} (featureChns[${i + 2}])`);
  });
  const windowSizes = intList(k('windowSizes'), o.windowSizes ?? PCTNET_DEFAULTS.windowSizes, 3, 1) as Triple;
  const multiscalePred = o.multiscalePred ?? PCTNET_DEFAULTS.multiscalePred;
  if (typeof multiscalePred !== 'boolean') throw new ConfigError(k('multiscalePred'), `must be true or false, got ${JSON.stringify(multiscalePred)}`);
  return { inChannels, classNum, inputSize, featureChns, dropout: dropout as Quint, depths, numHeads, windowSizes, resolutionMode: mode, multiscalePred };
}
