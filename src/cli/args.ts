/** Small argument parsers shared by the commands. */
import { MisfmError } from '../util/errors.js';
import { KEEP_LARGEST_MODES } from '../config/types.js';

/** Parse the value of `--<flag>` as a positive integer, or throw an ARGUMENT error naming the flag. */
export function positiveInt(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) throw new MisfmError('ARGUMENT', `--${flag} must be a positive integer, got '${text}'`);
  return n;
}

/** Parse the value of `--<flag>` as an integer >= 0, or throw an ARGUMENT error naming the flag. */
export function nonNegativeInt(flag: string, text: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isSafeInteger(n) || n < 0) throw new MisfmError('ARGUMENT', `--${flag} must be a whole number >= 0, got '${text}'`);
  return n;
}

/** Parse `--keep-largest` (none, union or per-class), or throw an ARGUMENT error listing the choices. */
export function keepLargestMode(text: string): (typeof KEEP_LARGEST_MODES)[number] {
  const mode = KEEP_LARGEST_MODES.find((m) => m === text);
  if (mode === undefined) throw new MisfmError('ARGUMENT', `--keep-largest must be one of ${KEEP_LARGEST_MODES.join(', ')}, got '${text}'`);
  return mode;
}
