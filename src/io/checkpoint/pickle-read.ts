/**
 * A pickle virtual machine for reading checkpoints (protocols 0-5, the opcodes Python and
 * torch.save emit for data). It never imports or runs anything: GLOBAL names are checked against
 * the whitelist in pickle-globals.ts and any other name is refused with an error that names it.
 */
import { CheckpointError, MisfmError } from '../../util/errors.js';
import { PyDict, pyTypeName, type PyKey, type PyValue } from './pyvalue.js';
import { PickleDataError, PyGlobal, makeTuple, toPy, tupleItems, type VmValue } from './pickle-objects.js';
import { buildObject, callGlobal, resolveGlobal } from './pickle-globals.js';

/** Options of unpickle(). */
export interface UnpickleOptions {
  /** File named in errors. */
  file: string;
  /** Part of the file (e.g. the archive entry) named in errors. */
  entry?: string;
  /** Resolves BINPERSID / PERSID ids (torch storages). Without it persistent ids are an error. */
  persistentLoad?: (pid: VmValue) => VmValue;
}

const TEXT = new TextDecoder('utf-8', { fatal: true });
const LATIN1 = new TextDecoder('latin1');

/** Opcodes not handled because they need code execution or out-of-band data. */
const REFUSED: ReadonlyMap<number, string> = new Map([
  [0x69, 'INST'], [0x6f, 'OBJ'], [0x82, 'EXT1'], [0x83, 'EXT2'], [0x84, 'EXT4'],
  [0x97, 'NEXT_BUFFER'], [0x98, 'READONLY_BUFFER'],
]);

/** Decode a pickle into a PyValue. Throws CheckpointError on malformed or unsupported content. */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions): PyValue {
  return new Machine(bytes, options).run();
}

class Machine {
  private pos = 0;
  private readonly view: DataView;
  private stack: VmValue[] = [];
  private readonly marks: VmValue[][] = [];
  private readonly memo = new Map<number, VmValue>();

  constructor(private readonly buf: Uint8Array, private readonly opts: UnpickleOptions) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  private fail(message: string, cause?: unknown): never {
    const where = this.opts.entry !== undefined ? `${this.opts.entry} ` : '';
    throw new CheckpointError(this.opts.file, `bad pickle data (${where}at byte ${this.pos}): ${message}`, cause);
  }

  private need(n: number): number {
    if (this.pos + n > this.buf.byteLength) this.fail(`truncated: needs ${n} more bytes, has ${this.buf.byteLength - this.pos}`);
    const p = this.pos;
    this.pos += n;
    return p;
  }

  private u8(): number { return this.view.getUint8(this.need(1)); }
  private u16(): number { return this.view.getUint16(this.need(2), true); }
  private u32(): number { return this.view.getUint32(this.need(4), true); }
  private u64(): number {
    const v = this.view.getBigUint64(this.need(8), true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`length ${v} is out of range`);
    return Number(v);
  }
  private bytes(n: number): Uint8Array { const p = this.need(n); return this.buf.subarray(p, p + n); }
  private utf8(n: number): string {
    const b = this.bytes(n);
    try {
      return TEXT.decode(b);
    } catch (e) {
      return this.fail('invalid UTF-8 in a string', e);
    }
  }
  private line(): string {
    const end = this.buf.indexOf(0x0a, this.pos);
    if (end < 0) this.fail('truncated: missing end of line');
    const s = LATIN1.decode(this.buf.subarray(this.pos, end));
    this.pos = end + 1;
    return s;
  }

  /** A method, not `this.stack.push(...)`: MARK-popping arguments replace `this.stack` while they are evaluated. */
  private push(v: VmValue): void {
    this.stack.push(v);
  }
  private pop(): VmValue {
    if (this.stack.length === 0) this.fail('stack underflow');
    return this.stack.pop() as VmValue;
  }
  private top(): VmValue {
    if (this.stack.length === 0) this.fail('stack underflow');
    return this.stack[this.stack.length - 1] as VmValue;
  }
  private popMark(): VmValue[] {
    const items = this.stack;
    const prev = this.marks.pop();
    if (prev === undefined) this.fail('MARK expected');
    this.stack = prev;
    return items;
  }
  private py(v: VmValue, where: string): PyValue {
    return toPy(v, where);
  }
  private key(v: VmValue): PyKey {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint') return v;
    return this.fail(`unsupported dict key of type ${pyTypeName(v)} (only str and int keys are supported)`);
  }
  private setItems(target: VmValue, kv: VmValue[]): void {
    if (!(target instanceof Map)) this.fail(`SETITEM on a ${pyTypeName(target)}`);
    for (let i = 0; i + 1 < kv.length; i += 2) {
      target.set(this.key(kv[i] as VmValue), this.py(kv[i + 1] as VmValue, 'dict value'));
    }
  }
  private appendItems(target: VmValue, items: VmValue[]): void {
    if (Array.isArray(target)) {
      for (const it of items) target.push(this.py(it, 'list item'));
    } else if (target instanceof Set) {
      for (const it of items) target.add(this.key(it));
    } else {
      this.fail(`APPEND on a ${pyTypeName(target)}`);
    }
  }
  private memoPut(i: number): void {
    this.memo.set(i, this.top());
  }
  private memoGet(i: number): void {
    const v = this.memo.get(i);
    if (v === undefined) this.fail(`memo entry ${i} is undefined`);
    this.push(v);
  }
  private pushInt(s: string): void {
    const t = s.endsWith('L') ? s.slice(0, -1) : s;
    if (!/^[+-]?\d+$/.test(t)) this.fail(`bad integer literal '${s}'`);
    const b = BigInt(t);
    this.push(b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b);
  }
  private pushLong(n: number): void {
    const b = this.bytes(n);
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i] ?? 0);
    if (n > 0 && ((b[n - 1] ?? 0) & 0x80) !== 0) v -= 1n << BigInt(8 * n);
    this.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
  }
  private global(module: string, name: string): void {
    const g = resolveGlobal(module, name);
    if (g === null) {
      this.fail(`refusing to load global '${module}.${name}': only tensors, storages and plain Python data `
        + '(dict, OrderedDict, list, tuple, set, str, int, float, bool, None, numpy scalars/arrays) are allowed. '
        + 'Re-save the checkpoint with only state_dicts and plain values');
    }
    this.push(g);
  }
  private call(fn: VmValue, args: VmValue): void {
    const items = tupleItems(args);
    if (!(fn instanceof PyGlobal)) this.fail(`cannot call a ${pyTypeName(fn)}`);
    if (items === null) this.fail(`arguments of ${fn.qualname} must be a tuple, got ${pyTypeName(args)}`);
    this.push(callGlobal(fn, items));
  }
  private persistent(pid: VmValue): void {
    if (this.opts.persistentLoad === undefined) this.fail('persistent id found, but this pickle is not part of a torch archive');
    this.push(this.opts.persistentLoad(pid));
  }

  run(): PyValue {
    try {
      return this.loop();
    } catch (e) {
      if (e instanceof MisfmError) throw e;
      // PickleDataError and the view errors of tensor rebuilds: add file and position.
      if (e instanceof Error) return this.fail(e.message, e);
      throw e;
    }
  }

  private loop(): PyValue {
    for (;;) {
      const op = this.u8();
      switch (op) {
        case 0x80: { const p = this.u8(); if (p > 5) this.fail(`unsupported pickle protocol ${p}`); break; } // PROTO
        case 0x95: this.u64(); break; // FRAME: a read-ahead hint only
        case 0x2e: { // STOP
          const v = this.pop();
          return this.py(v, 'result');
        }
        case 0x28: this.marks.push(this.stack); this.stack = []; break; // MARK
        case 0x7d: this.push(new PyDict()); break; // EMPTY_DICT
        case 0x5d: this.push([]); break; // EMPTY_LIST
        case 0x29: this.push(makeTuple([])); break; // EMPTY_TUPLE
        case 0x8f: this.push(new Set<PyKey>()); break; // EMPTY_SET
        case 0x85: this.push(makeTuple([this.pop()])); break; // TUPLE1
        case 0x86: { const b = this.pop(); const a = this.pop(); this.push(makeTuple([a, b])); break; } // TUPLE2
        case 0x87: { // TUPLE3
          const c = this.pop(); const b = this.pop(); const a = this.pop();
          this.push(makeTuple([a, b, c]));
          break;
        }
        case 0x74: this.push(makeTuple(this.popMark())); break; // TUPLE
        case 0x6c: this.push(this.popMark().map((x) => this.py(x, 'list item'))); break; // LIST
        case 0x64: { const d = new PyDict(); this.setItems(d, this.popMark()); this.push(d); break; } // DICT
        case 0x91: this.push(new Set(this.popMark().map((x) => this.key(x)))); break; // FROZENSET
        case 0x90: { const items = this.popMark(); this.appendItems(this.top(), items); break; } // ADDITEMS
        case 0x71: this.memoPut(this.u8()); break; // BINPUT
        case 0x72: this.memoPut(this.u32()); break; // LONG_BINPUT
        case 0x70: this.memoPut(Number(this.line())); break; // PUT
        case 0x94: this.memoPut(this.memo.size); break; // MEMOIZE
        case 0x68: this.memoGet(this.u8()); break; // BINGET
        case 0x6a: this.memoGet(this.u32()); break; // LONG_BINGET
        case 0x67: this.memoGet(Number(this.line())); break; // GET
        case 0x4a: this.push(this.view.getInt32(this.need(4), true)); break; // BININT
        case 0x4b: this.push(this.u8()); break; // BININT1
        case 0x4d: this.push(this.u16()); break; // BININT2
        case 0x8a: this.pushLong(this.u8()); break; // LONG1
        case 0x8b: this.pushLong(this.u32()); break; // LONG4
        case 0x49: { // INT (protocol 0; I01/I00 are True/False)
          const s = this.line();
          if (s === '01' || s === '00') this.push(s === '01'); else this.pushInt(s);
          break;
        }
        case 0x4c: this.pushInt(this.line()); break; // LONG
        case 0x47: this.push(this.view.getFloat64(this.need(8), false)); break; // BINFLOAT (big-endian)
        case 0x46: this.push(Number.parseFloat(this.line())); break; // FLOAT
        case 0x58: this.push(this.utf8(this.u32())); break; // BINUNICODE
        case 0x8c: this.push(this.utf8(this.u8())); break; // SHORT_BINUNICODE
        case 0x8d: this.push(this.utf8(this.u64())); break; // BINUNICODE8
        case 0x56: this.push(unescapeRawUnicode(this.line())); break; // UNICODE
        case 0x42: this.push(this.bytes(this.u32()).slice()); break; // BINBYTES
        case 0x43: this.push(this.bytes(this.u8()).slice()); break; // SHORT_BINBYTES
        case 0x8e: case 0x96: this.push(this.bytes(this.u64()).slice()); break; // BINBYTES8, BYTEARRAY8
        // Python 2 str: torch.load decodes with utf-8 as well.
        case 0x54: this.push(this.utf8(this.view.getInt32(this.need(4), true))); break; // BINSTRING
        case 0x55: this.push(this.utf8(this.u8())); break; // SHORT_BINSTRING
        case 0x53: this.push(unquote(this.line())); break; // STRING
        case 0x88: this.push(true); break; // NEWTRUE
        case 0x89: this.push(false); break; // NEWFALSE
        case 0x4e: this.push(null); break; // NONE
        case 0x63: { const m = this.line(); this.global(m, this.line()); break; } // GLOBAL
        case 0x93: { // STACK_GLOBAL
          const name = this.pop(); const mod = this.pop();
          if (typeof mod !== 'string' || typeof name !== 'string') this.fail('STACK_GLOBAL needs two strings');
          this.global(mod, name);
          break;
        }
        case 0x52: { const args = this.pop(); this.call(this.pop(), args); break; } // REDUCE
        case 0x81: { const args = this.pop(); this.call(this.pop(), args); break; } // NEWOBJ
        case 0x92: { // NEWOBJ_EX
          const kw = this.pop(); const args = this.pop();
          if (!(kw instanceof PyDict) || kw.size > 0) this.fail('NEWOBJ_EX with keyword arguments is not supported');
          this.call(this.pop(), args);
          break;
        }
        case 0x62: { const state = this.pop(); buildObject(this.top(), state); break; } // BUILD
        case 0x51: this.persistent(this.pop()); break; // BINPERSID
        case 0x50: this.persistent(this.line()); break; // PERSID
        case 0x73: { const v = this.pop(); const k = this.pop(); this.setItems(this.top(), [k, v]); break; } // SETITEM
        case 0x75: { const kv = this.popMark(); this.setItems(this.top(), kv); break; } // SETITEMS
        case 0x61: { const v = this.pop(); this.appendItems(this.top(), [v]); break; } // APPEND
        case 0x65: { const items = this.popMark(); this.appendItems(this.top(), items); break; } // APPENDS
        case 0x30: this.pop(); break; // POP
        case 0x31: this.popMark(); break; // POP_MARK
        case 0x32: this.push(this.top()); break; // DUP
        default: {
          this.pos -= 1;
          const name = REFUSED.get(op);
          this.fail(name !== undefined ? `opcode ${name} is not supported (it needs code execution or out-of-band buffers)`
            : `unknown opcode 0x${op.toString(16).padStart(2, '0')}`);
        }
      }
    }
  }
}

/** Protocol-0 STRING argument: a Python repr of a str, e.g. 'abc' or "it's". */
function unquote(s: string): string {
  const q = s[0];
  if ((q !== "'" && q !== '"') || s[s.length - 1] !== q || s.length < 2) {
    throw new PickleDataError(`bad STRING literal ${s}`);
  }
  return s.slice(1, -1).replace(/\\(x[0-9a-fA-F]{2}|.)/g, (_m, e: string) => {
    if (e.startsWith('x') && e.length === 3) return String.fromCharCode(Number.parseInt(e.slice(1), 16));
    return ({ n: '\n', r: '\r', t: '\t', '\\': '\\', "'": "'", '"': '"' } as Record<string, string>)[e] ?? `\\${e}`;
  });
}

/** Protocol-0 UNICODE argument: raw-unicode-escape (\uXXXX and \UXXXXXXXX only). */
function unescapeRawUnicode(s: string): string {
  return s.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_m, a?: string, b?: string) =>
    String.fromCodePoint(Number.parseInt(a ?? b ?? '0', 16)));
}
