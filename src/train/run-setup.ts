/**
 * What every training command does before its first step (shared by `misfm pretrain` and
 * `misfm train`): check the task, create the run folder, save the resolved config, find or
 * prepare the cache, and split the cases into training and validation sets.
 */
import path from 'node:path';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import type { RunConfig } from '../config/types.js';
import { saveConfig } from '../config/index.js';
import { prepare } from '../data/prepare.js';
import { Rng } from '../util/rng.js';
import { MisfmError } from '../util/errors.js';

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

/** Use `data` as a cache when it has a manifest; otherwise prepare it into RUN/cache. */
export async function ensureCache(data: string[], runDir: string, log: (l: string) => void, opts: { labels?: string; csv?: string } = {}): Promise<string> {
  const cache = cachePathFor(data, runDir);
  if (cache === data[0]) return cache;
  log(`preparing ${data.join(', ')} into ${cache}`);
  const r = await prepare(data, cache, opts);
  for (const f of r.report.failures) log(`  skipped ${f.source}: ${f.reason}`);
  if (r.report.manifestOk === 0) throw new MisfmError('DATA', `no usable image in ${data.join(', ')} (see ${path.join(cache, 'report.json')})`);
  return cache;
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
  const out: RunConfig = { ...cfg, data: { ...cfg.data, cache: path.resolve(cache), preprocess } };
  saveConfig(path.join(runDir, 'config.json'), out);
  return out;
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
