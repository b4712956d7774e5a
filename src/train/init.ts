/** Initialising a model from a checkpoint file: misfm, official MIS-FM / PyMIC .pt, or safetensors. */
import { isPyDict, loadCheckpointFile, type PyValue } from '../io/checkpoint/index.js';
import { loadPretrained, formatPretrainedReport, type PretrainedReport } from '../models/pretrained.js';
import type { SegmentationNetwork } from '../models/types.js';
import type { Module } from '../nn/module.js';
import type { IntensityConfig, RunConfig, SpacingSetting } from '../config/types.js';
import { normaliseVoCoStateDict, readVoCoStateDict } from '../models/swin-unetr/load.js';
import { SwinUNETR } from '../models/swin-unetr/model.js';
import { CheckpointError } from '../util/errors.js';
import type { RawTensor } from '../engine/dtype.js';

/** The run config recorded in a misfm checkpoint (`misfm.config`), or null for foreign checkpoints. */
function recordedConfig(raw: PyValue): Record<string, unknown> | null {
  if (!isPyDict(raw)) return null;
  const m = raw.get('misfm');
  if (!isPyDict(m)) return null;
  const c = m.get('config');
  if (typeof c !== 'string') return null;
  try {
    const v = JSON.parse(c) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch { return null; }
}

const show = (v: unknown): string => JSON.stringify(v ?? null);

/**
 * Where a run differs from the one that produced its init checkpoint in ways that change what the
 * pretrained filters see: intensity normalisation and voxel spacing. Fine-tuning a network on
 * inputs scaled differently from its pretraining silently wastes much of the pretraining, so
 * each difference is named (a difference may be intended: these are notes, not errors).
 */
export function initMismatches(recorded: Record<string, unknown>, cfg: Pick<RunConfig, 'data'>): string[] {
  const out: string[] = [];
  const data = (typeof recorded['data'] === 'object' && recorded['data'] !== null ? recorded['data'] : {}) as Record<string, unknown>;
  if (data['intensity'] !== undefined && show(data['intensity']) !== show(cfg.data.intensity)) {
    out.push(`data.intensity: pretrained with ${show(data['intensity'])}, this run uses ${show(cfg.data.intensity)}`);
  }
  const spacingOf = (p: unknown): unknown => (typeof p === 'object' && p !== null ? (p as Record<string, unknown>)['spacing'] ?? null : null);
  const was = spacingOf(data['preprocess']), now = spacingOf(cfg.data.preprocess);
  if (data['preprocess'] !== undefined && cfg.data.preprocess !== null && show(was) !== show(now)) {
    out.push(`voxel spacing: pretrained on ${was === null ? 'native spacing' : `${show(was)} mm`}, this run uses ${now === null ? 'native spacing' : `${show(now)} mm`}`);
  }
  return out;
}

/** Config keys a caller set explicitly, which adoption from an init checkpoint never changes. */
export type AdoptableKey = 'intensity' | 'spacing';

/**
 * Fine-tuning from a misfm checkpoint starts from its preprocessing: the intensity normalisation
 * and the voxel spacing it was trained with replace the preset's (a z-scored or differently
 * resampled input wastes much of the pretraining), unless the caller set them explicitly
 * (`explicit`); data.spacing is adopted only while it is 'plan'. Returns the config to train with
 * and one line per adopted value. Foreign checkpoints record nothing and change nothing.
 */
export async function adoptInitPreprocessing(cfg: RunConfig, explicit: readonly AdoptableKey[] = []): Promise<{ config: RunConfig; lines: string[] }> {
  const file = cfg.training.initCheckpoint;
  if (file === null) return { config: cfg, lines: [] };
  const recorded = recordedConfig((await loadCheckpointFile(file)).raw);
  const data = recorded !== null && typeof recorded['data'] === 'object' && recorded['data'] !== null ? recorded['data'] as Record<string, unknown> : null;
  if (data === null) return { config: cfg, lines: [] };
  const out: RunConfig = { ...cfg, data: { ...cfg.data } };
  const lines: string[] = [];
  const it = data['intensity'] as IntensityConfig | undefined;
  if (it !== undefined && !explicit.includes('intensity') && show(it) !== show(cfg.data.intensity)) {
    out.data.intensity = structuredClone(it);
    lines.push(`data.intensity: ${show(it)} as ${file} was trained with (instead of ${show(cfg.data.intensity)}; set data.intensity to choose)`);
  }
  const pre = data['preprocess'];
  if (typeof pre === 'object' && pre !== null && !explicit.includes('spacing') && cfg.data.spacing === 'plan') {
    const sp = (pre as Record<string, unknown>)['spacing'];
    const was: SpacingSetting = Array.isArray(sp) && sp.length === 3 && sp.every((x) => typeof x === 'number' && x > 0) ? [sp[0], sp[1], sp[2]] as [number, number, number] : 'native';
    out.data.spacing = was;
    lines.push(`data.spacing: ${Array.isArray(was) ? `${was.join(',')} mm` : 'native'} as ${file} was trained at (instead of this dataset's plan; set data.spacing to choose)`);
  }
  return { config: out, lines };
}

/**
 * Load matching weights (by name and shape) and re-initialise heads whose class count differs.
 * The report is always printed: nothing is skipped silently. With `cfg`, differences from the
 * checkpoint's recorded preprocessing are printed too (see {@link initMismatches}).
 */
export async function initFromCheckpoint(model: Module, file: string, log: (l: string) => void, cfg?: Pick<RunConfig, 'data'>): Promise<PretrainedReport> {
  let sd: ReadonlyMap<string, RawTensor>, raw: PyValue | null = null;
  try {
    const ck = await loadCheckpointFile(file);
    sd = ck.stateDict; raw = ck.raw;
  } catch (e) {
    // VoCo's loader also looks under 'network_weights', 'net' and 'student'.
    if (!(e instanceof CheckpointError) || !(model instanceof SwinUNETR)) throw e;
    sd = (await readVoCoStateDict(file)).stateDict;
  }
  // VoCo layouts (misfm's or the reference's pretraining state, swin_vit names): VoCo's key rules.
  if (model instanceof SwinUNETR || [...sd.keys()].some((k) => k.startsWith('backbone.'))) {
    const n = normaliseVoCoStateDict(sd);
    if (n.renamed.length > 0) log(`note: VoCo key layout in ${file}: ${n.renamed.join(', ')}`);
    sd = n.stateDict;
  }
  const report = loadPretrained(model as SegmentationNetwork, sd);
  log(`initialised from ${file}:\n${formatPretrainedReport(report)}`);
  const recorded = cfg === undefined || raw === null ? null : recordedConfig(raw);
  if (recorded !== null && cfg !== undefined) {
    for (const m of initMismatches(recorded, cfg)) log(`note: ${m} (check that this is intended)`);
  }
  return report;
}
