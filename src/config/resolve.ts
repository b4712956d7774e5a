/**
 * Turning what a user writes into a complete RunConfig: a partial config is merged over a preset,
 * CLI overrides (`training.lr=5e-4`) are merged over a config, and the result is re-validated.
 *
 * Merging is key by key for sections and wholesale for values (lists replace lists). Two sections
 * are replaced rather than merged when their discriminant changes: `model` when `name` changes
 * (inChannels, classNum and multiscalePred carry over) and `data.intensity` when `kind` changes.
 *
 * Tied values: some values follow others unless they are set explicitly. When data.patchSize
 * changes, PCT-Net's model.inputSize and inference.window follow it if they equalled the old
 * patch size; when ssl.levels or ssl.method changes in a pretraining config, model.classNum
 * follows (levels + 1 for Volume Fusion, 1 for the reconstruction methods). So `data.patchSize=[32,64,64]` alone gives a consistent config.
 * `ssl.method=voco` brings VoCo's optimiser and schedule (VOCO_RECIPE; its warmup follows
 * training.iterations).
 */
import { ConfigError } from '../util/errors.js';
import { fail, isPlainObject, oneOf, show } from './check.js';
import { presetConfig } from './defaults.js';
import { validateRunConfig } from './validate.js';
import { PRESETS, type PresetName, type RunConfig } from './types.js';

type Obj = Record<string, unknown>;

function getPath(o: unknown, path: string): unknown {
  let cur = o;
  for (const k of path.split('.')) {
    if (!isPlainObject(cur)) return undefined;
    cur = cur[k];
  }
  return cur;
}

function setPath(o: Obj, path: string, value: unknown): void {
  const keys = path.split('.');
  let cur = o;
  for (const k of keys.slice(0, -1)) {
    const next = cur[k];
    if (!isPlainObject(next)) return; // the section itself is broken; validation reports it
    cur = next;
  }
  cur[keys[keys.length - 1]!] = structuredClone(value);
}

function deepEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Keys of `model` every network accepts, kept when the network changes. */
const MODEL_CARRY = ['inChannels', 'classNum', 'multiscalePred'];

function mergeValue(base: unknown, patch: unknown, path: string, explicit: Set<string>): unknown {
  if (!isPlainObject(patch) || !isPlainObject(base)) {
    explicit.add(path);
    return structuredClone(patch);
  }
  let start: Obj = structuredClone(base);
  if (path === 'model' && patch['name'] !== undefined && patch['name'] !== base['name']) {
    start = {};
    // VISTA3D's class count is its class table's, never another network's head size.
    for (const k of MODEL_CARRY) if (k in base && !(patch['name'] === 'vista3d' && k !== 'inChannels')) start[k] = base[k];
  } else if (path === 'data.intensity' && patch['kind'] !== undefined && patch['kind'] !== base['kind']) {
    start = {};
  }
  for (const [k, v] of Object.entries(patch)) {
    const sub = path === '' ? k : `${path}.${k}`;
    start[k] = mergeValue(start[k], v, sub, explicit);
  }
  return start;
}

/** `derive` gets the `from` value and the config it belongs to (the base or the merged one). */
interface Tie { from: string; to: string; when: (c: Obj) => boolean; derive: (v: unknown, c: Obj) => unknown }

/** The pretext head size of a pretraining config (config/derive.ts pretextClassNum on raw values). */
function pretextHead(c: Obj): unknown {
  const method = getPath(c, 'ssl.method') ?? 'volf', levels = getPath(c, 'ssl.levels');
  if (method !== 'volf') return 1;
  return typeof levels === 'number' ? levels + 1 : levels;
}

/**
 * VoCo's optimiser and schedule (voco-spec 4, both repositories): `AdamW(lr=1e-4, amsgrad=True)`
 * with torch's default weight decay 0.01 (`--decay` is never passed), `WarmupCosineSchedule`
 * stepped every iteration. Choosing `ssl.method=voco` in a pretraining config brings these in
 * unless they are set explicitly; the other methods keep their preset's optimiser.
 */
export const VOCO_RECIPE: Readonly<Record<string, unknown>> = {
  'training.optimizer': 'adamw',
  'training.amsgrad': true,
  'training.lr': 1e-4,
  'training.weightDecay': 0.01,
  'training.scheduler.kind': 'warmup-cosine',
  'training.scheduler.unit': 'iteration',
};

/** The reference's warmup is 5000 steps (of 250k or 2M); runs shorter than 250k get 2 % of their length (at least 1). */
export function vocoWarmup(iterations: number): number {
  return Math.min(5000, Math.max(1, Math.ceil(iterations / 50)));
}

const isVoCoPretrain = (c: Obj): boolean => c['task'] === 'pretrain' && getPath(c, 'ssl.method') === 'voco';
const warmupOf = (c: Obj): unknown => { const it = getPath(c, 'training.iterations'); return typeof it === 'number' ? vocoWarmup(it) : it; };

/** ssl.method → the VoCo recipe; another method leaves the value as it is (its preset's). */
const VOCO_TIES: Tie[] = [
  ...Object.entries(VOCO_RECIPE).map(([to, value]): Tie => ({
    from: 'ssl.method', to, when: (c) => c['task'] === 'pretrain', derive: (v, c) => (v === 'voco' ? value : getPath(c, to)),
  })),
  { from: 'ssl.method', to: 'training.scheduler.warmup', when: (c) => c['task'] === 'pretrain', derive: (v, c) => (v === 'voco' ? warmupOf(c) : getPath(c, 'training.scheduler.warmup')) },
  { from: 'training.iterations', to: 'training.scheduler.warmup', when: (c) => isVoCoPretrain(c) && getPath(c, 'training.scheduler.kind') === 'warmup-cosine', derive: (_v, c) => warmupOf(c) },
];

const TIES: readonly Tie[] = [
  ...VOCO_TIES,
  { from: 'data.patchSize', to: 'model.inputSize', when: (c) => getPath(c, 'model.name') === 'pctnet', derive: (v) => v },
  { from: 'data.patchSize', to: 'inference.window', when: () => true, derive: (v) => v },
  { from: 'ssl.levels', to: 'model.classNum', when: (c) => c['task'] === 'pretrain', derive: (_v, c) => pretextHead(c) },
  { from: 'ssl.method', to: 'model.classNum', when: (c) => c['task'] === 'pretrain', derive: (_v, c) => pretextHead(c) },
];

function isExplicit(explicit: Set<string>, path: string): boolean {
  const parts = path.split('.');
  return parts.some((_, i) => explicit.has(parts.slice(0, i + 1).join('.')));
}

/** Merge `patch` over `base` (not validated) and let tied values follow; see the module comment. */
export function mergeConfig(base: Obj, patch: Obj): Obj {
  const explicit = new Set<string>();
  const merged = mergeValue(base, patch, '', explicit) as Obj;
  for (const tie of TIES) {
    if (!tie.when(merged) || isExplicit(explicit, tie.to)) continue;
    const now = getPath(merged, tie.to);
    const fromBefore = getPath(base, tie.from), fromAfter = getPath(merged, tie.from);
    const followed = tie.when(base) && deepEqual(getPath(base, tie.to), tie.derive(fromBefore, base));
    if (now === undefined || (!deepEqual(fromBefore, fromAfter) && followed)) setPath(merged, tie.to, tie.derive(fromAfter, merged));
  }
  return merged;
}

export interface ResolveOptions {
  /** Preset to start from; beats the config's own `preset` key. */
  preset?: PresetName;
  /** File the config came from, named in errors. */
  file?: string;
}

/** Re-throw a ConfigError with the file named (ConfigError keeps `path` for callers). */
export function withFile<T>(file: string | undefined, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (file !== undefined && err instanceof ConfigError && err.file === undefined) {
      throw new ConfigError(err.path, err.message.slice(err.path.length + 2), file);
    }
    throw err;
  }
}

/**
 * Resolve a partial config (as read from JSON/YAML) into a validated RunConfig: start from the
 * preset named by its `preset` key (default 'paper', or 'paper-finetune' when task is
 * 'finetune'), merge the rest over it, validate.
 */
export function resolveConfig(raw: unknown, opts: ResolveOptions = {}): RunConfig {
  return withFile(opts.file, () => {
    if (raw === null || raw === undefined) raw = {}; // an empty YAML file means "all defaults"
    if (!isPlainObject(raw)) throw new ConfigError('config', `must be a mapping of sections (task, model, data, ...), got ${show(raw)}`);
    const { preset, ...patch } = raw;
    const name = opts.preset ?? (preset === undefined ? (patch['task'] === 'finetune' ? 'paper-finetune' : 'paper') : oneOf(PRESETS)(preset, 'preset'));
    const merged = mergeConfig(presetConfig(name) as unknown as Obj, patch);
    return validateRunConfig(merged);
  });
}

const KEY_RE = /^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$/;

/** One parsed override: the dotted key and its value (JSON when it parses, else the raw string). */
export interface Override { key: string; value: unknown; text: string }

/** Parse `key.path=value` strings. A malformed one is a ConfigError naming it. */
export function parseOverrides(overrides: readonly string[]): Override[] {
  return overrides.map((text) => {
    const eq = text.indexOf('=');
    const key = eq < 0 ? text.trim() : text.slice(0, eq).trim();
    if (eq < 0 || !KEY_RE.test(key)) {
      throw new ConfigError(key === '' ? '(override)' : key, `override ${show(text)} must look like section.key=value (e.g. training.lr=5e-4)`);
    }
    const valueText = text.slice(eq + 1);
    let value: unknown;
    try { value = JSON.parse(valueText); } catch { value = valueText; }
    return { key, value, text };
  });
}

/** Nested patch object from overrides; a later override of the same key wins. */
export function overridesToPatch(list: readonly Override[]): Obj {
  const patch: Obj = {};
  for (const { key, value } of list) {
    const keys = key.split('.');
    let cur = patch;
    keys.slice(0, -1).forEach((k, i) => {
      if (!isPlainObject(cur[k])) {
        if (k in cur) fail(keys.slice(0, i + 1).join('.'), `is set to a value by one override and used as a section by another (${key})`);
        cur[k] = {};
      }
      cur = cur[k] as Obj;
    });
    cur[keys[keys.length - 1]!] = value;
  }
  return patch;
}

/**
 * Apply CLI overrides such as `['training.lr=5e-4', 'data.patchSize=[32,64,64]', 'ssl.mode=grid']`
 * to a config and re-validate. Values parse as JSON when they can, else as strings. Returns a new
 * config; errors are ConfigErrors naming the key and the override it came from.
 */
export function applyOverrides(config: RunConfig, overrides: readonly string[]): RunConfig {
  const list = parseOverrides(overrides);
  if (list.length === 0) return validateRunConfig(structuredClone(config));
  const presetOv = list.find((o) => o.key === 'preset');
  if (presetOv !== undefined) {
    fail('preset', `can only be chosen when a config is loaded (loadConfig / resolveConfig options), not applied to a resolved config (override ${show(presetOv.text)})`);
  }
  const patch = overridesToPatch(list);
  try {
    return validateRunConfig(mergeConfig(config as unknown as Obj, patch));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const src = list.find((o) => err.path === o.key || err.path.startsWith(`${o.key}.`) || err.path.startsWith(`${o.key}[`) || o.key.startsWith(`${err.path}.`));
    const note = src !== undefined ? `from override ${show(src.text)}` : `after overrides ${list.map((o) => show(o.text)).join(', ')}`;
    throw new ConfigError(err.path, `${err.message.slice(err.path.length + 2)} (${note})`);
  }
}
