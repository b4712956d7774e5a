/**
 * Pickle writer (protocol 2, as torch.save uses) for the values checkpoints hold. Tensors become
 * `torch._utils._rebuild_tensor_v2` calls whose storages are persistent ids into the archive's
 * `data/<key>` entries; tensors whose bytes overlap in memory share one storage, as in PyTorch.
 */
import type { RawTensor } from '../../engine/dtype.js';
import { ITEMSIZE, numelOf } from '../../engine/dtype.js';
import { CheckpointError, fmtShape } from '../../util/errors.js';
import { PyDict, PyFloat, PyTuple, isRawTensor, type PyInput, type PyKey } from './pyvalue.js';
import { storageClassFor } from './pickle-globals.js';
import { contiguousStrides } from './tensor-view.js';

/** One storage to write as `<stem>/data/<key>`. */
export interface StorageOut {
  key: string;
  data: Uint8Array;
}

/** Result of pickleForTorch(). */
export interface PickledTorch {
  pickle: Uint8Array;
  storages: StorageOut[];
}

class Sink {
  buf = new Uint8Array(1 << 16);
  len = 0;
  private ensure(n: number): void {
    if (this.len + n <= this.buf.byteLength) return;
    const next = new Uint8Array(Math.max(this.buf.byteLength * 2, this.len + n));
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }
  op(...bytes: number[]): void {
    this.ensure(bytes.length);
    for (const b of bytes) this.buf[this.len++] = b;
  }
  u32(v: number): void {
    this.ensure(4);
    new DataView(this.buf.buffer).setUint32(this.len, v, true);
    this.len += 4;
  }
  raw(b: Uint8Array): void {
    this.ensure(b.byteLength);
    this.buf.set(b, this.len);
    this.len += b.byteLength;
  }
}

const MARK = 0x28;
const BATCH = 1000;
const ENC = new TextEncoder();

interface Placement { key: string; offset: number; numel: number }

/** Pickle `value` for torch.save's zip format. `file` is only used in error messages. */
export function pickleForTorch(value: PyInput, file: string): PickledTorch {
  const w = new Writer(file);
  w.sink.op(0x80, 2); // PROTO 2
  w.value(value, 'value');
  w.sink.op(0x2e); // STOP
  return { pickle: w.sink.buf.subarray(0, w.sink.len), storages: w.storages };
}

class Writer {
  readonly sink = new Sink();
  readonly storages: StorageOut[] = [];
  private readonly globals = new Map<string, number>();
  private memoCount = 0;
  private readonly visiting = new Set<object>();
  /** Per ArrayBuffer: the storages cut from it so far, to share overlapping tensors. */
  private readonly byBuffer = new Map<ArrayBufferLike, { start: number; end: number; dtype: string; key: string }[]>();

  constructor(private readonly file: string) {}

  private fail(path: string, message: string): never {
    throw new CheckpointError(this.file, `cannot save ${path}: ${message}`);
  }

  private str(s: string): void {
    const b = ENC.encode(s);
    this.sink.op(0x58); // BINUNICODE
    this.sink.u32(b.byteLength);
    this.sink.raw(b);
  }

  private global(module: string, name: string): void {
    const q = `${module}\n${name}\n`;
    const m = this.globals.get(q);
    if (m !== undefined) {
      if (m < 256) this.sink.op(0x68, m); else { this.sink.op(0x6a); this.sink.u32(m); } // BINGET
      return;
    }
    this.sink.op(0x63); // GLOBAL
    this.sink.raw(ENC.encode(q));
    const idx = this.memoCount++;
    if (idx < 256) this.sink.op(0x71, idx); else { this.sink.op(0x72); this.sink.u32(idx); } // BINPUT
    this.globals.set(q, idx);
  }

  private int(v: number | bigint): void {
    if (typeof v === 'number' && v >= 0 && v < 256) this.sink.op(0x4b, v); // BININT1
    else if (typeof v === 'number' && v >= 0 && v < 65536) this.sink.op(0x4d, v & 0xff, v >> 8); // BININT2
    else if (typeof v === 'number' && v >= -0x80000000 && v <= 0x7fffffff) {
      this.sink.op(0x4a); // BININT
      this.sink.u32(v >>> 0);
    } else {
      const bytes = twosComplement(BigInt(v));
      if (bytes.length < 256) this.sink.op(0x8a, bytes.length); // LONG1
      else { this.sink.op(0x8b); this.sink.u32(bytes.length); } // LONG4
      this.sink.raw(bytes);
    }
  }

  private float(v: number): void {
    this.sink.op(0x47); // BINFLOAT, big-endian
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v, false);
    this.sink.raw(b);
  }

  private tuple(items: readonly PyInput[], path: string): void {
    if (items.length === 0) { this.sink.op(0x29); return; }
    if (items.length > 3) this.sink.op(MARK);
    items.forEach((x, i) => this.value(x, `${path}[${i}]`));
    this.sink.op(items.length > 3 ? 0x74 : 0x84 + items.length); // TUPLE or TUPLE1..3
  }

  private dict(entries: Iterable<readonly [PyKey, PyInput]>, ordered: boolean, path: string,
    attrs: Map<string, PyInput> | null): void {
    if (ordered) {
      this.global('collections', 'OrderedDict');
      this.sink.op(0x29, 0x52); // EMPTY_TUPLE REDUCE
    } else {
      this.sink.op(0x7d); // EMPTY_DICT
    }
    let n = 0;
    for (const [k, v] of entries) {
      if (n % BATCH === 0) { if (n > 0) this.sink.op(0x75); this.sink.op(MARK); }
      if (typeof k === 'string') this.str(k);
      else if (typeof k === 'number' && !Number.isInteger(k)) this.fail(path, `dict key ${k} is not an int`);
      else this.int(k);
      this.value(v, `${path}[${JSON.stringify(typeof k === 'bigint' ? String(k) : k)}]`);
      n++;
    }
    if (n > 0) this.sink.op(0x75); // SETITEMS
    if (attrs !== null && attrs.size > 0) {
      this.dict(attrs, false, `${path}.__dict__`, null);
      this.sink.op(0x62); // BUILD
    }
  }

  private list(items: readonly PyInput[], path: string): void {
    this.sink.op(0x5d); // EMPTY_LIST
    items.forEach((x, i) => {
      if (i % BATCH === 0) { if (i > 0) this.sink.op(0x65); this.sink.op(MARK); }
      this.value(x, `${path}[${i}]`);
    });
    if (items.length > 0) this.sink.op(0x65); // APPENDS
  }

  private bytes(b: Uint8Array): void {
    // Protocol 2 has no bytes opcode; Python itself writes _codecs.encode(latin-1 text, 'latin1').
    if (b.byteLength === 0) {
      this.global('__builtin__', 'bytes');
      this.sink.op(0x29, 0x52);
      return;
    }
    this.global('_codecs', 'encode');
    let s = '';
    for (let i = 0; i < b.byteLength; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192));
    this.str(s);
    this.str('latin1');
    this.sink.op(0x86, 0x52); // TUPLE2 REDUCE
  }

  private placeStorage(t: RawTensor, numel: number): Placement {
    const isz = ITEMSIZE[t.dtype];
    const start = t.data.byteOffset;
    const end = start + t.data.byteLength;
    const cuts = this.byBuffer.get(t.data.buffer) ?? [];
    this.byBuffer.set(t.data.buffer, cuts);
    // Overlapping bytes of one buffer and dtype share a storage. The first tensor seen defines
    // the storage range; a later one reuses it only if it lies inside that range.
    for (const c of cuts) {
      if (c.dtype === t.dtype && start >= c.start && end <= c.end && (start - c.start) % isz === 0) {
        return { key: c.key, offset: (start - c.start) / isz, numel: (c.end - c.start) / isz };
      }
    }
    // A partial overlap gets its own copy: sharing is an optimisation, not needed for correctness.
    const key = String(this.storages.length);
    this.storages.push({ key, data: t.data });
    cuts.push({ start, end, dtype: t.dtype, key });
    return { key, offset: 0, numel };
  }

  private tensor(t: RawTensor, path: string): void {
    const numel = numelOf(t.shape);
    if (t.shape.some((d) => !Number.isSafeInteger(d) || d < 0)) this.fail(path, `invalid tensor shape ${fmtShape(t.shape)}`);
    if (t.data.byteLength !== numel * ITEMSIZE[t.dtype]) {
      this.fail(path, `tensor ${t.dtype}${fmtShape(t.shape)} needs ${numel * ITEMSIZE[t.dtype]} bytes, has ${t.data.byteLength}`);
    }
    const { key, offset, numel: storageNumel } = this.placeStorage(t, numel);
    this.global('torch._utils', '_rebuild_tensor_v2');
    this.sink.op(MARK, MARK);
    this.str('storage');
    this.global('torch', storageClassFor(t.dtype));
    this.str(key);
    this.str('cpu');
    this.int(storageNumel);
    this.sink.op(0x74, 0x51); // TUPLE BINPERSID
    this.int(offset);
    this.tuple(t.shape, `${path}.shape`);
    this.tuple(contiguousStrides(t.shape), `${path}.stride`);
    this.sink.op(0x89); // requires_grad = False
    this.global('collections', 'OrderedDict');
    this.sink.op(0x29, 0x52); // backward_hooks = OrderedDict()
    this.sink.op(0x74, 0x52); // TUPLE REDUCE
  }

  value(v: PyInput, path: string): void {
    if (v === null) { this.sink.op(0x4e); return; }
    if (v === undefined) this.fail(path, 'undefined has no Python equivalent (use null for None)');
    if (typeof v === 'boolean') { this.sink.op(v ? 0x88 : 0x89); return; }
    if (typeof v === 'number') {
      if (Number.isSafeInteger(v) && !Object.is(v, -0)) this.int(v); else this.float(v);
      return;
    }
    if (typeof v === 'bigint') { this.int(v); return; }
    if (typeof v === 'string') { this.str(v); return; }
    if (v instanceof PyFloat) { this.float(v.value); return; }
    if (v instanceof Uint8Array) { this.bytes(v); return; }
    if (typeof v !== 'object') this.fail(path, `unsupported value of type ${typeof v}`);
    if (this.visiting.has(v)) this.fail(path, 'the structure contains a cycle');
    this.visiting.add(v);
    if (isRawTensor(v)) this.tensor(v, path);
    else if (v instanceof PyTuple) this.tuple(v.items, path);
    else if (Array.isArray(v)) this.list(v as readonly PyInput[], path);
    else if (v instanceof PyDict) this.dict(v, v.ordered, path, v.attrs);
    else if (v instanceof Map) this.dict(v as ReadonlyMap<PyKey, PyInput>, false, path, null);
    else if (v instanceof Set) {
      this.global('__builtin__', 'set');
      this.list([...(v as Set<PyKey>)], path);
      this.sink.op(0x85, 0x52); // TUPLE1 REDUCE
    } else if (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null) {
      this.dict(Object.entries(v as Record<string, PyInput>), false, path, null);
    } else {
      this.fail(path, `unsupported value of type ${v.constructor.name}`);
    }
    this.visiting.delete(v);
  }
}

/** Little-endian two's complement with the fewest bytes (what LONG1 expects). */
function twosComplement(v: bigint): Uint8Array {
  if (v === 0n) return new Uint8Array(0);
  const out: number[] = [];
  let x = v;
  for (;;) {
    out.push(Number(x & 0xffn));
    x >>= 8n;
    const signBit = ((out[out.length - 1] ?? 0) & 0x80) !== 0;
    if ((x === 0n && !signBit) || (x === -1n && signBit)) break;
  }
  return Uint8Array.from(out);
}
