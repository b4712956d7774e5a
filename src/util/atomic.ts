/**
 * Atomic file writes: readers (and a crash) see either the old file or the complete new one,
 * never a partial write. Data go to a temporary name in the same folder (same file system, so
 * rename is atomic), are fsynced, and the temp file is renamed over the target.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { MisfmError } from './errors.js';

function tempNameFor(target: string): string {
  const dir = path.dirname(target);
  // A dot prefix keeps it out of globs like *.json; pid + random makes it unique across workers.
  return path.join(dir, `.${path.basename(target)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

function writeError(target: string, err: unknown): MisfmError {
  const reason = err instanceof Error ? err.message : String(err);
  return new MisfmError('DATA', `cannot write file: ${reason}`, { file: target, cause: err });
}

/** fsync the folder so the rename itself survives a power cut; best effort (not on Windows). */
function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Some platforms cannot open or fsync a directory; the rename is still atomic.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * The one atomic-write primitive: `write(fd)` fills a temp file beside `file`, which is fsynced
 * and renamed over `file`. On any failure the temp file is removed, the target is untouched, and
 * `fail(stage, err)` builds the error to throw ('open': the temp file could not be created).
 */
export function writeAtomicWith(file: string, write: (fd: number) => void, fail: (stage: 'open' | 'write', err: unknown) => Error = (_s, e) => writeError(file, e)): void {
  const tmp = tempNameFor(file);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'wx', 0o644);
  } catch (err) {
    throw fail('open', err);
  }
  try {
    write(fd);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (err) {
    if (fd !== undefined) {
      try { fs.closeSync(fd); } catch { /* already failing; keep the first error */ }
    }
    fs.rmSync(tmp, { force: true });
    throw err instanceof MisfmError ? err : fail('write', err);
  }
  syncDir(path.dirname(file));
}

/**
 * Write `data` to `file` atomically (temp file in the same folder, fsync, rename). The folder
 * must exist. On failure the temp file is removed, the target is untouched, and a MisfmError
 * naming the file is thrown.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  writeAtomicWith(file, (fd) => {
    let off = 0;
    while (off < bytes.length) off += fs.writeSync(fd, bytes, off, bytes.length - off);
  });
}

/** Async twin of `writeFileAtomic`, for large files written off the main loop. */
export async function writeFileAtomicAsync(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = tempNameFor(file);
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(tmp, 'wx', 0o644);
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fsp.rename(tmp, file);
  } catch (err) {
    if (handle !== undefined) await handle.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true });
    throw writeError(file, err);
  }
  syncDir(path.dirname(file));
}

/** Serialise `value` as JSON (2-space indent by default, trailing newline) and write it atomically. */
export function writeJsonAtomic(file: string, value: unknown, indent = 2): void {
  let text: string | undefined;
  try {
    text = JSON.stringify(value, null, indent);
  } catch (err) {
    // Circular structures and BigInt values land here.
    throw new MisfmError('ARGUMENT', `value is not JSON-serialisable: ${err instanceof Error ? err.message : String(err)}`, { file, cause: err });
  }
  if (text === undefined) throw new MisfmError('ARGUMENT', `value is not JSON-serialisable (${typeof value})`, { file });
  writeFileAtomic(file, `${text}\n`);
}
