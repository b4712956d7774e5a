/** SwinUNETR options (MONAI's constructor arguments, camelCase) with defaults and validation. */
import { ConfigError } from '../../util/errors.js';
import { checkPosInt } from '../common.js';

/**
 * How misfm's (D, H, W) tensor axes map onto the network's spatial axes 0, 1, 2.
 * - 'xyz' (default): the network sees (W, H, D) = (X, Y, Z), the axis order of MONAI arrays and of
 *   the released SwinUNETR/VoCo weights (spec 1.5); input and output are transposed around the
 *   network. With RAS data orientation this is exactly what those weights were trained on.
 * - 'dhw': the network sees misfm's order unchanged (fine for weights trained by misfm itself).
 */
export type AxisOrder = 'xyz' | 'dhw';

export interface SwinUNETROptions {
  inChannels: number;
  classNum: number;
  /** Stage-1 channels (feature_size); default 48 (VoCo-B; VoCo-L 96, VoCo-H 192). */
  featureSize?: number;
  /** Swin blocks per stage; default [2, 2, 2, 2]. */
  depths?: readonly number[];
  /** Attention heads per stage; default [3, 6, 12, 24]. */
  numHeads?: readonly number[];
  /** Attention window (MONAI hard-codes 7); default 7. */
  windowSize?: number;
  /** SwinUNETR-v2 residual conv block before each stage (use_v2; VoCo's weights need it); default false. */
  useV2?: boolean;
  /** Layer-normalise the stage outputs without affine (normalize); default true. */
  normalize?: boolean;
  dropRate?: number;
  attnDropRate?: number;
  /** Stochastic depth, linearly increasing over the blocks (dropout_path_rate); default 0. */
  dropPathRate?: number;
  /** 'merging' (MONAI's legacy default, VoCo's weights) or 'mergingv2'. */
  downsample?: 'merging' | 'mergingv2';
  axisOrder?: AxisOrder;
  /** Accepted so configs can switch networks (the key carries over); SwinUNETR has no deep-supervision outputs, so it resolves to false. */
  multiscalePred?: boolean;
}

export interface ResolvedSwinUNETROptions {
  inChannels: number; classNum: number; featureSize: number; depths: number[]; numHeads: number[]; windowSize: number;
  useV2: boolean; normalize: boolean; dropRate: number; attnDropRate: number; dropPathRate: number;
  downsample: 'merging' | 'mergingv2'; axisOrder: AxisOrder;
  /** Always false. */
  multiscalePred: false;
}

const rate = (k: string, v: unknown): number => {
  if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw new ConfigError(k, `must be a rate in [0, 1], got ${JSON.stringify(v)}`);
  return v;
};
const bool = (k: string, v: unknown): boolean => {
  if (typeof v !== 'boolean') throw new ConfigError(k, `must be true or false, got ${JSON.stringify(v)}`);
  return v;
};
const list4 = (k: string, v: unknown): number[] => {
  if (!Array.isArray(v) || v.length !== 4 || v.some((x) => typeof x !== 'number' || !Number.isInteger(x) || x < 1)) {
    throw new ConfigError(k, `must be a list of 4 integers >= 1 (one per stage), got ${JSON.stringify(v)}`);
  }
  return [...(v as number[])];
};

/** Fill defaults and validate; `prefix` names keys in errors (e.g. 'network.'). */
export function resolveSwinUNETROptions(o: SwinUNETROptions, prefix = ''): ResolvedSwinUNETROptions {
  const k = (n: string): string => `${prefix}${n}`;
  const featureSize = checkPosInt(k('featureSize'), o.featureSize ?? 48);
  const depths = list4(k('depths'), o.depths ?? [2, 2, 2, 2]);
  const numHeads = list4(k('numHeads'), o.numHeads ?? [3, 6, 12, 24]);
  numHeads.forEach((h, i) => {
    if ((featureSize * 2 ** i) % h !== 0) throw new ConfigError(k('featureSize'), `${featureSize}: stage ${i + 1} has ${featureSize * 2 ** i} channels, not divisible by ${h} heads`);
  });
  const downsample = o.downsample ?? 'merging';
  if (downsample !== 'merging' && downsample !== 'mergingv2') throw new ConfigError(k('downsample'), `must be 'merging' or 'mergingv2', got ${JSON.stringify(downsample)}`);
  if (o.multiscalePred !== undefined) bool(k('multiscalePred'), o.multiscalePred);
  const axisOrder = o.axisOrder ?? 'xyz';
  if (axisOrder !== 'xyz' && axisOrder !== 'dhw') throw new ConfigError(k('axisOrder'), `must be 'xyz' (released weights) or 'dhw', got ${JSON.stringify(axisOrder)}`);
  return {
    inChannels: checkPosInt(k('inChannels'), o.inChannels), classNum: checkPosInt(k('classNum'), o.classNum), featureSize, depths, numHeads,
    windowSize: checkPosInt(k('windowSize'), o.windowSize ?? 7), useV2: bool(k('useV2'), o.useV2 ?? false), normalize: bool(k('normalize'), o.normalize ?? true),
    dropRate: rate(k('dropRate'), o.dropRate ?? 0), attnDropRate: rate(k('attnDropRate'), o.attnDropRate ?? 0), dropPathRate: rate(k('dropPathRate'), o.dropPathRate ?? 0),
    downsample, axisOrder, multiscalePred: false,
  };
}

export const SWIN_UNETR_KEYS = ['inChannels', 'classNum', 'featureSize', 'depths', 'numHeads', 'windowSize', 'useV2', 'normalize',
  'dropRate', 'attnDropRate', 'dropPathRate', 'downsample', 'axisOrder', 'multiscalePred'] as const;
