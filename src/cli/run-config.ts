/**
 * Shared option handling of the training commands: a config file (JSON/YAML/PyMIC .cfg), a preset,
 * `--set key=value` overrides and a few shortcuts, resolved into one validated RunConfig.
 */
import path from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { loadConfig, presetConfig, applyOverrides, PRESETS, type RunConfig, type PresetName } from '../config/index.js';
import { formatOf as configFormatOf, parseConfigText } from '../config/load.js';
import { parseOverrides } from '../config/resolve.js';
import type { AdoptableKey } from '../train/init.js';
import { MisfmError } from '../util/errors.js';
import { parsePrecision } from '../engine/precision.js';

/** parseArgs option specs shared by pretrain/train. */
export const RUN_OPTIONS = {
  config: { type: 'string' },
  preset: { type: 'string' },
  set: { type: 'string', multiple: true },
  iterations: { type: 'string' },
  out: { type: 'string', short: 'o' },
  resume: { type: 'boolean' },
  threads: { type: 'string' },
  precision: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  nproc: { type: 'string' },
} as const;

export interface RunArgs {
  config?: string | undefined;
  preset?: string | undefined;
  set?: string[] | undefined;
  iterations?: string | undefined;
  out?: string | undefined;
  resume?: boolean | undefined;
  threads?: string | undefined;
  precision?: string | undefined;
}

/**
 * Which of data.intensity / data.spacing the user set (an override of the key, of a part of it or
 * of the whole data section, or the key in a JSON/YAML --config file; a PyMIC .cfg names its
 * normalisation only when it lists one), so that adopting an init checkpoint's preprocessing
 * leaves them alone.
 */
export function explicitDataKeys(a: RunArgs): AdoptableKey[] {
  const keys: AdoptableKey[] = [];
  const overrides = parseOverrides(a.set ?? []).map((o) => o.key);
  for (const k of ['intensity', 'spacing'] as const) {
    const full = `data.${k}`;
    if (overrides.some((o) => o === 'data' || o === full || o.startsWith(`${full}.`))) { keys.push(k); continue; }
    if (a.config === undefined) continue;
    const fmt = configFormatOf(a.config);
    if (fmt === 'pymic') {
      if (k === 'intensity' && /NormalizeWith/i.test(readFileSync(a.config, 'utf8'))) keys.push(k);
      continue;
    }
    const raw = parseConfigText(readFileSync(a.config, 'utf8'), fmt, a.config);
    const data = raw['data'];
    if (typeof data === 'object' && data !== null && k in data) keys.push(k);
  }
  return keys;
}

/**
 * Resolve the run config. On --resume without --config, the run's own saved config is used so the
 * continuation trains exactly what was started.
 */
export function resolveRunConfig(a: RunArgs, defaultPreset: PresetName): RunConfig {
  if (a.out === undefined) throw new MisfmError('ARGUMENT', '--out RUN_DIR is required');
  const overrides = [...(a.set ?? [])];
  if (a.iterations !== undefined) overrides.push(`training.iterations=${a.iterations}`);
  if (a.threads !== undefined) overrides.push(`training.threads=${a.threads}`);
  if (a.precision !== undefined) overrides.push(`training.precision=${JSON.stringify(parsePrecision(a.precision))}`);
  overrides.push(`output.dir=${JSON.stringify(path.resolve(a.out))}`);
  if (a.preset !== undefined && !(PRESETS as readonly string[]).includes(a.preset)) {
    throw new MisfmError('ARGUMENT', `--preset must be one of ${PRESETS.join(', ')}, got '${a.preset}'`);
  }
  const preset = (a.preset ?? defaultPreset) as PresetName;
  const saved = path.join(a.out, 'config.json');
  const file = a.config ?? (a.resume === true && existsSync(saved) ? saved : undefined);
  if (file !== undefined) return loadConfig(file, { overrides, ...(a.preset !== undefined ? { preset } : {}) }).config;
  return applyOverrides(presetConfig(preset), overrides);
}
