/**
 * safetensors files: an 8-byte little-endian header length, a JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {str: str}}`, then the raw
 * little-endian tensor bytes (offsets are relative to the end of the header).
 */
import * as fs from 'node:fs';
import type { DType, RawTensor } from '../../engine/dtype.js';
import { ITEMSIZE, numelOf } from '../../engine/dtype.js';
import { CheckpointError, fmtShape } from '../../util/errors.js';
import { writeFileAtomic } from './atomic.js';

const TO_DTYPE: ReadonlyMap<string, DType> = new Map<string, DType>([
  ['F32', 'float32'], ['F64', 'float64'], ['F16', 'float16'], ['BF16', 'bfloat16'], ['I64', 'int64'],
  ['I32', 'int32'], ['I16', 'int16'], ['I8', 'int8'], ['U8', 'uint8'], ['BOOL', 'bool'],
]);
const FROM_DTYPE = new Map<DType, string>([...TO_DTYPE].map(([k, v]) => [v, k]));
/** The reference implementation refuses headers above 100 MB; so do we (it guards against garbage lengths). */
const MAX_HEADER = 100_000_000;

/** Content of a safetensors file. */
export interface SafetensorsContent {
  /** Tensors in the order of their data in the file. */
  tensors: Map<string, RawTensor>;
  /** The `__metadata__` string map, or null when absent. */
  metadata: Record<string, string> | null;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

interface Slot { name: string; dtype: DType; shape: number[]; begin: number; end: number }

function parseHeader(file: string, json: string, dataSize: number): { slots: Slot[]; metadata: Record<string, string> | null } {
  let header: unknown;
  try {
    header = JSON.parse(json);
  } catch (e) {
    throw new CheckpointError(file, `bad safetensors header JSON: ${(e as Error).message}`, e);
  }
  if (!isRecord(header)) throw new CheckpointError(file, 'bad safetensors header: not a JSON object');
  let metadata: Record<string, string> | null = null;
  const slots: Slot[] = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!isRecord(info) || !Object.values(info).every((x) => typeof x === 'string')) {
        throw new CheckpointError(file, 'bad safetensors header: __metadata__ must map strings to strings');
      }
      metadata = info as Record<string, string>;
      continue;
    }
    const bad = (why: string): never => { throw new CheckpointError(file, `bad safetensors header entry '${name}': ${why}`); };
    if (!isRecord(info)) bad('not an object');
    const rec = info as Record<string, unknown>;
    const dtype = typeof rec.dtype === 'string' ? TO_DTYPE.get(rec.dtype) : undefined;
    if (dtype === undefined) bad(`unsupported dtype ${JSON.stringify(rec.dtype)} (supported: ${[...TO_DTYPE.keys()].join(', ')})`);
    const shape = rec.shape;
    if (!Array.isArray(shape) || !shape.every(isIndex)) bad(`shape ${JSON.stringify(shape)} is not a list of sizes`);
    const offs = rec.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isIndex)) bad(`data_offsets ${JSON.stringify(offs)} is not [begin, end]`);
    const [begin, end] = offs as [number, number];
    const d = dtype as DType;
    const sh = shape as number[];
    const nbytes = numelOf(sh) * ITEMSIZE[d];
    if (end < begin || end - begin !== nbytes) bad(`data_offsets [${begin},${end}] do not hold ${d}${fmtShape(sh)} (${nbytes} bytes)`);
    if (end > dataSize) {
      bad(`data_offsets [${begin},${end}] exceed the data section of ${dataSize} bytes (truncated or corrupt file)`);
    }
    slots.push({ name, dtype: d, shape: sh, begin, end });
  }
  slots.sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < slots.length; i++) {
    const a = slots[i - 1] as Slot;
    const b = slots[i] as Slot;
    if (b.begin < a.end) throw new CheckpointError(file, `bad safetensors header: data of '${a.name}' and '${b.name}' overlap`);
  }
  return { slots, metadata };
}

/** Read a .safetensors file. Each tensor gets its own aligned buffer. */
export function readSafetensors(file: string): SafetensorsContent {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw new CheckpointError(file, `cannot open: ${(e as Error).message}`, e);
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size < 8) throw new CheckpointError(file, `truncated safetensors file: ${size} bytes, no header length`);
    const lenBuf = new Uint8Array(8);
    fs.readSync(fd, lenBuf, 0, 8, 0);
    const n = new DataView(lenBuf.buffer).getBigUint64(0, true);
    if (n > BigInt(size - 8)) throw new CheckpointError(file, `truncated safetensors file: header length ${n} exceeds the ${size - 8} bytes after it`);
    if (n > BigInt(MAX_HEADER)) throw new CheckpointError(file, `safetensors header length ${n} is implausibly large`);
    const headerLen = Number(n);
    const headerBytes = new Uint8Array(headerLen);
    fs.readSync(fd, headerBytes, 0, headerLen, 8);
    const { slots, metadata } = parseHeader(file, new TextDecoder().decode(headerBytes), size - 8 - headerLen);
    const tensors = new Map<string, RawTensor>();
    for (const s of slots) {
      const b = Buffer.allocUnsafeSlow(s.end - s.begin);
      const data = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
      for (let done = 0; done < data.byteLength;) {
        const r = fs.readSync(fd, data, done, Math.min(1 << 30, data.byteLength - done), 8 + headerLen + s.begin + done);
        if (r === 0) throw new CheckpointError(file, `truncated safetensors file while reading '${s.name}'`);
        done += r;
      }
      tensors.set(s.name, { dtype: s.dtype, shape: s.shape, data });
    }
    return { tensors, metadata };
  } finally {
    fs.closeSync(fd);
  }
}

/** Options of writeSafetensors(). */
export interface WriteSafetensorsOptions {
  /** Stored as `__metadata__` (string values only, as the format requires). */
  metadata?: Record<string, string>;
  /** 'sorted' (default): by name, as the reference implementation's output is; 'insertion': keep the map order. */
  order?: 'sorted' | 'insertion';
}

/** Write tensors as a .safetensors file (atomic). */
export function writeSafetensors(
  file: string, tensors: ReadonlyMap<string, RawTensor> | Readonly<Record<string, RawTensor>>,
  options: WriteSafetensorsOptions = {},
): void {
  const entries: [string, RawTensor][] = tensors instanceof Map
    ? [...(tensors as ReadonlyMap<string, RawTensor>).entries()]
    : Object.entries(tensors as Readonly<Record<string, RawTensor>>);
  if ((options.order ?? 'sorted') === 'sorted') entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const parts: string[] = [];
  if (options.metadata !== undefined) {
    for (const [k, v] of Object.entries(options.metadata)) {
      if (typeof v !== 'string') throw new CheckpointError(file, `safetensors metadata '${k}' must be a string, got ${typeof v}`);
    }
    parts.push(`"__metadata__":${JSON.stringify(options.metadata)}`);
  }
  let offset = 0;
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new CheckpointError(file, "a tensor cannot be named '__metadata__'");
    const nbytes = numelOf(t.shape) * ITEMSIZE[t.dtype];
    if (t.data.byteLength !== nbytes) {
      throw new CheckpointError(file, `tensor '${name}' ${t.dtype}${fmtShape(t.shape)} needs ${nbytes} bytes, has ${t.data.byteLength}`);
    }
    const info = { dtype: FROM_DTYPE.get(t.dtype), shape: t.shape, data_offsets: [offset, offset + nbytes] };
    parts.push(`${JSON.stringify(name)}:${JSON.stringify(info)}`);
    offset += nbytes;
  }
  // Built by hand so that key order is exactly ours (JSON.stringify moves integer-like keys first).
  let header = `{${parts.join(',')}}`;
  const headerBytes = new TextEncoder().encode(header);
  const padded = headerBytes.byteLength + ((8 - (headerBytes.byteLength % 8)) % 8);
  header += ' '.repeat(padded - headerBytes.byteLength);
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(padded), true);
  writeFileAtomic(file, (fd) => {
    fs.writeSync(fd, len);
    fs.writeSync(fd, new TextEncoder().encode(header));
    for (const [, t] of entries) {
      for (let done = 0; done < t.data.byteLength;) {
        done += fs.writeSync(fd, t.data, done, Math.min(1 << 30, t.data.byteLength - done));
      }
    }
  });
}
