/**
 * VISTA3D configuration (MONAI's `vista3d132` and its parts), every size configurable with
 * MONAI's values as defaults, so the official checkpoint and small CPU models share one module tree.
 */
import { ConfigError } from '../../util/errors.js';
import { checkIntList, checkPosInt } from '../common.js';

export interface Vista3dOptions {
  /** Image channels (1 for CT). */
  inChannels?: number;
  /** SegResNetDS2 `init_filters` F: level i works at F·2^i channels. */
  initFilters?: number;
  /** Head feature size E (the encoder's `out_channels`); a multiple of 2·numHeads. */
  featureSize?: number;
  /** SegResBlocks per encoder level; its length is the number of levels. */
  blocksDown?: number[];
  /** Rows of the class-embedding tables (MONAI: 512). */
  nClasses?: number;
  /** Largest supported class index; a prompt class above it is zero-shot (MONAI: 132). */
  lastSupported?: number;
  /** Point objects per transformer chunk (MONAI: 32; chunking does not change values). */
  maxPrompt?: number;
  /** Two-way transformer layers (fixed 2 in MONAI). */
  transformerDepth?: number;
  /** Attention heads (fixed 4 in MONAI). */
  numHeads?: number;
  /** Transformer MLP width (fixed 512 in MONAI, also for small E). */
  mlpDim?: number;
  /** Channel reduction of the cross attentions (fixed 2 in MONAI). */
  attentionDownsampleRate?: number;
}

export type ResolvedVista3dOptions = Required<Vista3dOptions>;

export const VISTA3D_DEFAULTS: ResolvedVista3dOptions = {
  inChannels: 1, initFilters: 48, featureSize: 48, blocksDown: [1, 2, 2, 4, 4], nClasses: 512, lastSupported: 132,
  maxPrompt: 32, transformerDepth: 2, numHeads: 4, mlpDim: 512, attentionDownsampleRate: 2,
};

export const VISTA3D_KEYS = Object.keys(VISTA3D_DEFAULTS) as (keyof ResolvedVista3dOptions)[];

/**
 * Named VISTA3D configurations.
 * - vista3d-official: `vista3d132(encoder_embed_dim=48)`, 217,964,982 parameters (the bundle checkpoint).
 * - vista3d-small: the parity fixture's model (F 8, E 16, 4 levels), about 1.06 M parameters.
 * - vista3d-cpu: the spec's CPU-scale model (F 16, E 16, 4 levels) for training on this machine.
 */
export const VISTA3D_PRESETS: Readonly<Record<string, Vista3dOptions>> = {
  'vista3d-official': {},
  'vista3d-small': { initFilters: 8, featureSize: 16, blocksDown: [1, 2, 2, 2] },
  'vista3d-cpu': { initFilters: 16, featureSize: 16, blocksDown: [1, 2, 2, 2] },
};

/** Validate and fill defaults; `p` prefixes key names in errors. */
export function resolveVista3dOptions(o: Vista3dOptions, p = ''): ResolvedVista3dOptions {
  for (const k of Object.keys(o)) {
    if (k !== 'name' && !(VISTA3D_KEYS as string[]).includes(k)) throw new ConfigError(`${p}${k}`, `is not a vista3d option; allowed: ${VISTA3D_KEYS.join(', ')}`);
  }
  const r = { ...VISTA3D_DEFAULTS, ...Object.fromEntries(Object.entries(o).filter(([k, v]) => k !== 'name' && v !== undefined)) } as ResolvedVista3dOptions;
  for (const k of ['inChannels', 'initFilters', 'featureSize', 'nClasses', 'maxPrompt', 'transformerDepth', 'numHeads', 'mlpDim', 'attentionDownsampleRate'] as const) {
    checkPosInt(`${p}${k}`, r[k]);
  }
  if (!Number.isInteger(r.lastSupported) || r.lastSupported < 0 || r.lastSupported >= r.nClasses) {
    throw new ConfigError(`${p}lastSupported`, `must be an integer in [0, nClasses), got ${JSON.stringify(r.lastSupported)}`);
  }
  r.blocksDown = checkIntList(`${p}blocksDown`, r.blocksDown, [2, 3, 4, 5, 6, 7], 1);
  const inner = r.featureSize / r.attentionDownsampleRate;
  if (!Number.isInteger(inner) || inner % r.numHeads !== 0 || r.featureSize % r.numHeads !== 0 || r.featureSize % 2 !== 0) {
    throw new ConfigError(`${p}featureSize`, `must be even and divisible by numHeads (${r.numHeads}) after division by attentionDownsampleRate (${r.attentionDownsampleRate}), got ${r.featureSize}`);
  }
  return r;
}

/** Every input spatial size must be a multiple of this (2^(levels-1)); the point head also needs it even. */
export function vista3dSizeDivisor(o: ResolvedVista3dOptions): number {
  return Math.max(2, 2 ** (o.blocksDown.length - 1));
}
