/** Pickle VM and writer, with hand-assembled opcode streams (Python-written pickles are in the interop test). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { unpickle } from '../../src/io/checkpoint/pickle-read.js';
import { pickleForTorch } from '../../src/io/checkpoint/pickle-write.js';
import { PyDict, PyFloat, PyTuple, type PyInput, type PyValue } from '../../src/io/checkpoint/pyvalue.js';
import { rawTensorFromView } from '../../src/io/checkpoint/tensor-view.js';
import { StorageRef, type VmValue } from '../../src/io/checkpoint/pickle-objects.js';
import { CheckpointError } from '../../src/util/errors.js';
import { canonical, f32, i64 } from './checkpoint-support.js';

const FILE = '/virtual/test.pkl';

/** Assemble bytes: numbers are single bytes, strings are latin-1 bytes, arrays are inserted. */
function pk(...parts: (number | string | Uint8Array)[]): Uint8Array {
  const out: number[] = [];
  for (const p of parts) {
    if (typeof p === 'number') out.push(p);
    else if (typeof p === 'string') for (const c of p) out.push(c.charCodeAt(0));
    else out.push(...p);
  }
  return Uint8Array.from(out);
}
const u32 = (n: number): Uint8Array => { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, n, true); return b; };
const u64 = (n: number): Uint8Array => { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, BigInt(n), true); return b; };
const short = (s: string): Uint8Array => { const b = new TextEncoder().encode(s); return pk(0x8c, b.length, b); };

/** Round trip through the writer and the VM (tensor storages resolved from the writer's list). */
function roundTrip(v: PyInput): { value: PyValue; storages: number } {
  const { pickle, storages } = pickleForTorch(v, FILE);
  const byKey = new Map(storages.map((s) => [s.key, s.data]));
  const persistentLoad = (pid: VmValue): VmValue => {
    const items = (pid as PyTuple).items;
    const key = items[2] as string;
    const cls = (items[1] as unknown as { name: string }).name;
    const dtype = cls === 'FloatStorage' ? 'float32' : cls === 'LongStorage' ? 'int64' : 'uint8';
    return new StorageRef(key, dtype, byKey.get(key)!.slice());
  };
  return { value: unpickle(pickle, { file: FILE, persistentLoad }), storages: storages.length };
}

test('writer and reader round-trip every supported value type', () => {
  const sd = new PyDict([['w', f32([2, 2], [1, 2, 3, 4])], ['n', i64([], [7])]], true);
  sd.attrs = new Map([['_metadata', new PyDict([['', new PyDict([['version', 1]])]], true)]]);
  const value = new PyDict([
    ['model_state_dict', sd], ['iteration', 12], [0, 'int key'], [-3, null], [2n ** 80n, 'bigint key'],
    ['ints', [0, 255, 256, 65535, 65536, -1, -(2 ** 31), 2 ** 31 - 1, 2 ** 31, 2 ** 53 - 1, -(2 ** 53 - 1)]],
    ['bigs', [2n ** 64n, -(2n ** 64n), 2n ** 2100n, -1n]],
    ['floats', [0.5, -1e-300, Number.NaN, Number.POSITIVE_INFINITY, 1e300]],
    ['tuples', new PyTuple([new PyTuple([]), new PyTuple([1]), new PyTuple([1, 2]), new PyTuple([1, 2, 3]), new PyTuple([1, 2, 3, 4, 5])])],
    ['strs', ['', 'ascii', 'Grüße ✓ 你好 🙂', 'x'.repeat(70000)]],
    ['bytes', [new Uint8Array(0), Uint8Array.of(0, 255, 128, 10)]],
    ['set', new Set<number | string>([3, 1, 'a'])],
    ['bools', [true, false, null]],
    ['long list', Array.from({ length: 2500 }, (_, i) => i)],
  ]);
  const { value: back } = roundTrip(value);
  assert.deepEqual(canonical(back), canonical(value));
  assert.ok(back instanceof PyDict);
  const sdBack = back.get('model_state_dict');
  assert.ok(sdBack instanceof PyDict && sdBack.ordered);
  assert.deepEqual(canonical((sdBack.attrs?.get('_metadata') ?? null)), canonical(sd.attrs.get('_metadata') ?? null));
});

test('writer input conveniences: plain objects and Maps become dicts, PyFloat forces a float', () => {
  const { value } = roundTrip({ a: 1, b: new Map<number, PyInput>([[5, [new PyFloat(2)]]]), c: { d: 'x' } });
  assert.deepEqual(canonical(value), {
    dict: [['a', 1], ['b', { dict: [[5, [2]]], ordered: false }], ['c', { dict: [['d', 'x']], ordered: false }]], ordered: false,
  });
  const { pickle } = pickleForTorch(new PyFloat(2), FILE);
  assert.equal(pickle[2], 0x47, 'BINFLOAT');
  assert.throws(() => pickleForTorch({ a: undefined } as unknown as PyInput, FILE),
    (e: unknown) => e instanceof CheckpointError && /cannot save value\["a"\]: undefined/.test(e.message));
  const cyc: PyInput[] = [];
  cyc.push(cyc);
  assert.throws(() => pickleForTorch(cyc, FILE), /cycle/);
  assert.throws(() => pickleForTorch({ t: { dtype: 'float32', shape: [3], data: new Uint8Array(8) } }, FILE),
    /tensor float32\[3\] needs 12 bytes, has 8/);
});

test('tensors sharing memory share one storage; separate tensors get their own', () => {
  const base = new Float32Array([0, 1, 2, 3, 4, 5, 6, 7]);
  const whole = { dtype: 'float32' as const, shape: [8], data: new Uint8Array(base.buffer) };
  const tail = { dtype: 'float32' as const, shape: [2, 2], data: new Uint8Array(base.buffer, 16, 16) };
  const other = f32([2], [9, 9]);
  const { value, storages } = roundTrip([whole, tail, other, whole]);
  assert.equal(storages, 2);
  assert.deepEqual(canonical(value), canonical([whole, tail, other, whole]));
});

test('hand-assembled protocol 4/5 opcodes (FRAME, MEMOIZE, STACK_GLOBAL, sets, 8-byte lengths, NEWOBJ)', () => {
  const body = pk(
    0x95, u64(0), // FRAME
    0x7d, 0x94, // EMPTY_DICT MEMOIZE (memo 0)
    0x28, // MARK
    short('od'), short('collections'), short('OrderedDict'), 0x93, 0x94, 0x29, 0x81, // STACK_GLOBAL, NEWOBJ with ()
    short('set'), 0x8f, 0x28, 0x4b, 3, 0x4b, 1, 0x90, // EMPTY_SET MARK 3 1 ADDITEMS
    short('b8'), 0x8e, u64(3), 'abc', // BINBYTES8
    short('u8'), 0x8d, u64(2), 'hi', // BINUNICODE8
    short('long4'), 0x8b, u32(2), 0x00, 0x80, // LONG4 -32768
    short('dup'), 0x4b, 9, 0x32, 0x86, // BININT1 9 DUP TUPLE2
    short('popped'), 0x4b, 1, 0x4b, 2, 0x30, // POP leaves 1
    short('frozen'), 0x28, short('z'), 0x91, // FROZENSET
    short('self'), 0x5d, 0x68, 0, 0x61, // [memo 0] via APPEND: a list holding the outer dict
    0x75, 0x2e, // SETITEMS STOP
  );
  const v = unpickle(pk(0x80, 4, body), { file: FILE });
  assert.ok(v instanceof PyDict);
  assert.ok(v.get('od') instanceof PyDict && (v.get('od') as PyDict).ordered);
  assert.deepEqual([...(v.get('set') as Set<number>)], [3, 1]);
  assert.deepEqual(v.get('b8'), new TextEncoder().encode('abc'));
  assert.equal(v.get('u8'), 'hi');
  assert.equal(v.get('long4'), -32768);
  assert.deepEqual(canonical(v.get('dup') ?? null), { tuple: [9, 9] });
  assert.equal(v.get('popped'), 1);
  assert.deepEqual([...(v.get('frozen') as Set<string>)], ['z']);
  assert.equal((v.get('self') as PyValue[])[0], v, 'memo references keep identity');
});

test('protocol 0 text opcodes', () => {
  const p0 = pk("(dp0\nS'a'\np1\nI42\nsS'b\\n'\nF1.5\nsV\\u00e9t\\u00e9\nI01\nsS'l'\nL123456789012345678901L\nsS'g'\ng1\ns.");
  assert.deepEqual(canonical(unpickle(p0, { file: FILE })), {
    dict: [['a', 42], ['b\n', 1.5], ['été', true], ['l', { bigint: '123456789012345678901' }], ['g', 'a']], ordered: false,
  });
});

function expectPickleError(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(() => unpickle(bytes, { file: FILE, entry: 'arch/data.pkl' }), (e: unknown) =>
    e instanceof CheckpointError && e.message.includes(FILE) && e.message.includes('arch/data.pkl') && pattern.test(e.message));
}

test('malicious or malformed pickles are refused with the global / opcode / position named', () => {
  expectPickleError(pk(0x80, 2, 'cos\nsystem\n', 0x58, u32(2), 'ls', 0x85, 0x52, 0x2e), /refusing to load global 'os\.system'/);
  expectPickleError(pk(0x80, 4, short('builtins'), short('eval'), 0x93, 0x2e), /refusing to load global 'builtins\.eval'/);
  expectPickleError(pk(0x80, 2, 'cnumpy\nload\n', 0x2e), /'numpy\.load'/);
  expectPickleError(pk(0x80, 2, 0x28, 'ios\nsystem\n', 0x2e), /INST is not supported/);
  expectPickleError(pk(0x80, 2, 0xff), /unknown opcode 0xff at|unknown opcode 0xff/);
  expectPickleError(pk(0x80, 2, 0x58, u32(100), 'abc'), /truncated/);
  expectPickleError(pk(0x80, 2, 0x2e), /stack underflow/);
  expectPickleError(pk(0x80, 2, 0x68, 5, 0x2e), /memo entry 5 is undefined/);
  expectPickleError(pk(0x80, 2, 0x58, u32(1), 'x', 0x51, 0x2e), /persistent id found/);
  expectPickleError(pk(0x80, 2, 0x7d, 0x29, 0x4b, 1, 0x73, 0x2e), /unsupported dict key of type tuple/);
  expectPickleError(pk(0x80, 6, 0x4e, 0x2e), /unsupported pickle protocol 6/);
  expectPickleError(pk(0x80, 2, 0x74, 0x2e), /MARK expected/);
  expectPickleError(pk(0x80, 2, 'ctorch\nFloatStorage\n', 0x2e), /cannot appear as a value/);
  expectPickleError(pk(0x80, 2, 'ctorch._utils\n_rebuild_tensor_v2\n', 0x4e, 0x85, 0x52, 0x2e), /tensor storage must be a persistent storage/);
});

test('strided views become contiguous tensors; out-of-range views are errors', () => {
  const storage = new Uint8Array(new Float32Array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]).buffer);
  const vals = (t: { data: Uint8Array }): number[] => [...new Float32Array(t.data.slice().buffer)];
  // [[1,2,3],[4,5,6]] transposed -> [[1,4],[2,5],[3,6]]
  assert.deepEqual(vals(rawTensorFromView(storage, 'float32', 1, [3, 2], [1, 3])), [1, 4, 2, 5, 3, 6]);
  assert.deepEqual(vals(rawTensorFromView(storage, 'float32', 2, [2, 3], [0, 1])), [2, 3, 4, 2, 3, 4], 'expanded');
  assert.deepEqual(vals(rawTensorFromView(storage, 'float32', 1, [2, 2], [4, 2])), [1, 3, 5, 7], 'step slicing');
  const contiguous = rawTensorFromView(storage, 'float32', 4, [2, 3], [3, 1]);
  assert.equal(contiguous.data.buffer, storage.buffer, 'contiguous views are not copied');
  assert.deepEqual(vals(contiguous), [4, 5, 6, 7, 8, 9]);
  assert.deepEqual(vals(rawTensorFromView(storage, 'float32', 9, [], [])), [9], '0-d');
  assert.equal(rawTensorFromView(storage, 'float32', 0, [0, 5], [5, 1]).data.byteLength, 0, 'empty');
  assert.throws(() => rawTensorFromView(storage, 'float32', 5, [2, 3], [3, 1]), /reaches element 10 of a 10-element float32 storage/);
  assert.throws(() => rawTensorFromView(storage, 'float32', 0, [2], [1, 1]), /different lengths/);
});
