/**
 * Atomic checkpoint output (util/atomic's primitive with checkpoint errors): a crash or an error
 * never leaves a partial checkpoint under the final name.
 */
import * as path from 'node:path';
import { CheckpointError } from '../../util/errors.js';
import { writeAtomicWith } from '../../util/atomic.js';

/** Run `write(fd)` on a temp file beside `target` and rename it over `target` on success. */
export function writeFileAtomic(target: string, write: (fd: number) => void): void {
  writeAtomicWith(target, write, (stage, e) => stage === 'open'
    ? new CheckpointError(target, `cannot create output in ${path.dirname(target)}: ${(e as Error).message}`, e)
    : new CheckpointError(target, `write failed: ${(e as Error).message}`, e));
}
