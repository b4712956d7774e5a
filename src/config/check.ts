/**
 * Small composable validators for config values. Each takes the value and its dotted key and
 * returns the typed value or throws a ConfigError that names the key, shows the bad value and
 * says what is allowed.
 */
import { ConfigError } from '../util/errors.js';
import { suggest } from '../models/config.js';
import type { Triple } from './types.js';

/** Validates `value` found at dotted key `path`. */
export type Check<T> = (value: unknown, path: string) => T;

/** The value as it appears in a message. */
export function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

export function fail(path: string, message: string): never {
  throw new ConfigError(path, message);
}

function rangeText(o: { min?: number; max?: number; minExclusive?: boolean; maxExclusive?: boolean }): string {
  const lo = o.min === undefined ? '' : `${o.minExclusive === true ? '>' : '>='} ${o.min}`;
  const hi = o.max === undefined ? '' : `${o.maxExclusive === true ? '<' : '<='} ${o.max}`;
  return [lo, hi].filter((s) => s !== '').join(' and ');
}

export interface NumRange { min?: number; max?: number; minExclusive?: boolean; maxExclusive?: boolean }

function inRange(v: number, o: NumRange): boolean {
  if (o.min !== undefined && (o.minExclusive === true ? !(v > o.min) : !(v >= o.min))) return false;
  if (o.max !== undefined && (o.maxExclusive === true ? !(v < o.max) : !(v <= o.max))) return false;
  return true;
}

/** A finite number, optionally within a range. */
export function num(o: NumRange = {}): Check<number> {
  return (v, path) => {
    const r = rangeText(o);
    if (typeof v !== 'number' || !Number.isFinite(v)) fail(path, `must be a number${r === '' ? '' : ` ${r}`}, got ${show(v)}`);
    if (!inRange(v, o)) fail(path, `must be a number ${r}, got ${show(v)}`);
    return v;
  };
}

/** An integer (safe), optionally within a range. */
export function int(o: { min?: number; max?: number } = {}): Check<number> {
  return (v, path) => {
    const r = rangeText(o);
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) fail(path, `must be an integer${r === '' ? '' : ` ${r}`}, got ${show(v)}`);
    if (!inRange(v, o)) fail(path, `must be an integer ${r}, got ${show(v)}`);
    return v;
  };
}

export const bool: Check<boolean> = (v, path) => {
  if (typeof v !== 'boolean') fail(path, `must be true or false, got ${show(v)}`);
  return v;
};

/** A non-empty string. */
export const str: Check<string> = (v, path) => {
  if (typeof v !== 'string' || v.trim() === '') fail(path, `must be a non-empty string, got ${show(v)}`);
  return v;
};

/** One of a fixed set of strings; a near miss gets a suggestion. */
export function oneOf<T extends string>(allowed: readonly T[]): Check<T> {
  return (v, path) => {
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
      fail(path, `must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${show(v)}${typeof v === 'string' ? suggest(v, allowed) : ''}`);
    }
    return v as T;
  };
}

/** null, or what `c` accepts (the error then says that null is allowed too). */
export function nullable<T>(c: Check<T>): Check<T | null> {
  return (v, path) => {
    if (v === null) return null;
    try {
      return c(v, path);
    } catch (err) {
      if (err instanceof ConfigError && err.path === path) fail(path, `${err.message.slice(path.length + 2)} (or null for none)`);
      throw err;
    }
  };
}

/** A list whose items `c` accepts, with a length constraint. */
export function list<T>(c: Check<T>, o: { len?: number; min?: number } = {}): Check<T[]> {
  return (v, path) => {
    const want = o.len !== undefined ? `a list of ${o.len}` : o.min !== undefined && o.min > 0 ? `a list of at least ${o.min}` : 'a list';
    if (!Array.isArray(v)) fail(path, `must be ${want} values, got ${show(v)}`);
    if ((o.len !== undefined && v.length !== o.len) || (o.min !== undefined && v.length < o.min)) {
      fail(path, `must be ${want} values, got ${v.length}: ${show(v)}`);
    }
    return v.map((x, i) => c(x, `${path}[${i}]`));
  };
}

/** [D, H, W] of integers >= min. */
export function triple(min = 1): Check<Triple> {
  return list(int({ min }), { len: 3 }) as Check<Triple>;
}

/** A plain object (not null, not a list). */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Check that `v` is an object with exactly the given keys: an unknown key is an error with a
 * suggestion and the allowed list (never silently ignored), a missing one says it is required.
 */
export function strictObject(v: unknown, path: string, keys: readonly string[]): Record<string, unknown> {
  if (!isPlainObject(v)) fail(path, `must be a section (an object with keys ${keys.join(', ')}), got ${show(v)}`);
  for (const k of Object.keys(v)) {
    if (!keys.includes(k)) fail(`${path}.${k}`, `unknown key${suggest(k, keys)}; allowed keys of ${path}: ${keys.join(', ')}`);
  }
  for (const k of keys) if (!(k in v)) fail(`${path}.${k}`, 'is required');
  return v;
}

/** Validate an object field by field with `fields` (exact keys; see strictObject). */
export function section<T extends object>(v: unknown, path: string, fields: { [K in keyof T]: Check<T[K]> }): T {
  const keys = Object.keys(fields);
  const obj = strictObject(v, path, keys);
  const out: Record<string, unknown> = {};
  for (const k of keys) out[k] = (fields as Record<string, Check<unknown>>)[k]!(obj[k], `${path}.${k}`);
  return out as T;
}

/** Turn a section validator into a Check (for nesting). */
export function sectionOf<T extends object>(fields: { [K in keyof T]: Check<T[K]> }): Check<T> {
  return (v, path) => section<T>(v, path, fields);
}
