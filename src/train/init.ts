/** Initialising a model from a checkpoint file: misfm, official MIS-FM / PyMIC .pt, or safetensors. */
import { loadCheckpointFile } from '../io/checkpoint/index.js';
import { loadPretrained, formatPretrainedReport, type PretrainedReport } from '../models/pretrained.js';
import type { SegmentationNetwork } from '../models/types.js';
import type { Module } from '../nn/module.js';

/**
 * Load matching weights (by name and shape) and re-initialise heads whose class count differs.
 * The report is always printed: nothing is skipped silently.
 */
export async function initFromCheckpoint(model: Module, file: string, log: (l: string) => void): Promise<PretrainedReport> {
  const ck = await loadCheckpointFile(file);
  const report = loadPretrained(model as SegmentationNetwork, ck.stateDict);
  log(`initialised from ${file}:\n${formatPretrainedReport(report)}`);
  return report;
}
