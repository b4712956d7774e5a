/**
 * JSON-lines logs: one JSON object per line, appended and flushed line by line, so a training
 * log survives a crash and a resumed run simply keeps appending to the same file.
 */
import * as fs from 'node:fs';
import { MisfmError } from './errors.js';

/** Options for `JsonlLogger`. */
export interface JsonlLoggerOptions {
  /** Clock for the `time` field (ms since epoch); injectable for tests. Default Date.now. */
  clock?: () => number;
  /** fsync after every line (slow; for logs that must survive a power cut). Default false. */
  fsync?: boolean;
}

/**
 * Append-only JSON-lines logger. Each `log(record)` writes `{"time": ISO-8601, ...record}` and a
 * newline with a single write call. Opening an existing file appends to it. If that file ends in
 * an unterminated line (a crash mid-write), the logger first repairs it: a tail that parses as
 * JSON gets its newline, garbage is cut off and reported in `repairedTail`.
 */
export class JsonlLogger {
  readonly path: string;
  /** The unparsable partial last line removed on open, if there was one. */
  readonly repairedTail: string | undefined;
  private fd: number | undefined;
  private readonly clock: () => number;
  private readonly doSync: boolean;

  constructor(file: string, options: JsonlLoggerOptions = {}) {
    this.path = file;
    this.clock = options.clock ?? Date.now;
    this.doSync = options.fsync ?? false;
    try {
      this.fd = fs.openSync(file, 'a+');
      this.repairedTail = repairTail(this.fd);
    } catch (err) {
      if (this.fd !== undefined) fs.closeSync(this.fd);
      throw new MisfmError('DATA', `cannot open log for appending: ${err instanceof Error ? err.message : String(err)}`, { file, cause: err });
    }
  }

  /** Append one record. A `time` key in `record` overrides the automatic one. */
  log(record: Record<string, unknown>): void {
    if (this.fd === undefined) throw new MisfmError('ARGUMENT', 'log after close', { file: this.path });
    let line: string;
    try {
      line = JSON.stringify({ time: new Date(this.clock()).toISOString(), ...record });
    } catch (err) {
      throw new MisfmError('ARGUMENT', `record is not JSON-serialisable: ${err instanceof Error ? err.message : String(err)}`, { file: this.path, cause: err });
    }
    const bytes = Buffer.from(`${line}\n`, 'utf8');
    let off = 0;
    while (off < bytes.length) off += fs.writeSync(this.fd, bytes, off, bytes.length - off);
    if (this.doSync) fs.fsyncSync(this.fd);
  }

  /** Close the file. Further `log` calls throw. Idempotent. */
  close(): void {
    if (this.fd !== undefined) {
      fs.closeSync(this.fd);
      this.fd = undefined;
    }
  }
}

/**
 * Make the file end with a newline. Returns the removed garbage tail, if any. Opened with 'a+',
 * so writes always append; truncation is by fd.
 */
function repairTail(fd: number): string | undefined {
  const size = fs.fstatSync(fd).size;
  if (size === 0) return undefined;
  const last = Buffer.alloc(1);
  fs.readSync(fd, last, 0, 1, size - 1);
  if (last[0] === 0x0a) return undefined;
  // Find the start of the unterminated line by scanning back in chunks.
  const chunk = Buffer.alloc(65536);
  let lineStart = 0;
  let end = size;
  search: while (end > 0) {
    const start = Math.max(0, end - chunk.length);
    const n = fs.readSync(fd, chunk, 0, end - start, start);
    for (let i = n - 1; i >= 0; i--) {
      if (chunk[i] === 0x0a) {
        lineStart = start + i + 1;
        break search;
      }
    }
    end = start;
  }
  const tail = Buffer.alloc(size - lineStart);
  fs.readSync(fd, tail, 0, tail.length, lineStart);
  const text = tail.toString('utf8');
  if (parsesAsObject(text)) {
    fs.writeSync(fd, '\n');
    return undefined;
  }
  fs.ftruncateSync(fd, lineStart);
  return text;
}

function parsesAsObject(text: string): boolean {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v);
  } catch {
    return false;
  }
}

/** Result of `readJsonl`. */
export interface JsonlContents<T> {
  records: T[];
  /**
   * The final line when it was cut short (no trailing newline and not valid JSON), as left by a
   * crash mid-write; it is not in `records`.
   */
  truncatedTail: string | undefined;
}

/**
 * Read a JSON-lines file into objects. Blank lines are skipped. A truncated last line (no
 * newline, unparsable) is tolerated and reported in `truncatedTail`; any other bad line throws a
 * MisfmError naming the file and line number. A missing file throws too.
 */
export function readJsonl<T = Record<string, unknown>>(file: string): JsonlContents<T> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new MisfmError('DATA', `cannot read JSON-lines file: ${err instanceof Error ? err.message : String(err)}`, { file, cause: err });
  }
  const lines = text.split('\n');
  const endsWithNewline = text.endsWith('\n');
  const records: T[] = [];
  let truncatedTail: string | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      if (i === lines.length - 1 && !endsWithNewline) {
        truncatedTail = line;
        break;
      }
      throw new MisfmError('DATA', `line ${i + 1} is not valid JSON (${err instanceof Error ? err.message : String(err)}): ${line.slice(0, 80)}`, { file, cause: err });
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new MisfmError('DATA', `line ${i + 1} is not a JSON object: ${line.slice(0, 80)}`, { file });
    }
    records.push(value as T);
  }
  return { records, truncatedTail };
}
