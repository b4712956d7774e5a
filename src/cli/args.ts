/** Small argument parsers shared by the commands. */
import { MisfmError } from '../util/errors.js';

/** Parse the value of `--<flag>` as a positive integer, or throw an ARGUMENT error naming the flag. */
export function positiveInt(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) throw new MisfmError('ARGUMENT', `--${flag} must be a positive integer, got '${text}'`);
  return n;
}
