/**
 * Atomic file output: write to a temporary name in the target folder, then rename, so a crash or
 * an error never leaves a partial checkpoint under the final name.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { CheckpointError, MisfmError } from '../../util/errors.js';

/** Run `write(fd)` on a temp file beside `target` and rename it over `target` on success. */
export function writeFileAtomic(target: string, write: (fd: number) => void): void {
  const dir = path.dirname(target);
  const tmp = path.join(dir, `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let fd: number;
  try {
    fd = fs.openSync(tmp, 'wx');
  } catch (e) {
    throw new CheckpointError(target, `cannot create output in ${dir}: ${(e as Error).message}`, e);
  }
  try {
    try {
      write(fd);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, target);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    if (e instanceof MisfmError) throw e;
    throw new CheckpointError(target, `write failed: ${(e as Error).message}`, e);
  }
}
