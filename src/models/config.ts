/**
 * Network configuration: a small, typed, JSON-serialisable description of a network
 * (`{"name": "pctnet", "inChannels": 1, ...}`), validated strictly (unknown keys are errors, with a
 * suggestion), plus the conversion from PyMIC's `[network]` section.
 */
import { ConfigError } from '../util/errors.js';
import { resolvePCTNetOptions, type PCTNetOptions, type ResolvedPCTNetOptions } from './pctnet/options.js';
import { resolveUNet3DOptions, type UNet3DOptions, type ResolvedUNet3DOptions } from './unet3d.js';
import { resolveFMUNetOptions, type FMUNetOptions, type ResolvedFMUNetOptions } from './fmunet.js';
import { resolveSwinUNETROptions, SWIN_UNETR_KEYS, type SwinUNETROptions, type ResolvedSwinUNETROptions } from './swin-unetr/options.js';
import { resolveVista3dOptions, VISTA3D_KEYS, type Vista3dOptions, type ResolvedVista3dOptions } from './vista3d/options.js';

export type PCTNetConfig = { name: 'pctnet' } & PCTNetOptions;
export type UNet3DConfig = { name: 'unet3d' } & UNet3DOptions;
export type FMUNetConfig = { name: 'fmunet' } & FMUNetOptions;
export type SwinUNETRConfig = { name: 'swinunetr' } & SwinUNETROptions;
/**
 * VISTA3D (promptable; trained by src/train/vista3d/). `classNum` is the size of its class table
 * (background + supported classes = lastSupported + 1, the research configs' output_classes 133).
 */
export type Vista3dModelConfig = { name: 'vista3d'; classNum?: number } & Vista3dOptions;
/** What a config file or preset holds; omitted keys take each network's defaults. */
export type ModelConfig = PCTNetConfig | UNet3DConfig | FMUNetConfig | SwinUNETRConfig | Vista3dModelConfig;

/** A config with every default filled in (what a trained model records). */
export type ResolvedModelConfig =
  | ({ name: 'pctnet' } & ResolvedPCTNetOptions)
  | ({ name: 'unet3d' } & ResolvedUNet3DOptions)
  | ({ name: 'fmunet' } & ResolvedFMUNetOptions)
  | ({ name: 'swinunetr' } & ResolvedSwinUNETROptions)
  | ({ name: 'vista3d'; classNum: number } & ResolvedVista3dOptions);

export const MODEL_NAMES = ['pctnet', 'unet3d', 'fmunet', 'swinunetr', 'vista3d'] as const;
export type ModelName = (typeof MODEL_NAMES)[number];

const KEYS: Readonly<Record<ModelName, readonly string[]>> = {
  pctnet: ['inChannels', 'classNum', 'inputSize', 'featureChns', 'dropout', 'depths', 'numHeads', 'windowSizes', 'resolutionMode', 'multiscalePred'],
  unet3d: ['inChannels', 'classNum', 'featureChns', 'dropout', 'upMode', 'normType', 'multiscalePred', 'initialization'],
  fmunet: ['inChannels', 'classNum', 'featureChns', 'dropout', 'resMode', 'depth', 'multiscalePred', 'initialization'],
  swinunetr: SWIN_UNETR_KEYS,
  vista3d: [...VISTA3D_KEYS, 'classNum'],
};

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
    }
  }
  return d[a.length]![b.length]!;
}

/** " (did you mean 'x'?)" when a known name is close to `got`. */
export function suggest(got: string, known: readonly string[]): string {
  let best: string | undefined, bestD = Infinity;
  for (const k of known) { const dd = editDistance(got, k); if (dd < bestD) { bestD = dd; best = k; } }
  return best !== undefined && bestD <= Math.max(2, Math.floor(got.length / 3)) ? ` (did you mean '${best}'?)` : '';
}

/**
 * Validate a parsed config (e.g. JSON) and return it with every default filled in.
 * `path` prefixes key names in errors (e.g. 'network'). Throws ConfigError naming the key.
 */
export function resolveModelConfig(raw: unknown, path = 'network'): ResolvedModelConfig {
  const p = path === '' ? '' : `${path}.`;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(path || 'config', `must be an object, got ${JSON.stringify(raw)}`);
  const obj = raw as Record<string, unknown>;
  const name = obj['name'];
  if (typeof name !== 'string' || !(MODEL_NAMES as readonly string[]).includes(name)) {
    throw new ConfigError(`${p}name`, `must be one of ${MODEL_NAMES.map((n) => `'${n}'`).join(', ')}, got ${JSON.stringify(name)}${typeof name === 'string' ? suggest(name, MODEL_NAMES) : ''}`);
  }
  const n = name as ModelName;
  for (const k of Object.keys(obj)) {
    if (k !== 'name' && !KEYS[n].includes(k)) {
      throw new ConfigError(`${p}${k}`, `is not a ${n} option${suggest(k, KEYS[n])}; allowed: ${KEYS[n].join(', ')}`);
    }
  }
  switch (n) {
    case 'pctnet': return { name: n, ...resolvePCTNetOptions(obj as unknown as PCTNetOptions, p) };
    case 'unet3d': return { name: n, ...resolveUNet3DOptions(obj as unknown as UNet3DOptions, p) };
    case 'fmunet': return { name: n, ...resolveFMUNetOptions(obj as unknown as FMUNetOptions, p) };
    case 'swinunetr': return { name: n, ...resolveSwinUNETROptions(obj as unknown as SwinUNETROptions, p) };
    case 'vista3d': {
      const { classNum, ...rest } = obj;
      const r = resolveVista3dOptions(rest as Vista3dOptions, p);
      if (classNum !== undefined && classNum !== r.lastSupported + 1) {
        throw new ConfigError(`${p}classNum`, `is VISTA3D's class-table size, lastSupported + 1 = ${r.lastSupported + 1}; got ${JSON.stringify(classNum)} (leave it out)`);
      }
      return { name: n, classNum: r.lastSupported + 1, ...r };
    }
  }
}

/** PyMIC net_type values (case-insensitive) and the misfm network they mean. */
const PYMIC_NET_TYPES: Readonly<Record<string, ModelName>> = { pctnet: 'pctnet', unet3d: 'unet3d', fmunet: 'fmunet', fmunetv3: 'fmunet' };

/**
 * Convert a PyMIC `[network]` section (snake_case keys as parsed from a .cfg) to a ModelConfig.
 * Keys PyMIC ignores for the network (e.g. `update_mode`) are dropped; unknown ones are errors.
 */
export function fromPymicNetworkSection(section: Readonly<Record<string, unknown>>, path = 'network'): ResolvedModelConfig {
  const type = String(section['net_type'] ?? '').toLowerCase();
  const name = PYMIC_NET_TYPES[type];
  if (name === undefined) {
    throw new ConfigError(`${path}.net_type`, `${JSON.stringify(section['net_type'])} is not supported; supported: PCTNet, UNet3D, FMUNet${suggest(type, Object.keys(PYMIC_NET_TYPES))}`);
  }
  const rename: Record<string, string> = {
    in_chns: 'inChannels', class_num: 'classNum', input_size: 'inputSize', feature_chns: 'featureChns', dropout: 'dropout',
    depths: 'depths', num_heads: 'numHeads', window_sizes: 'windowSizes', resolution_mode: 'resolutionMode', multiscale_pred: 'multiscalePred',
    up_mode: 'upMode', norm_type: 'normType', initialization: 'initialization', res_mode: 'resMode', depth: 'depth',
  };
  const ignored = new Set(['net_type', 'update_mode', 'finetune_mode', 'weights_load_mode', 'stage', 'trilinear', 'deep_supervise']);
  const out: Record<string, unknown> = { name };
  for (const [k, v] of Object.entries(section)) {
    if (ignored.has(k)) continue;
    const to = rename[k];
    if (to === undefined || !KEYS[name].includes(to)) {
      throw new ConfigError(`${path}.${k}`, `is not a ${name} option in PyMIC's [network] section${suggest(k, Object.keys(rename))}`);
    }
    out[to] = v;
  }
  return resolveModelConfig(out, path);
}
