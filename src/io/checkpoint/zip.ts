/**
 * Minimal zip reader for PyTorch archives (the writer is in zip-write.ts).
 *
 * The reader works by random access on a file descriptor (central directory first, then one
 * read per entry), so a multi-GB checkpoint is read once and never held twice. It handles
 * STORED and DEFLATE entries, zip64 and data descriptors (PyTorch sets flag bit 3, leaving the
 * local header sizes zero, so sizes always come from the central directory).
 */
import * as fs from 'node:fs';
import { crc32, inflateRawSync } from 'node:zlib';
import { CheckpointError } from '../../util/errors.js';
import {
  IO_CHUNK, SIG_CENTRAL, SIG_EOCD, SIG_EOCD64, SIG_EOCD64_LOCATOR, SIG_LOCAL, U16_MAX, U32_MAX,
} from './zip-format.js';

/** One entry of the central directory. */
export interface ZipEntry {
  name: string;
  /** 0 = STORED, 8 = DEFLATE. */
  method: number;
  compressedSize: number;
  size: number;
  crc32: number;
  localHeaderOffset: number;
}

/** Read exactly `length` bytes at `position` into `dst` (looping over the 2 GiB read limit). */
function readFully(fd: number, dst: Uint8Array, position: number): number {
  let done = 0;
  while (done < dst.byteLength) {
    const n = fs.readSync(fd, dst, done, Math.min(IO_CHUNK, dst.byteLength - done), position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/** A fresh, 8-byte aligned, uninitialised byte array (not a pooled Buffer slice). */
function allocBytes(n: number): Uint8Array {
  const b = Buffer.allocUnsafeSlow(n);
  return new Uint8Array(b.buffer, b.byteOffset, n);
}

function u64(view: DataView, at: number, what: string, file: string): number {
  const v = view.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new CheckpointError(file, `corrupt zip: ${what} ${v} is out of range`);
  return Number(v);
}

/** Random-access reader over a zip file. Call close() when done (or use `using`). */
export class ZipReader {
  readonly path: string;
  readonly fileSize: number;
  readonly entries: readonly ZipEntry[];
  private readonly fd: number;
  private readonly byName: Map<string, ZipEntry>;

  private constructor(path: string, fd: number, fileSize: number, entries: ZipEntry[]) {
    this.path = path;
    this.fd = fd;
    this.fileSize = fileSize;
    this.entries = entries;
    this.byName = new Map(entries.map((e) => [e.name, e]));
  }

  /** Open a zip file and parse its central directory. Throws CheckpointError if it is not a readable zip. */
  static open(path: string): ZipReader {
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (e) {
      throw new CheckpointError(path, `cannot open: ${(e as Error).message}`, e);
    }
    try {
      const size = fs.fstatSync(fd).size;
      return new ZipReader(path, fd, size, readCentralDirectory(path, fd, size));
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  entry(name: string): ZipEntry | undefined {
    return this.byName.get(name);
  }

  /** File offset where an entry's (compressed) data starts. */
  dataOffset(e: ZipEntry): number {
    const hdr = new Uint8Array(30);
    if (readFully(this.fd, hdr, e.localHeaderOffset) < 30) {
      throw new CheckpointError(this.path, `truncated zip: local header of '${e.name}' lies beyond the end of the file`);
    }
    const v = new DataView(hdr.buffer);
    if (v.getUint32(0, true) !== SIG_LOCAL) {
      throw new CheckpointError(this.path, `corrupt zip: no local header for '${e.name}' at offset ${e.localHeaderOffset}`);
    }
    return e.localHeaderOffset + 30 + v.getUint16(26, true) + v.getUint16(28, true);
  }

  /**
   * Read an entry's uncompressed bytes into a fresh aligned array.
   * `verify` (default true) checks the CRC-32; at ~3 GB/s it costs little next to the disk read.
   */
  read(nameOrEntry: string | ZipEntry, verify = true): Uint8Array {
    const e = typeof nameOrEntry === 'string' ? this.byName.get(nameOrEntry) : nameOrEntry;
    if (e === undefined) throw new CheckpointError(this.path, `zip entry '${String(nameOrEntry)}' not found`);
    const start = this.dataOffset(e);
    const end = start + e.compressedSize;
    if (end > this.fileSize) {
      throw new CheckpointError(this.path,
        `truncated file: entry '${e.name}' needs bytes up to ${end} but the file has only ${this.fileSize}`);
    }
    let out: Uint8Array;
    if (e.method === 0) {
      if (e.compressedSize !== e.size) {
        throw new CheckpointError(this.path, `corrupt zip: stored entry '${e.name}' has sizes ${e.compressedSize} != ${e.size}`);
      }
      out = allocBytes(e.size);
      readFully(this.fd, out, start);
    } else if (e.method === 8) {
      const packed = allocBytes(e.compressedSize);
      readFully(this.fd, packed, start);
      let raw: Buffer;
      try {
        raw = inflateRawSync(packed);
      } catch (err) {
        throw new CheckpointError(this.path, `corrupt zip: cannot inflate '${e.name}': ${(err as Error).message}`, err);
      }
      if (raw.byteLength !== e.size) {
        throw new CheckpointError(this.path, `corrupt zip: '${e.name}' inflated to ${raw.byteLength} bytes, expected ${e.size}`);
      }
      out = allocBytes(e.size);
      out.set(raw);
    } else {
      throw new CheckpointError(this.path, `unsupported zip compression method ${e.method} for '${e.name}' (only stored and deflate)`);
    }
    if (verify && crc32(out) !== e.crc32) {
      throw new CheckpointError(this.path, `corrupt zip: CRC-32 mismatch in '${e.name}'`);
    }
    return out;
  }
}

function readCentralDirectory(file: string, fd: number, size: number): ZipEntry[] {
  // The EOCD record is 22 bytes plus a comment of up to 64 KiB; scan the tail backwards for it.
  const tailLen = Math.min(size, 22 + U16_MAX + 20);
  const tail = new Uint8Array(tailLen);
  readFully(fd, tail, size - tailLen);
  const tv = new DataView(tail.buffer);
  let eocd = -1;
  for (let i = tailLen - 22; i >= 0; i--) {
    if (tv.getUint32(i, true) === SIG_EOCD && i + 22 + tv.getUint16(i + 20, true) <= tailLen) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    throw new CheckpointError(file, 'not a readable zip archive: no end-of-central-directory record (the file is truncated or not a zip)');
  }
  let count = tv.getUint16(eocd + 10, true);
  let cdSize = tv.getUint32(eocd + 12, true);
  let cdOffset = tv.getUint32(eocd + 16, true);
  if (eocd >= 20 && tv.getUint32(eocd - 20, true) === SIG_EOCD64_LOCATOR) {
    const at = u64(tv, eocd - 20 + 8, 'zip64 EOCD offset', file);
    const rec = new Uint8Array(56);
    if (readFully(fd, rec, at) < 56) throw new CheckpointError(file, 'truncated zip: zip64 end-of-central-directory record missing');
    const rv = new DataView(rec.buffer);
    if (rv.getUint32(0, true) !== SIG_EOCD64) throw new CheckpointError(file, 'corrupt zip: bad zip64 end-of-central-directory record');
    count = u64(rv, 32, 'entry count', file);
    cdSize = u64(rv, 40, 'central directory size', file);
    cdOffset = u64(rv, 48, 'central directory offset', file);
  }
  if (cdOffset + cdSize > size) {
    throw new CheckpointError(file, `truncated or corrupt zip: central directory (${cdOffset}+${cdSize}) lies beyond the file size ${size}`);
  }
  const cd = new Uint8Array(cdSize);
  readFully(fd, cd, cdOffset);
  const v = new DataView(cd.buffer);
  const dec = new TextDecoder();
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cdSize || v.getUint32(p, true) !== SIG_CENTRAL) {
      throw new CheckpointError(file, `corrupt zip: central directory entry ${i} of ${count} is damaged`);
    }
    const flags = v.getUint16(p + 8, true);
    const nameLen = v.getUint16(p + 28, true);
    const extraLen = v.getUint16(p + 30, true);
    const commentLen = v.getUint16(p + 32, true);
    const name = dec.decode(cd.subarray(p + 46, p + 46 + nameLen));
    if (flags & 1) throw new CheckpointError(file, `encrypted zip entry '${name}' is not supported`);
    const e: ZipEntry = {
      name,
      method: v.getUint16(p + 10, true),
      crc32: v.getUint32(p + 16, true),
      compressedSize: v.getUint32(p + 20, true),
      size: v.getUint32(p + 24, true),
      localHeaderOffset: v.getUint32(p + 42, true),
    };
    applyZip64Extra(file, e, v, p + 46 + nameLen, extraLen);
    if (e.localHeaderOffset + 30 > size) {
      throw new CheckpointError(file, `truncated file: entry '${name}' starts at ${e.localHeaderOffset}, beyond the file size ${size}`);
    }
    entries.push(e);
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

/** The zip64 extra field holds, in order, only those fields whose 32-bit slot is 0xFFFFFFFF. */
function applyZip64Extra(file: string, e: ZipEntry, v: DataView, start: number, len: number): void {
  const needs = e.size === U32_MAX || e.compressedSize === U32_MAX || e.localHeaderOffset === U32_MAX;
  if (!needs) return;
  for (let q = start; q + 4 <= start + len;) {
    const id = v.getUint16(q, true);
    const sz = v.getUint16(q + 2, true);
    if (id === 1) {
      let r = q + 4;
      const take = (what: string): number => {
        if (r + 8 > q + 4 + sz) throw new CheckpointError(file, `corrupt zip: zip64 field of '${e.name}' lacks the ${what}`);
        const x = u64(v, r, what, file);
        r += 8;
        return x;
      };
      if (e.size === U32_MAX) e.size = take('size');
      if (e.compressedSize === U32_MAX) e.compressedSize = take('compressed size');
      if (e.localHeaderOffset === U32_MAX) e.localHeaderOffset = take('header offset');
      return;
    }
    q += 4 + sz;
  }
  throw new CheckpointError(file, `corrupt zip: entry '${e.name}' needs a zip64 extra field but has none`);
}

export { ZipWriter, type ZipWriterOptions } from './zip-write.js';
