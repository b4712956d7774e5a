/**
 * Reading PyMIC `.cfg` files (spec 5): INI as Python's configparser reads it (keys lower-cased,
 * `=` or `:` delimiters, full-line `#`/`;` comments, indented continuation lines, no inline
 * comments), with values typed like PyMIC's `parse_value_from_string`: int, then float, then
 * list, then bool, then None, else the string. Empty values are dropped, as PyMIC does.
 */
import { ConfigError, MisfmError } from '../util/errors.js';

export type PymicValue = number | boolean | string | null | PymicValue[];
/** section → lower-cased key → value. Sections keep their case (configparser does too). */
export type PymicConfig = Record<string, Record<string, PymicValue>>;

const INT_RE = /^-?\d+$/;
// PyMIC accepts `1.5` and `1e-3`; the wider JS float syntax (1.5e-3, .5) is accepted too, since
// PyMIC would keep those as strings it then cannot use as numbers.
const FLOAT_RE = /^[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$/;

/** Split list contents at top-level commas (brackets nest). */
function splitTopLevel(s: string): string[] {
  const parts: string[] = [];
  let depth = 0, start = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch === '[') depth++;
    else if (ch === ']') depth--;
    else if (ch === ',' && depth === 0) { parts.push(s.slice(start, i)); start = i + 1; }
  }
  parts.push(s.slice(start));
  return parts;
}

/** Type one PyMIC value string (already stripped). */
export function parsePymicValue(text: string): PymicValue {
  const s = text.trim();
  if (INT_RE.test(s)) return Number.parseInt(s, 10);
  if (FLOAT_RE.test(s)) return Number.parseFloat(s);
  if (s.length >= 2 && s.startsWith('[') && s.endsWith(']')) {
    const inner = s.slice(1, -1).trim();
    if (inner === '') return [];
    return splitTopLevel(inner).map((item) => parsePymicValue(item));
  }
  const lower = s.toLowerCase();
  if (lower === 'true') return true;
  if (lower === 'false') return false;
  if (lower === 'none') return null;
  return s;
}

/** Parse a PyMIC .cfg text. Structural problems are errors naming the file and line. */
export function parsePymicCfg(text: string, file = '<cfg>'): PymicConfig {
  const out: PymicConfig = {};
  const raw: Record<string, Record<string, string>> = {};
  let section: string | undefined;
  let key: string | undefined;
  const lines = text.split(/\r?\n/);
  lines.forEach((line, i) => {
    const at = `line ${i + 1}`;
    const stripped = line.trim();
    if (stripped === '') { key = undefined; return; }
    if (stripped.startsWith('#') || stripped.startsWith(';')) return;
    if (/^\s/.test(line) && key !== undefined && section !== undefined) {
      // configparser continuation: an indented line extends the previous value.
      raw[section]![key] = `${raw[section]![key]}\n${stripped}`;
      return;
    }
    const head = /^\[([^\]]+)\]\s*$/.exec(stripped);
    if (head !== null) {
      section = head[1]!.trim();
      if (section in raw) throw new MisfmError('CONFIG', `${at}: section [${section}] appears twice`, { file });
      raw[section] = {};
      key = undefined;
      return;
    }
    const m = /^([^=:]+?)\s*[=:]\s*(.*)$/.exec(stripped);
    if (m === null) throw new MisfmError('CONFIG', `${at}: expected 'key = value' or '[section]', got ${JSON.stringify(stripped)}`, { file });
    if (section === undefined) throw new MisfmError('CONFIG', `${at}: key ${JSON.stringify(m[1])} comes before any [section] header`, { file });
    key = m[1]!.trim().toLowerCase();
    if (key in raw[section]!) throw new MisfmError('CONFIG', `${at}: key '${key}' appears twice in [${section}] (keys are case-insensitive)`, { file });
    raw[section]![key] = m[2]!;
  });
  for (const [sec, kv] of Object.entries(raw)) {
    out[sec] = {};
    for (const [k, v] of Object.entries(kv)) {
      if (v.trim() === '') continue; // PyMIC drops empty values
      out[sec]![k] = parsePymicValue(v);
    }
  }
  return out;
}

/** A ConfigError for a PyMIC key, e.g. `training.lr_scheduler`. */
export function pymicKeyError(section: string, key: string, message: string, file?: string): ConfigError {
  return new ConfigError(`${section}.${key}`, message, file);
}
