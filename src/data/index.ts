/**
 * Dataset cache and data loader: `prepare` turns images into random-access cache files with a
 * manifest; `Loader` serves random crops / image-label patches from it through worker threads.
 */
export { prepare, REPORT_NAME, LOG_NAME, type PrepareOptions, type PrepareReport, type PrepareResult, type PrepareSpec } from './prepare.js';
export {
  planSpacing, planPatchSize, estimateTrainingBytes, buildPlan, readPlan, writePlan, describeSpacing, PLAN_NAME, PLAN_VERSION,
  type DatasetPlan, type CaseGeometry, type SpacingDecision, type NetworkPlan,
} from './plan.js';
export { Loader, sampleView, type LoaderOptions, type LoaderState, type LoaderStats, type Batch } from './loader.js';
export { CacheVolume, chooseStrategy, type ReadStrategy, type Box3 } from './reader.js';
export { readCrop, startRange, reflectIndex, type PadSpec } from './crop.js';
export {
  writeCacheFile, readCacheHeader, encodeHeader, decodeHeader, CACHE_MAGIC, CACHE_VERSION, HEADER_BYTES,
  type CacheHeader, type CacheDType, type CacheKind,
} from './format.js';
export { readForeground, writeForeground, sampleForeground, type ForegroundSamples, type ForegroundClass, type ForegroundSampling } from './foreground.js';
export {
  loadManifest, saveManifest, readyCases, MANIFEST_NAME, JOURNAL_NAME,
  type Manifest, type CaseRecord, type CaseSource, type CachedCase, type CacheFileInfo,
} from './manifest.js';
export { discoverCases, readCaseCsv, readNnunetDataset, pathFingerprint, type CaseSpec, type Discovery, type DiscoverOptions } from './sources.js';
export { normalizeSpec, specKey, type PreprocessSpec } from './preprocess.js';
export { prepareCase, caseFiles, type CaseTask } from './case.js';
export { SampleMaker, placeCrop, type SamplerConfig, type SampleCase, type SampleInfo, type RawBatch } from './sampler.js';
export { affineFor, flipInto, flipLabelsInto, DEFAULT_FLIP, type IntensitySpec, type FlipSpec, type CustomIntensity } from './intensity.js';
export { intensityStats, labelCounts, labelStats, percentileSorted, type IntensityStats, type LabelStats } from './stats.js';
