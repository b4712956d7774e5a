/** Run configuration: schema, defaults and presets, loading (JSON/YAML/PyMIC .cfg), overrides, saving. */
export * from './types.js';
export { defaultConfig, presetConfig } from './defaults.js';
export { validateRunConfig, TOP_KEYS } from './validate.js';
export { resolveConfig, applyOverrides, parseOverrides, mergeConfig, VOCO_RECIPE, vocoWarmup, type ResolveOptions, type Override } from './resolve.js';
export { loadConfig, saveConfig, parseConfigText, configToYaml, formatOf, type LoadedConfig, type LoadOptions, type ConfigFormat } from './load.js';
export {
  importPymicConfig, pymicToRawConfig, parsePymicCfg, parsePymicValue,
  type IgnoredKey, type PymicImport, type PymicImportOptions, type PymicConfig, type PymicValue,
} from './pymic.js';
export { fusionMaskOptions, schedulerPlan, inferenceStride, type SchedulerPlan } from './derive.js';
