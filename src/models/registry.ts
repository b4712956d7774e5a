/**
 * Model registry: build a network from a config, named presets, and the config of a built network.
 *
 *   const net = createModel(preset('pctnet-paper'));
 *   const small = createModel({ name: 'pctnet', ...PRESETS['pctnet-small'], classNum: 2 });
 */
import { MisfmError } from '../util/errors.js';
import { resolveModelConfig, suggest, type ModelConfig, type ResolvedModelConfig } from './config.js';
import type { SegmentationNetwork } from './types.js';
import { PCTNet } from './pctnet/model.js';
import { UNet3D } from './unet3d.js';
import { FMUNet } from './fmunet.js';
import { SwinUNETR } from './swin-unetr/model.js';
import { VISTA3D } from './vista3d/model.js';
import { VISTA3D_PRESETS, type Vista3dOptions } from './vista3d/options.js';

/**
 * Named configurations.
 * - pctnet-paper: the MIS-FM paper / demo setting (VolF pretraining: 5 classes, mode 1, 64x128x128).
 * - pctnet-small: a 3 M-parameter PCT-Net for CPU demos and tests (same layout as the parity fixture).
 * - unet3d-volf: PyMIC's 3D U-Net as used in the VolF demos.
 * - fmunet: MIS-FM's FMUNet with PyMIC defaults.
 * - swinunetr-voco: MONAI SwinUNETR-v2, feature size 48, as VoCo-B is fine-tuned (axes (X,Y,Z) for the released weights).
 * - swinunetr-small: a feature-size-12 SwinUNETR-v2 for CPU tests and demos.
 */
export const PRESETS: Readonly<Record<string, ModelConfig>> = {
  'pctnet-paper': {
    name: 'pctnet', inChannels: 1, classNum: 5, inputSize: [64, 128, 128], featureChns: [24, 48, 128, 256, 512],
    dropout: [0, 0, 0.2, 0.2, 0.2], depths: [2, 2, 2], numHeads: [4, 8, 16], windowSizes: [6, 6, 6], resolutionMode: 1, multiscalePred: true,
  },
  'pctnet-small': {
    name: 'pctnet', inChannels: 1, classNum: 5, inputSize: [32, 64, 64], featureChns: [8, 16, 32, 64, 128],
    dropout: [0, 0, 0.2, 0.2, 0.2], depths: [2, 2, 2], numHeads: [4, 8, 16], windowSizes: [6, 6, 6], resolutionMode: 1, multiscalePred: true,
  },
  'unet3d-volf': {
    name: 'unet3d', inChannels: 1, classNum: 5, featureChns: [32, 64, 128, 256, 512], dropout: [0, 0, 0.2, 0.2, 0.2],
    upMode: 'trilinear', normType: 'batch_norm', multiscalePred: false,
  },
  'fmunet': {
    name: 'fmunet', inChannels: 1, classNum: 5, featureChns: [32, 64, 128, 256, 512], dropout: 0.2, resMode: 0, depth: 2, multiscalePred: true,
  },
  'swinunetr-voco': { name: 'swinunetr', inChannels: 1, classNum: 14, featureSize: 48, useV2: true, axisOrder: 'xyz' },
  'swinunetr-small': { name: 'swinunetr', inChannels: 1, classNum: 5, featureSize: 12, useV2: true, axisOrder: 'xyz' },
};

/** A preset with some keys overridden (the result is validated when a model is created). */
export function preset(name: string, overrides: Readonly<Record<string, unknown>> = {}): ModelConfig {
  const base = PRESETS[name];
  if (base === undefined) {
    throw new MisfmError('CONFIG', `unknown model preset '${name}'${suggest(name, Object.keys(PRESETS))}; presets: ${Object.keys(PRESETS).join(', ')}`);
  }
  return { ...base, ...overrides } as ModelConfig;
}

/** Build a network from a config (validated; throws ConfigError naming the bad key). */
export function createModel(config: ModelConfig | ResolvedModelConfig | unknown): SegmentationNetwork {
  const c = resolveModelConfig(config);
  switch (c.name) {
    case 'pctnet': return new PCTNet(c);
    case 'unet3d': return new UNet3D(c);
    case 'fmunet': return new FMUNet(c);
    case 'swinunetr': return new SwinUNETR(c);
    case 'vista3d': throw new MisfmError('CONFIG', 'VISTA3D is promptable, not a plain segmentation network: build it with createVista3d (misfm train trains it with its own task)');
  }
}

/** The full config of a built network (JSON-serialisable; createModel(configOf(net)) rebuilds it). */
export function configOf(net: SegmentationNetwork): ResolvedModelConfig {
  if (net instanceof PCTNet) return { name: 'pctnet', ...net.options, multiscalePred: net.multiscalePred };
  // UNet3D's auxiliary heads exist only if built with multiscalePred, so the built value counts.
  if (net instanceof UNet3D) return { name: 'unet3d', ...net.options };
  if (net instanceof FMUNet) return { name: 'fmunet', ...net.options, multiscalePred: net.multiscalePred };
  if (net instanceof SwinUNETR) return { name: 'swinunetr', ...net.options };
  throw new MisfmError('ARGUMENT', `configOf: ${net.constructor.name} is not a registered network`);
}

// VISTA3D is promptable (classes and clicks), not a SegmentationNetwork: its own presets and factory.
export { VISTA3D_PRESETS };
/** Build VISTA3D from a preset name (vista3d-official, vista3d-small, vista3d-cpu) or options. */
export function createVista3d(config: string | Vista3dOptions = 'vista3d-official'): VISTA3D {
  if (typeof config !== 'string') return new VISTA3D(config);
  const p = VISTA3D_PRESETS[config];
  if (p === undefined) throw new MisfmError('CONFIG', `unknown VISTA3D preset '${config}'${suggest(config, Object.keys(VISTA3D_PRESETS))}; presets: ${Object.keys(VISTA3D_PRESETS).join(', ')}`);
  return new VISTA3D(p);
}
