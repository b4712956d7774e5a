/**
 * What every training command does before its first step (shared by `misfm pretrain` and
 * `misfm train`): check the task, create the run folder, save the resolved config, find or
 * prepare the cache, and split the cases into training and validation sets.
 */
import path from 'node:path';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import type { RunConfig, SpacingSetting } from '../config/types.js';
import { saveConfig } from '../config/index.js';
import { prepare } from '../data/prepare.js';
import { describeSpacing, planPatchSize, readPlan, writePlan, type DatasetPlan, type NetworkPlan } from '../data/plan.js';
import { fmunetSizeDivisor } from '../models/fmunet.js';
import { Rng } from '../util/rng.js';
import { MisfmError } from '../util/errors.js';
import { isMainRank, onMainRank, type DistributedContext } from '../distributed/context.js';

/**
 * Start (or resume) a run in `runDir`: the config must be for `task`; `--resume` needs a latest
 * checkpoint. Writes RUN/config.json and returns the path of RUN/checkpoints/latest.pt.
 */
export function startRun(cfg: RunConfig, task: RunConfig['task'], command: string, runDir: string, resume: boolean): string {
  if (cfg.task !== task) throw new MisfmError('CONFIG', `task must be '${task}' for ${command}, got '${cfg.task}'`);
  mkdirSync(runDir, { recursive: true });
  const latest = path.join(runDir, 'checkpoints', 'latest.pt');
  if (resume && !existsSync(latest)) throw new MisfmError('DATA', `--resume: no checkpoint to resume from in ${runDir} (expected ${latest})`);
  saveConfig(path.join(runDir, 'config.json'), cfg);
  return latest;
}

/** The cache a run uses: `data` itself when it is one (has a manifest), else RUN/cache. */
export function cachePathFor(data: readonly string[], runDir: string): string {
  return data.length === 1 && existsSync(path.join(data[0]!, 'manifest.json')) ? data[0]! : path.join(runDir, 'cache');
}

/**
 * Use `data` as a cache when it has a manifest; otherwise prepare it into RUN/cache at `spacing`
 * (data.spacing: the dataset plan's by default), and say which spacing that is.
 */
export async function ensureCache(data: string[], runDir: string, log: (l: string) => void, opts: { labels?: string; csv?: string; spacing?: SpacingSetting; reorient?: string } = {}): Promise<string> {
  const { spacing = 'plan', reorient, ...discover } = opts;
  if (data.length === 1 && existsSync(path.join(data[0]!, 'manifest.json'))) {
    const cached = cacheSpacing(data[0]!);
    if (Array.isArray(spacing) && JSON.stringify(cached) !== JSON.stringify(spacing)) {
      log(`note: data.spacing is ${spacing.join(',')} mm but the cache ${data[0]} was prepared at ${cached === null ? 'native spacing' : `${cached.join(',')} mm`}; the cache is used as it is (prepare it again to change it)`);
    }
    return data[0]!;
  }
  const cache = path.join(runDir, 'cache');
  log(`preparing ${data.join(', ')} into ${cache}`);
  const r = await prepare(data, cache, { ...discover, preprocess: { spacing, ...(reorient !== undefined ? { reorient } : {}) } });
  for (const f of r.report.failures) log(`  skipped ${f.source}: ${f.reason}`);
  if (r.report.manifestOk === 0) throw new MisfmError('DATA', `no usable image in ${data.join(', ')} (see ${path.join(cache, 'report.json')})`);
  if (r.plan !== undefined) log(`spacing: ${describeSpacing(r.plan.spacing)}`);
  return cache;
}

/**
 * The cache of a run, single-process or data-parallel, and the config that records it: rank 0
 * finds or prepares the cache (ensureCache) and records it in the run (recordCache) while the other
 * ranks wait; they then use the same path and write nothing.
 */
export async function setUpCache(cfg: RunConfig, data: string[], runDir: string, log: (l: string) => void,
  opts: Parameters<typeof ensureCache>[3], dist: DistributedContext | null): Promise<{ cache: string; config: RunConfig }> {
  const cache = await onMainRank(dist, () => ensureCache(data, runDir, log, opts), () => cachePathFor(data, runDir));
  const config = isMainRank(dist) ? recordCache(cfg, cache, runDir) : { ...cfg, data: { ...cfg.data, cache: path.resolve(cache) } };
  return { cache, config };
}

/** The spacing a cache's manifest records (null: native), or null when unreadable. */
function cacheSpacing(cache: string): number[] | null {
  try {
    const m = JSON.parse(readFileSync(path.join(cache, 'manifest.json'), 'utf8')) as { preprocess?: { spacing?: unknown } };
    return Array.isArray(m.preprocess?.spacing) ? m.preprocess.spacing as number[] : null;
  } catch { return null; }
}

/**
 * The config a run trains with: `data.cache` set to the cache used and `data.preprocess` to the
 * preprocessing its manifest records, so that every checkpoint carries them. Re-saves config.json.
 */
export function recordCache(cfg: RunConfig, cache: string, runDir: string): RunConfig {
  let preprocess: Record<string, unknown> | null = null;
  try {
    const m = JSON.parse(readFileSync(path.join(cache, 'manifest.json'), 'utf8')) as { preprocess?: unknown };
    if (m.preprocess !== null && typeof m.preprocess === 'object' && !Array.isArray(m.preprocess)) preprocess = m.preprocess as Record<string, unknown>;
  } catch (err) {
    throw new MisfmError('DATA', `cannot read the cache manifest: ${err instanceof Error ? err.message : String(err)}`, { file: path.join(cache, 'manifest.json'), cause: err });
  }
  // The plan's fingerprint summary travels with the preprocessing, so that a checkpoint alone
  // tells predict what its training data looked like (spacing range, modality).
  const plan = readPlan(cache);
  if (preprocess !== null && plan !== undefined) {
    const f = plan.fingerprint;
    preprocess = { ...preprocess, plan: { version: plan.version, spacingSource: plan.spacing.source, planned: plan.spacing.planned, spacingRange: f.spacingRange, modalities: f.modalities, cases: f.cases.length } };
  }
  const out: RunConfig = { ...cfg, data: { ...cfg.data, cache: path.resolve(cache), preprocess } };
  saveConfig(path.join(runDir, 'config.json'), out);
  if (plan !== undefined) writePlan(runDir, { ...plan, network: networkPlan(out, plan) });
  return out;
}

/** Memory budget for the planned patch size of networks whose input size is free (MiB). */
export const PATCH_BUDGET_MIB = 4096;

/**
 * The plan's network part: PCT-Net's fixed input size, or for free networks the patch size that
 * fits PATCH_BUDGET_MIB at the plan's spacing (recorded beside the patch size the run uses).
 */
export function networkPlan(cfg: RunConfig, plan: DatasetPlan): NetworkPlan {
  const m = cfg.model;
  const info = m.name === 'pctnet' ? { fixed: true, sizeDivisor: [1, 1, 1] }
    : m.name === 'unet3d' ? { fixed: false, sizeDivisor: Array<number>(3).fill(2 ** (m.featureChns.length - 1)) }
    : m.name === 'swinunetr' ? { fixed: false, sizeDivisor: [32, 32, 32] } // five 2x stages (MONAI's check)
    : m.name === 'vista3d' ? { fixed: false, sizeDivisor: Array<number>(3).fill(2 ** (m.blocksDown.length - 1)) }
    : { fixed: false, sizeDivisor: fmunetSizeDivisor(m.resMode) };
  const used = [...cfg.data.patchSize] as [number, number, number];
  // SwinUNETR's stage widths (feature size x 1, 2, 4, 8, 16) stand in for the conv channels of the estimate.
  const chns = m.name === 'swinunetr' ? [1, 2, 4, 8, 16].map((k) => k * m.featureSize)
    : m.name === 'vista3d' ? m.blocksDown.map((_, i) => m.initFilters * 2 ** i) : [...m.featureChns];
  const budget = PATCH_BUDGET_MIB * 2 ** 20;
  const divisor = [...info.sizeDivisor] as [number, number, number];
  if (info.fixed) {
    return { model: cfg.model.name, inputSize: 'fixed', patchSize: used, used, divisor, estimatedMiB: 0, budgetMiB: PATCH_BUDGET_MIB };
  }
  const sp = plan.spacing.target ?? plan.spacing.planned;
  const f = plan.fingerprint;
  // Median size at the target spacing: each axis scaled by its median spacing over the target.
  const medianSize = [0, 1, 2].map((a) => Math.round(f.medianSize[a]! * f.medianSpacing[a]! / sp[a]!)) as [number, number, number];
  const p = planPatchSize({ spacing: sp, medianSize, divisor, featureChns: chns, batchSize: cfg.data.batchSize, budgetBytes: budget });
  return { model: cfg.model.name, inputSize: 'free', patchSize: p.patchSize, used, divisor, estimatedMiB: Math.round(p.estimatedBytes / 2 ** 20), budgetMiB: PATCH_BUDGET_MIB };
}

export interface Split { train: string[]; valid: string[] }

/** How a split names things in its errors, e.g. { item: 'scan', held: 'held-out', pool: 'the data' }. */
export interface SplitWords { item: string; held: string; pool: string }

/** The named validation ids: all must exist, and at least one case must be left to train on. */
export function explicitSplit(ids: readonly string[], valid: readonly string[], w: SplitWords): Split {
  const unknown = valid.filter((v) => !ids.includes(v));
  if (unknown.length > 0) throw new MisfmError('ARGUMENT', `${w.held} ${w.item}(s) not in ${w.pool}: ${unknown.join(', ')} (${w.item}s: ${ids.join(', ')})`);
  const train = ids.filter((i) => !valid.includes(i));
  if (train.length === 0) throw new MisfmError('ARGUMENT', `every ${w.item} is ${w.held}: no ${w.item} left to train on`);
  return { train, valid: [...valid] };
}

/** A seeded split: `fraction` of the ids (at least 1) for validation, the same for the same seed. */
export function seededSplit(ids: readonly string[], seed: number, fraction: number): Split {
  const sorted = [...ids].sort();
  new Rng(seed).fork(7).shuffle(sorted);
  const nv = Math.max(1, Math.round(sorted.length * fraction));
  return { train: sorted.slice(nv).sort(), valid: sorted.slice(0, nv).sort() };
}
