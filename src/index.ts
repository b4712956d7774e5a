/**
 * misfm's public API. The folders are also importable one by one; this barrel collects what an
 * application or a training script needs.
 */
export * from './engine/index.js';
export * as nn from './nn/index.js';
export * as optim from './optim/index.js';
export * from './models/index.js';
export { loadCheckpointFile, saveTorchCheckpoint, readSafetensors, writeSafetensors, extractStateDict } from './io/checkpoint/index.js';
export { readImage, writeImage, writeLike, listDicomSeries } from './io/image/index.js';
export { writeDicomSeg, encodeDicomSeg, readDicomSeg, readDicomSource, type SegSegment, type DicomSourceSeries, type DicomSegOptions } from './io/dicom/index.js';
export type { Volume } from './io/volume.js';
export * as transforms from './transforms/index.js';
export { prepare, Loader } from './data/index.js';
export * as config from './config/index.js';
export * from './train/losses.js';
export { train, type TrainSummary, type BatchSource } from './train/trainer.js';
export { pretrain } from './ssl/pretrain.js';
export { finetune } from './train/finetune.js';
export { fusionLevelMap, fuse } from './ssl/fusion-mask.js';
export { slidingWindowSegment, slidingWindowLogits } from './infer/sliding-window.js';
export { predictCase } from './infer/predict.js';
export { loadModelForInference } from './infer/model.js';
export * as metrics from './metrics/index.js';
export { MisfmError } from './util/errors.js';
export { readMetricsLog, type MetricsLog, type MetricsRecord } from './train/metrics-log.js';
