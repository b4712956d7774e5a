/**
 * Turning user class requests (names or class-table values) into VISTA3D class indices, with the
 * bundle's rules: names case-insensitive ("right kidney", "right_kidney" and "Right Kidney" agree),
 * kidney / lung / bone expanded to their parts, only classes trained for automatic segmentation
 * accepted without clicks. Errors name the request and suggest a close name.
 */
import { MisfmError } from '../../util/errors.js';
import { suggest } from '../../models/config.js';
import { AUTO_SUPPORTED, EVERYTHING_LABELS, SUBCLASS, VISTA3D_CLASS_NAMES } from '../../models/vista3d/classes.js';

const norm = (s: string): string => s.trim().toLowerCase().replace(/[_\s-]+/g, ' ');
const BY_NAME = new Map(VISTA3D_CLASS_NAMES.map((n, i) => [norm(n), i]));

/** The class table as value -> name (background excluded). */
export function classTable(): Map<number, string> {
  return new Map(VISTA3D_CLASS_NAMES.map((n, i) => [i, n] as [number, string]).filter(([i]) => i > 0));
}

/** One class request (name or value) to its table value; throws naming the request. */
export function classValue(item: number | string): number {
  if (typeof item === 'number' || /^\s*\d+\s*$/.test(item)) {
    const v = Number(item);
    if (Number.isInteger(v) && v >= 1 && v < VISTA3D_CLASS_NAMES.length) return v;
    throw new MisfmError('ARGUMENT', `unknown class ${JSON.stringify(item)}: class-table values are 1..${VISTA3D_CLASS_NAMES.length - 1}`);
  }
  const v = BY_NAME.get(norm(item));
  if (v === undefined || v === 0) throw new MisfmError('ARGUMENT', `unknown class '${item}'${suggest(norm(item), [...BY_NAME.keys()])} (names are those of the VISTA3D class table, e.g. liver, spleen, aorta)`);
  return v;
}

/** Requested classes for automatic segmentation, expanded and checked, in request order without repeats. */
export function autoClasses(request: readonly (number | string)[] | 'everything'): number[] {
  if (request === 'everything') return [...EVERYTHING_LABELS];
  if (request.length === 0) throw new MisfmError('ARGUMENT', 'no classes requested (give class names or values, or everything)');
  const out: number[] = [];
  for (const item of request) {
    const v = classValue(item);
    for (const c of SUBCLASS[v] ?? [v]) {
      if (!AUTO_SUPPORTED.includes(c)) {
        throw new MisfmError('ARGUMENT', `class '${VISTA3D_CLASS_NAMES[c]}' (${c}) is not segmented automatically by VISTA3D; segment it with clicks`);
      }
      if (!out.includes(c)) out.push(c);
    }
  }
  return out;
}
