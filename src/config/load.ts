/**
 * Reading and writing run configs: JSON, YAML, or a PyMIC .cfg (imported), with CLI overrides on
 * top; the resolved config is saved atomically so a run folder never holds a half-written one.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Document, isSeq, isScalar, parse as parseYaml, visit } from 'yaml';
import { ConfigError, MisfmError } from '../util/errors.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';
import { applyOverrides, parseOverrides, resolveConfig } from './resolve.js';
import { importPymicConfig, type IgnoredKey } from './pymic.js';
import { oneOf } from './check.js';
import { PRESETS, type PresetName, type RawConfig, type RunConfig } from './types.js';

export type ConfigFormat = 'json' | 'yaml' | 'pymic';

/** Format from the file extension: .json, .yaml/.yml, .cfg/.ini (PyMIC). */
export function formatOf(file: string): ConfigFormat {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.json') return 'json';
  if (ext === '.yaml' || ext === '.yml') return 'yaml';
  if (ext === '.cfg' || ext === '.ini') return 'pymic';
  throw new MisfmError('CONFIG', `unknown config format '${ext || '(no extension)'}': use .json, .yaml/.yml, or a PyMIC .cfg`, { file });
}

/** Parse JSON or YAML text into a raw (unvalidated) config. Syntax errors name the file and position. */
export function parseConfigText(text: string, format: 'json' | 'yaml', file = '<config>'): RawConfig {
  let value: unknown;
  try {
    value = format === 'json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new MisfmError('CONFIG', `invalid ${format === 'json' ? 'JSON' : 'YAML'}: ${msg}`, { file, cause: err });
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError('config', `must be a mapping of sections (task, model, data, ...), got ${JSON.stringify(value)}`, file);
  }
  return value as RawConfig;
}

export interface LoadedConfig {
  config: RunConfig;
  file: string;
  format: ConfigFormat;
  /** PyMIC keys that had no equivalent, with the reason (empty for JSON/YAML). */
  ignored: IgnoredKey[];
}

export interface LoadOptions {
  /** CLI overrides applied after the file (`preset=NAME` picks the base preset instead). */
  overrides?: readonly string[];
  /** Preset to start from (beats the file's `preset` key). */
  preset?: PresetName;
}

/**
 * Load a config file, resolve it over its preset, apply overrides, validate. Errors about the
 * file's content are ConfigErrors naming the file and the dotted key; errors from an override
 * name the override.
 */
export function loadConfig(file: string, opts: LoadOptions = {}): LoadedConfig {
  const format = formatOf(file);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message;
    throw new MisfmError('CONFIG', `cannot read config: ${reason}`, { file, cause: err });
  }
  const ovs = parseOverrides(opts.overrides ?? []);
  const presetOv = ovs.filter((o) => o.key === 'preset').pop();
  const preset = presetOv !== undefined ? oneOf(PRESETS)(presetOv.value, 'preset') : opts.preset;
  const rest = (opts.overrides ?? []).filter((_, i) => ovs[i]!.key !== 'preset');
  let config: RunConfig;
  let ignored: IgnoredKey[] = [];
  if (format === 'pymic') {
    const imported = importPymicConfig(text, { file, ...(preset !== undefined ? { preset } : {}) });
    config = imported.config;
    ignored = imported.ignored;
  } else {
    config = resolveConfig(parseConfigText(text, format, file), { file, ...(preset !== undefined ? { preset } : {}) });
  }
  return { config: rest.length > 0 ? applyOverrides(config, rest) : config, file, format, ignored };
}

/** YAML text of a config, with short lists (triples, pairs) on one line. */
export function configToYaml(config: RunConfig): string {
  const doc = new Document(config);
  visit(doc, {
    Seq(_, node) {
      if (isSeq(node) && node.items.every((it) => isScalar(it))) node.flow = true;
    },
  });
  return doc.toString();
}

/**
 * Save a (resolved) config atomically: YAML for .yaml/.yml, JSON otherwise. Throws a MisfmError
 * naming the file if it cannot be written; the previous file, if any, stays intact.
 */
export function saveConfig(file: string, config: RunConfig): void {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.yaml' || ext === '.yml') writeFileAtomic(file, configToYaml(config));
  else writeJsonAtomic(file, config);
}
