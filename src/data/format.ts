/**
 * The volume cache file (`.mvol`): one uncompressed, random-access file per volume.
 *
 * Layout: a fixed 512-byte header, then the voxels as raw little-endian values in (D,H,W) C
 * order, which is the same memory order as a Volume's x-fastest data (W = size x, H = size y,
 * D = size z). A sub-box is therefore read with a handful of pread calls and no decoding.
 *
 * Header (little-endian):
 *   0   8  magic "MISFMVOL"
 *   8   4  u32 format version (1)
 *   12  4  u32 header bytes (512) = offset of the voxel data
 *   16  4  u32 dtype code (DTYPE_CODES)
 *   20  4  u32 kind (0 image, 1 label)
 *   24 12  u32 D, H, W
 *   40 24  f64 spacing (x, y, z) mm
 *   64 24  f64 origin (x, y, z) mm, LPS
 *   88 72  f64 direction, row-major 3x3 (Volume convention)
 *   160 8  f64 voxel data bytes (= D*H*W*itemsize; also checked against the file size)
 *   508 4  u32 CRC-32 of bytes 0..507 (detects a damaged header)
 */
import * as fs from 'node:fs';
import { crc32 } from 'node:zlib';
import { MisfmError } from '../util/errors.js';
import { voxelTypeOf, type Mat3, type Vec3, type Volume, type VoxelArray, type VoxelType } from '../io/volume.js';
import { writeAtomicWith } from '../util/atomic.js';

export const CACHE_MAGIC = 'MISFMVOL';
export const CACHE_VERSION = 1;
export const HEADER_BYTES = 512;

/** Voxel types a cache file can hold. */
export type CacheDType = VoxelType;

const DTYPE_CODES: Readonly<Record<CacheDType, number>> = {
  uint8: 1, int8: 2, uint16: 3, int16: 4, int32: 5, uint32: 6, float32: 7, float64: 8,
};
const ITEM: Readonly<Record<CacheDType, number>> = {
  uint8: 1, int8: 1, uint16: 2, int16: 2, int32: 4, uint32: 4, float32: 4, float64: 8,
};

export function itemSize(dtype: CacheDType): number {
  return ITEM[dtype];
}

export type CacheKind = 'image' | 'label';

/** What the header says. `shape` is (D, H, W); geometry is in Volume's (x, y, z) convention. */
export interface CacheHeader {
  version: number;
  dtype: CacheDType;
  kind: CacheKind;
  shape: [number, number, number];
  spacing: Vec3;
  origin: Vec3;
  direction: Mat3;
  dataBytes: number;
}

/** The cache dtype of a voxel array (cache dtypes are exactly the voxel types). */
export const dtypeOf: (data: VoxelArray) => CacheDType = voxelTypeOf;

/** A typed view of `bytes` (which must be aligned to the item size) for `dtype`. */
export function viewAs(dtype: CacheDType, buf: ArrayBuffer, byteOffset = 0, length?: number): VoxelArray {
  const n = length ?? (buf.byteLength - byteOffset) / ITEM[dtype];
  switch (dtype) {
    case 'uint8': return new Uint8Array(buf, byteOffset, n);
    case 'int8': return new Int8Array(buf, byteOffset, n);
    case 'uint16': return new Uint16Array(buf, byteOffset, n);
    case 'int16': return new Int16Array(buf, byteOffset, n);
    case 'int32': return new Int32Array(buf, byteOffset, n);
    case 'uint32': return new Uint32Array(buf, byteOffset, n);
    case 'float32': return new Float32Array(buf, byteOffset, n);
    case 'float64': return new Float64Array(buf, byteOffset, n);
  }
}

/** A fresh zeroed voxel array of `n` elements. */
export function allocArray(dtype: CacheDType, n: number): VoxelArray {
  return viewAs(dtype, new ArrayBuffer(n * ITEM[dtype]), 0, n);
}

/** Encode the 512-byte header. */
export function encodeHeader(h: Omit<CacheHeader, 'version' | 'dataBytes'>): Buffer {
  const b = Buffer.alloc(HEADER_BYTES);
  b.write(CACHE_MAGIC, 0, 'latin1');
  b.writeUInt32LE(CACHE_VERSION, 8);
  b.writeUInt32LE(HEADER_BYTES, 12);
  b.writeUInt32LE(DTYPE_CODES[h.dtype], 16);
  b.writeUInt32LE(h.kind === 'label' ? 1 : 0, 20);
  h.shape.forEach((s, i) => b.writeUInt32LE(s, 24 + 4 * i));
  h.spacing.forEach((v, i) => b.writeDoubleLE(v, 40 + 8 * i));
  h.origin.forEach((v, i) => b.writeDoubleLE(v, 64 + 8 * i));
  h.direction.forEach((v, i) => b.writeDoubleLE(v, 88 + 8 * i));
  b.writeDoubleLE(h.shape[0] * h.shape[1] * h.shape[2] * ITEM[h.dtype], 160);
  b.writeUInt32LE(crc32(b.subarray(0, 508)), 508);
  return b;
}

function corrupt(file: string, what: string): MisfmError {
  return new MisfmError('DATA', `corrupt volume cache file: ${what}; delete it and run \`misfm prepare\` again`, { file });
}

/** Decode and check a header; `fileSize` (when known) must match header + voxel bytes exactly. */
export function decodeHeader(b: Buffer, file: string, fileSize?: number): CacheHeader {
  if (b.length < HEADER_BYTES) {
    if (b.length >= 8 && b.subarray(0, 8).toString('latin1') !== CACHE_MAGIC) throw corrupt(file, 'bad magic (not a misfm volume cache file)');
    throw corrupt(file, `truncated header: ${b.length} of ${HEADER_BYTES} bytes`);
  }
  const magic = b.subarray(0, 8).toString('latin1');
  if (magic !== CACHE_MAGIC) throw corrupt(file, `bad magic ${JSON.stringify(magic)} (not a misfm volume cache file)`);
  const version = b.readUInt32LE(8);
  if (version !== CACHE_VERSION) {
    throw new MisfmError('DATA', `volume cache format version ${version} is not supported (this misfm reads version ${CACHE_VERSION}); re-run \`misfm prepare\``, { file });
  }
  if (b.readUInt32LE(508) !== crc32(b.subarray(0, 508))) throw corrupt(file, 'header checksum mismatch');
  const code = b.readUInt32LE(16);
  const dtype = (Object.keys(DTYPE_CODES) as CacheDType[]).find((k) => DTYPE_CODES[k] === code);
  if (dtype === undefined) throw corrupt(file, `unknown dtype code ${code}`);
  const shape: [number, number, number] = [b.readUInt32LE(24), b.readUInt32LE(28), b.readUInt32LE(32)];
  if (shape.some((s) => s < 1)) throw corrupt(file, `empty shape ${shape.join('x')}`);
  const dataBytes = b.readDoubleLE(160);
  if (dataBytes !== shape[0] * shape[1] * shape[2] * ITEM[dtype]) throw corrupt(file, 'voxel byte count does not match the shape');
  if (fileSize !== undefined && fileSize !== HEADER_BYTES + dataBytes) {
    const why = fileSize < HEADER_BYTES + dataBytes ? 'truncated' : 'has trailing bytes';
    throw corrupt(file, `${why}: ${fileSize} bytes, expected ${HEADER_BYTES + dataBytes} for ${dtype} ${shape.join('x')}`);
  }
  const f64 = (o: number, n: number): number[] => Array.from({ length: n }, (_, i) => b.readDoubleLE(o + 8 * i));
  return {
    version, dtype, kind: b.readUInt32LE(20) === 1 ? 'label' : 'image', shape,
    spacing: f64(40, 3) as Vec3, origin: f64(64, 3) as Vec3, direction: f64(88, 9) as Mat3, dataBytes,
  };
}

/**
 * Write a volume as a cache file atomically (temp file, fsync, rename). Returns the bytes written.
 * Voxels are stored in the volume's own dtype: cast before calling.
 */
export function writeCacheFile(file: string, vol: Volume, kind: CacheKind): number {
  const dtype = dtypeOf(vol.data);
  const header = encodeHeader({
    dtype, kind, shape: [vol.size[2], vol.size[1], vol.size[0]],
    spacing: vol.spacing, origin: vol.origin, direction: vol.direction,
  });
  const body = new Uint8Array(vol.data.buffer, vol.data.byteOffset, vol.data.byteLength);
  writeAtomicWith(file, (fd) => {
    writeAll(fd, header);
    // Big-endian hosts would need a byte swap here; every platform Node ships on is little-endian.
    writeAll(fd, body);
  }, (_stage, err) => new MisfmError('DATA', `cannot write cache file: ${err instanceof Error ? err.message : String(err)}`, { file, cause: err }));
  return header.length + body.length;
}

export function writeAll(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += fs.writeSync(fd, bytes, off, Math.min(bytes.length - off, 1 << 30));
}

/** Read exactly `length` bytes at `position` into `dst` at `offset`; a short read means truncation. */
export function readExact(fd: number, dst: Uint8Array, offset: number, length: number, position: number, file: string): void {
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, dst, offset + done, length - done, position + done);
    if (n === 0) throw corrupt(file, `truncated: no data at byte ${position + done}`);
    done += n;
  }
}

/** Read and check the header of a cache file (no voxels). */
export function readCacheHeader(file: string): CacheHeader {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    throw missingOrUnreadable(file, err);
  }
  try {
    const b = Buffer.alloc(HEADER_BYTES);
    const n = fs.readSync(fd, b, 0, HEADER_BYTES, 0);
    return decodeHeader(b.subarray(0, n), file, fs.fstatSync(fd).size);
  } finally {
    fs.closeSync(fd);
  }
}

export function missingOrUnreadable(file: string, err: unknown): MisfmError {
  const code = (err as { code?: string } | undefined)?.code;
  if (code === 'ENOENT') return new MisfmError('DATA', 'cache file is missing (listed in the manifest but not on disk); re-run `misfm prepare`', { file, cause: err });
  return new MisfmError('DATA', `cannot open cache file: ${err instanceof Error ? err.message : String(err)}`, { file, cause: err });
}
