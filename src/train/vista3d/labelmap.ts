/**
 * Mapping a dataset's own label values onto VISTA3D's global class table (MONAI `RelabelD` with
 * `label_mappings.json`), by name: TotalSegmentator's `kidney_right`, `rib_left_3`,
 * `lung_upper_lobe_left` become "right kidney", "left rib 3", "left lung upper lobe".
 */
import { readFileSync } from 'node:fs';
import { VISTA3D_CLASS_NAMES } from '../../models/vista3d/classes.js';
import { MisfmError } from '../../util/errors.js';

const norm = (s: string): string => s.trim().toLowerCase().replace(/[_\s-]+/g, ' ');
const BY_NAME = new Map(VISTA3D_CLASS_NAMES.map((n, i) => [norm(n), i]));
const ALIASES: Readonly<Record<string, string>> = { 'urinary bladder': 'bladder' };

/** The VISTA3D class of one dataset class name, or null. */
export function globalClassOf(name: string): number | null {
  const n = norm(name);
  const parts = n.split(' ');
  const side = parts.find((p) => p === 'left' || p === 'right');
  const rest = parts.filter((p) => p !== side).join(' ');
  const candidates = [n, ALIASES[n] ?? '', side !== undefined ? `${side} ${rest}` : ''];
  for (const c of candidates) { const v = BY_NAME.get(c); if (v !== undefined && v > 0) return v; }
  return null;
}

export interface LabelMapping { map: Map<number, number>; unmapped: { value: number; name: string }[]; }

/** Local value -> global class for a {value: name} table; names without a VISTA3D class are listed. */
export function mapLabelNames(table: Readonly<Record<string, string>>): LabelMapping {
  const map = new Map<number, number>();
  const unmapped: { value: number; name: string }[] = [];
  for (const [v, name] of Object.entries(table)) {
    const g = globalClassOf(name);
    if (g === null) unmapped.push({ value: Number(v), name }); else map.set(Number(v), g);
  }
  return { map, unmapped };
}

/** Relabel a label array (unmapped values become 0). */
export function relabel(labels: ArrayLike<number>, m: ReadonlyMap<number, number>): Uint16Array {
  const out = new Uint16Array(labels.length);
  for (let i = 0; i < out.length; i++) out[i] = m.get(labels[i]!) ?? 0;
  return out;
}

/**
 * A label-name table from 'FILE' or 'FILE#key': a JSON object {value: name}, or an object holding
 * such tables under `key` (TotalSegmentator's classmap: `total`, `total_mr`). Errors name the file.
 */
export function readLabelTable(spec: string): Record<string, string> {
  const hash = spec.lastIndexOf('#');
  const file = hash > 0 ? spec.slice(0, hash) : spec;
  const key = hash > 0 ? spec.slice(hash + 1) : null;
  let raw: unknown;
  try { raw = JSON.parse(readFileSync(file, 'utf8')) as unknown; } catch (err) {
    throw new MisfmError('DATA', `cannot read the label table: ${err instanceof Error ? err.message : String(err)}`, { file });
  }
  let table = raw;
  if (key !== null) {
    const inner = typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? (raw as Record<string, unknown>)[key] : undefined;
    if (inner === undefined) throw new MisfmError('DATA', `the label table has no key '${key}'`, { file });
    table = inner;
  }
  const ok = typeof table === 'object' && table !== null && !Array.isArray(table)
    && Object.entries(table).every(([k, v]) => /^\d+$/.test(k) && typeof v === 'string');
  if (!ok) throw new MisfmError('DATA', `the label table${key !== null ? ` '${key}'` : ''} must be an object {"label value": "class name"}${key === null ? ' (name the table inside it with FILE#key)' : ''}`, { file });
  return table as Record<string, string>;
}
