/** Segmentation networks: PCT-Net, PyMIC's UNet3D, FMUNet; configs, registry, pretrained loading. */
export * from './pctnet/index.js';
export {
  UNet3D, resolveUNet3DOptions, unet3dKeyV04ToV05, convertUNet3DStateDictV04,
  type UNet3DOptions, type ResolvedUNet3DOptions, type UpMode, type NormType,
} from './unet3d.js';
export { FMUNet, resolveFMUNetOptions, type FMUNetOptions, type ResolvedFMUNetOptions } from './fmunet.js';
export {
  MODEL_NAMES, resolveModelConfig, fromPymicNetworkSection,
  type ModelConfig, type ResolvedModelConfig, type ModelName, type PCTNetConfig, type UNet3DConfig, type FMUNetConfig,
} from './config.js';
export { PRESETS, preset, createModel, configOf, createVista3d } from './registry.js';
export { loadPretrained, formatPretrainedReport, headModulePaths, isSegmentationNetwork, type PretrainedReport, type LoadPretrainedOptions } from './pretrained.js';
export { inferArchitecture, type InferredArchitecture } from './infer-arch.js';
export { recomputeForward, type Segment, type RecomputeHandle } from './recompute.js';
export { withTaps, registerTapNames, tap, type TapFn } from './taps.js';
export { outputsOf, type ForwardOptions, type SegmentationNetwork } from './types.js';
export * as vista3d from './vista3d/index.js';
