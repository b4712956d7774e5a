/**
 * Zip writer for torch.save-compatible archives: STORED entries whose data starts on a 64-byte
 * boundary (padding goes in an extra field, as PyTorch does, so storages can be mapped in place),
 * with zip64 records only where a size, offset or entry count needs them.
 */
import * as fs from 'node:fs';
import { crc32 } from 'node:zlib';
import {
  IO_CHUNK, SIG_CENTRAL, SIG_EOCD, SIG_EOCD64, SIG_EOCD64_LOCATOR, SIG_LOCAL, U16_MAX, U32_MAX,
} from './zip-format.js';

const ENC = new TextEncoder();

function writeAll(fd: number, b: Uint8Array): void {
  for (let done = 0; done < b.byteLength;) {
    done += fs.writeSync(fd, b, done, Math.min(IO_CHUNK, b.byteLength - done));
  }
}

/** Options of ZipWriter. */
export interface ZipWriterOptions {
  /** Data alignment in bytes (PyTorch uses 64). */
  align?: number;
  /** Write zip64 records even for small archives (for tests of the zip64 paths). */
  forceZip64?: boolean;
}

interface Written { name: Uint8Array; size: number; crc: number; offset: number }

/** Streams STORED entries to an open file descriptor. Call finish() to write the central directory. */
export class ZipWriter {
  private readonly fd: number;
  private readonly align: number;
  private readonly forceZip64: boolean;
  private readonly written: Written[] = [];
  private offset = 0;

  constructor(fd: number, options: ZipWriterOptions = {}) {
    this.fd = fd;
    this.align = options.align ?? 64;
    this.forceZip64 = options.forceZip64 ?? false;
  }

  /** Small writes (headers, tiny tensors) are batched: one syscall each would dominate. */
  private pending = new Uint8Array(1 << 20);
  private pendingLen = 0;

  private flush(): void {
    writeAll(this.fd, this.pending.subarray(0, this.pendingLen));
    this.pendingLen = 0;
  }

  private put(b: Uint8Array): void {
    const large = b.byteLength > this.pending.byteLength / 4;
    if (large || this.pendingLen + b.byteLength > this.pending.byteLength) this.flush();
    if (large) writeAll(this.fd, b);
    else {
      this.pending.set(b, this.pendingLen);
      this.pendingLen += b.byteLength;
    }
    this.offset += b.byteLength;
  }

  /** Append one entry whose data is the concatenation of `chunks`. */
  add(name: string, chunks: readonly Uint8Array[]): void {
    let size = 0;
    let crc = 0;
    for (const c of chunks) {
      size += c.byteLength;
      crc = crc32(c, crc);
    }
    const nameBytes = ENC.encode(name);
    const zip64 = this.forceZip64 || size >= U32_MAX;
    const z64Len = zip64 ? 20 : 0;
    const base = this.offset + 30 + nameBytes.byteLength + z64Len;
    let pad = 0;
    if (base % this.align !== 0) pad = (this.align - ((base + 4) % this.align)) % this.align + 4;
    const hdr = new Uint8Array(30 + nameBytes.byteLength + z64Len + pad);
    const v = new DataView(hdr.buffer);
    v.setUint32(0, SIG_LOCAL, true);
    v.setUint16(4, zip64 ? 45 : 20, true);
    v.setUint16(6, 0x0800, true); // names are UTF-8
    v.setUint16(8, 0, true);
    v.setUint16(10, 0, true);
    v.setUint16(12, 0x21, true); // 1980-01-01: fixed, so identical content gives identical files
    v.setUint32(14, crc, true);
    v.setUint32(18, zip64 ? U32_MAX : size, true);
    v.setUint32(22, zip64 ? U32_MAX : size, true);
    v.setUint16(26, nameBytes.byteLength, true);
    v.setUint16(28, z64Len + pad, true);
    hdr.set(nameBytes, 30);
    let q = 30 + nameBytes.byteLength;
    if (zip64) {
      v.setUint16(q, 1, true);
      v.setUint16(q + 2, 16, true);
      v.setBigUint64(q + 4, BigInt(size), true);
      v.setBigUint64(q + 12, BigInt(size), true);
      q += 20;
    }
    if (pad > 0) {
      v.setUint16(q, 0x4246, true); // 'FB', the id PyTorch's padding field uses
      v.setUint16(q + 2, pad - 4, true);
      hdr.fill(0x5a, q + 4); // 'Z'
    }
    const offset = this.offset;
    this.put(hdr);
    for (const c of chunks) this.put(c);
    this.written.push({ name: nameBytes, size, crc, offset });
  }

  /** Write the central directory and end records. The fd stays open (the caller owns it). */
  finish(): void {
    const cdStart = this.offset;
    for (const w of this.written) {
      const bigSize = this.forceZip64 || w.size >= U32_MAX;
      const bigOff = this.forceZip64 || w.offset >= U32_MAX;
      const z64Len = (bigSize ? 16 : 0) + (bigOff ? 8 : 0);
      const extraLen = z64Len > 0 ? 4 + z64Len : 0;
      const rec = new Uint8Array(46 + w.name.byteLength + extraLen);
      const v = new DataView(rec.buffer);
      v.setUint32(0, SIG_CENTRAL, true);
      v.setUint16(4, extraLen > 0 ? 45 : 20, true);
      v.setUint16(6, extraLen > 0 ? 45 : 20, true);
      v.setUint16(8, 0x0800, true);
      v.setUint16(14, 0x21, true);
      v.setUint32(16, w.crc, true);
      v.setUint32(20, bigSize ? U32_MAX : w.size, true);
      v.setUint32(24, bigSize ? U32_MAX : w.size, true);
      v.setUint16(28, w.name.byteLength, true);
      v.setUint16(30, extraLen, true);
      v.setUint32(42, bigOff ? U32_MAX : w.offset, true);
      rec.set(w.name, 46);
      let q = 46 + w.name.byteLength;
      if (extraLen > 0) {
        v.setUint16(q, 1, true);
        v.setUint16(q + 2, z64Len, true);
        q += 4;
        if (bigSize) {
          v.setBigUint64(q, BigInt(w.size), true);
          v.setBigUint64(q + 8, BigInt(w.size), true);
          q += 16;
        }
        if (bigOff) v.setBigUint64(q, BigInt(w.offset), true);
      }
      this.put(rec);
    }
    const cdSize = this.offset - cdStart;
    const n = this.written.length;
    const z64 = this.forceZip64 || n >= U16_MAX || cdStart >= U32_MAX || cdSize >= U32_MAX;
    if (z64) {
      const rec = new Uint8Array(56 + 20);
      const v = new DataView(rec.buffer);
      v.setUint32(0, SIG_EOCD64, true);
      v.setBigUint64(4, 44n, true);
      v.setUint16(12, 45, true);
      v.setUint16(14, 45, true);
      v.setBigUint64(24, BigInt(n), true);
      v.setBigUint64(32, BigInt(n), true);
      v.setBigUint64(40, BigInt(cdSize), true);
      v.setBigUint64(48, BigInt(cdStart), true);
      v.setUint32(56, SIG_EOCD64_LOCATOR, true);
      v.setBigUint64(64, BigInt(this.offset), true);
      v.setUint32(72, 1, true);
      this.put(rec);
    }
    const end = new Uint8Array(22);
    const v = new DataView(end.buffer);
    v.setUint32(0, SIG_EOCD, true);
    v.setUint16(8, z64 ? U16_MAX : n, true);
    v.setUint16(10, z64 ? U16_MAX : n, true);
    v.setUint32(12, z64 ? U32_MAX : cdSize, true);
    v.setUint32(16, z64 ? U32_MAX : cdStart, true);
    this.put(end);
    this.flush();
  }
}
