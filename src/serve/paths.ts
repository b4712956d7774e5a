/**
 * Confinement of file access to the server's roots (the data folder and the output folder).
 * A client names files by a relative path inside a root; absolute paths, `..` segments, NUL bytes
 * and anything whose real path (symbolic links resolved) leaves the root are refused.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MisfmError } from '../util/errors.js';

/** A refused path: the HTTP layer answers 403 (outside a root) or 404 (missing). */
export class PathError extends MisfmError {
  readonly status: 403 | 404;
  constructor(status: 403 | 404, message: string) {
    super('ARGUMENT', message);
    this.name = 'PathError';
    this.status = status;
  }
}

/** `child` equals `root` or lies below it (both absolute, normalised). */
export function isInside(root: string, child: string): boolean {
  const rel = path.relative(root, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * The real absolute path of `rel` inside `root` (whose real path the caller resolved once).
 * Throws PathError 403 for absolute paths, `..`, NUL, backslashes and symbolic-link escapes,
 * 404 when nothing exists there.
 */
export function resolveInside(realRoot: string, rel: string): string {
  if (typeof rel !== 'string' || rel === '') throw new PathError(403, 'empty path');
  if (rel.includes('\0') || rel.includes('\\')) throw new PathError(403, `path '${rel.replace(/\0/g, '\\0')}' holds a forbidden character`);
  if (path.isAbsolute(rel) || /^[a-zA-Z]:/.test(rel)) throw new PathError(403, `absolute path '${rel}' refused: name files relative to the served folder`);
  if (rel.split('/').some((s) => s === '..')) throw new PathError(403, `path '${rel}' leaves the served folder`);
  const joined = path.join(realRoot, rel);
  let real: string;
  try {
    real = fs.realpathSync(joined);
  } catch {
    throw new PathError(404, `'${rel}' not found`);
  }
  if (!isInside(realRoot, real)) throw new PathError(403, `'${rel}' resolves outside the served folder (symbolic link)`);
  return real;
}
