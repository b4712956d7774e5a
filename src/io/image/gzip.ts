/**
 * Gzip integrity checks without decompressing healthy files twice.
 *
 * A gzip member ends with ISIZE, the uncompressed length mod 2^32. When that trailer equals the
 * size the image header promises, the file is whole (a truncated file ends in arbitrary deflate
 * bytes, which match by chance with probability 2^-32). Otherwise (multi-member files, or real
 * damage) the range is decompressed in a stream to tell which it is, and to name the problem.
 * A full check (CRC included) costs one extra decompression, about as long as itk-wasm's own
 * decode, so it is opt-in.
 */
import { createReadStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as zlib from 'node:zlib';
import { ImageIOError } from '../../util/errors.js';

/** Decompress as much of a gzip prefix as the bytes allow (for reading headers). */
export function gunzipHead(head: Buffer, file: string): Buffer {
  try {
    return zlib.gunzipSync(head, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  } catch (err) {
    throw new ImageIOError(file, `corrupt gzip data: ${err instanceof Error ? err.message : String(err)}`, err);
  }
}

/** Uncompressed byte count of a gzip stream in [start, end) of `file`; rejects on zlib errors. */
function inflatedLength(file: string, start: number, end: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let total = 0;
    const src = createReadStream(file, { start, end: end - 1 });
    const gunzip = zlib.createGunzip();
    gunzip.on('data', (chunk: Buffer) => { total += chunk.length; });
    gunzip.on('end', () => resolve(total));
    gunzip.on('error', reject);
    src.on('error', reject);
    src.pipe(gunzip);
  });
}

/**
 * Check that the gzip data in bytes [start, end) of `dataFile` inflate to at least `expected`
 * bytes. Errors name `reportFile` (the image the user asked for; the header for detached data).
 */
export async function checkGzipRange(dataFile: string, start: number, end: number, expected: number, reportFile = dataFile, full = false): Promise<void> {
  const where = dataFile !== reportFile ? ` in ${dataFile}` : '';
  if (end - start < 18) throw new ImageIOError(reportFile, `truncated gzip data${where}: only ${end - start} bytes`);
  const fh = await fs.open(dataFile, 'r');
  let isize: number;
  try {
    const tail = Buffer.alloc(4);
    await fh.read(tail, 0, 4, end - 4);
    isize = tail.readUInt32LE(0);
  } finally {
    await fh.close();
  }
  // `full` also verifies the CRC, which catches damage inside an otherwise complete file.
  if (isize === expected % 2 ** 32 && !full) return;
  let total: number;
  try {
    total = await inflatedLength(dataFile, start, end);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new ImageIOError(reportFile, `truncated or corrupt gzip data${where} (${reason}); the header needs ${expected} uncompressed bytes`, err);
  }
  if (total < expected) {
    throw new ImageIOError(reportFile, `truncated data${where}: decompresses to ${total} bytes, the header needs ${expected}`);
  }
}
