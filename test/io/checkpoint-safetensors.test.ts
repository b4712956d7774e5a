/** safetensors reader/writer: format details, round trips and every class of bad file. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readSafetensors, writeSafetensors } from '../../src/io/checkpoint/safetensors.js';
import { loadCheckpointFile } from '../../src/io/checkpoint/index.js';
import type { RawTensor } from '../../src/engine/dtype.js';
import { CheckpointError } from '../../src/util/errors.js';
import { f32, fixtureDir, i64, tempDir } from './checkpoint-support.js';

const dir = tempDir('st');

const tensors = new Map<string, RawTensor>([
  ['z.weight', f32([2, 3], [1, 2, 3, 4, 5, 6])],
  ['a.index', i64([3], [-1, 0, 2 ** 40])],
  ['10', { dtype: 'bfloat16', shape: [2], data: Uint8Array.of(0x80, 0x3f, 0x00, 0xc0) }],
  ['m.half', { dtype: 'float16', shape: [1, 1], data: Uint8Array.of(0x00, 0x3c) }],
  ['flags', { dtype: 'bool', shape: [3], data: Uint8Array.of(1, 0, 1) }],
  ['bytes', { dtype: 'uint8', shape: [2], data: Uint8Array.of(0, 255) }],
  ['i8', { dtype: 'int8', shape: [1], data: Uint8Array.of(0x80) }],
  ['i16', { dtype: 'int16', shape: [1], data: Uint8Array.of(1, 2) }],
  ['i32', { dtype: 'int32', shape: [1], data: Uint8Array.of(1, 2, 3, 4) }],
  ['f64', { dtype: 'float64', shape: [], data: new Uint8Array(new Float64Array([Math.PI]).buffer) }],
  ['empty', f32([0, 4], [])],
]);

test('write: sorted keys, 8-byte padded header, __metadata__, contiguous offsets; read back exactly', () => {
  const f = path.join(dir, 'all.safetensors');
  writeSafetensors(f, tensors, { metadata: { format: 'pt', note: 'misfm' } });
  const raw = fs.readFileSync(f);
  const n = Number(raw.readBigUInt64LE(0));
  assert.equal((8 + n) % 8, 0);
  const header = JSON.parse(raw.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  const names = [...tensors.keys()].sort();
  // Parse the key order from the raw text: JSON.parse would move the integer-like key '10' first.
  const textOrder = [...raw.subarray(8, 8 + n).toString('utf8').matchAll(/"([^"]+)":\{"dtype"/g)].map((m) => m[1]);
  assert.deepEqual(textOrder, names);
  assert.deepEqual(header.__metadata__, { format: 'pt', note: 'misfm' });
  assert.equal(header['10']?.dtype, 'BF16');
  assert.equal(header['a.index']?.dtype, 'I64');
  let end = 0;
  for (const k of names) {
    assert.equal(header[k]?.data_offsets[0], end, k);
    end = header[k]?.data_offsets[1] ?? -1;
  }
  assert.equal(raw.length, 8 + n + end);
  const back = readSafetensors(f);
  assert.deepEqual(back.metadata, { format: 'pt', note: 'misfm' });
  assert.deepEqual([...back.tensors.keys()], names, 'read order = data order');
  for (const [k, t] of tensors) assert.deepEqual(back.tensors.get(k), { ...t, data: new Uint8Array(t.data) }, k);
});

test("order: 'insertion' keeps the map order (state_dict order)", () => {
  const f = path.join(dir, 'ins.safetensors');
  writeSafetensors(f, tensors, { order: 'insertion' });
  assert.deepEqual([...readSafetensors(f).tensors.keys()], [...tensors.keys()]);
  assert.equal(readSafetensors(f).metadata, null);
});

test('the fixture weights.safetensors reads with 684 tensors in file order', async () => {
  const st = readSafetensors(path.join(fixtureDir, 'weights.safetensors'));
  assert.equal(st.tensors.size, 684);
  assert.equal([...st.tensors.keys()][0], 'embeddings.0.proj.weight');
  const l = await loadCheckpointFile(path.join(fixtureDir, 'weights.safetensors'));
  assert.equal(l.meta.format, 'safetensors');
});

/** Build a safetensors file from a header object/string and a data section. */
function craft(name: string, header: unknown, data: Uint8Array, lengthOverride?: number): string {
  const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(lengthOverride ?? h.length));
  const f = path.join(dir, name);
  fs.writeFileSync(f, Buffer.concat([len, h, data]));
  return f;
}

function expectError(f: string, pattern: RegExp): void {
  assert.throws(() => readSafetensors(f), (e: unknown) =>
    e instanceof CheckpointError && e.code === 'CHECKPOINT' && e.message.includes(f) && pattern.test(e.message));
}

test('bad safetensors files give CheckpointErrors naming the file and the problem', async () => {
  const ok = { w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  const good = craft('good.safetensors', ok, new Uint8Array(8));
  assert.equal(readSafetensors(good).tensors.size, 1);
  const whole = fs.readFileSync(good);
  const cut = path.join(dir, 'cut.safetensors');
  fs.writeFileSync(cut, whole.subarray(0, whole.length - 3));
  expectError(cut, /'w'.*exceed the data section of 5 bytes/);
  const tiny = path.join(dir, 'tiny.safetensors');
  fs.writeFileSync(tiny, whole.subarray(0, 5));
  expectError(tiny, /truncated safetensors file: 5 bytes/);
  expectError(craft('longhdr.safetensors', ok, new Uint8Array(8), 5000), /header length 5000 exceeds/);
  expectError(craft('json.safetensors', '{"w": {"dtype": "F32",', new Uint8Array(8)), /bad safetensors header JSON/);
  expectError(craft('array.safetensors', '[1,2]', new Uint8Array(8)), /not a JSON object/);
  expectError(craft('dtype.safetensors', { w: { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] } }, new Uint8Array(2)),
    /'w': unsupported dtype "F8_E4M3"/);
  expectError(craft('size.safetensors', { w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)),
    /do not hold float32\[3\] \(12 bytes\)/);
  expectError(craft('range.safetensors', { w: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, new Uint8Array(8)),
    /exceed the data section of 8 bytes/);
  expectError(craft('overlap.safetensors', {
    a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
  }, new Uint8Array(8)), /data of 'a' and 'b' overlap/);
  expectError(craft('shape.safetensors', { w: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, new Uint8Array(8)), /shape \[-2\]/);
  expectError(craft('meta.safetensors', { __metadata__: { a: 1 } }, new Uint8Array(0)), /__metadata__ must map strings/);
  // Through the format dispatcher, a truncated header is recognised as safetensors and explained.
  await assert.rejects(loadCheckpointFile(path.join(dir, 'longhdr.safetensors')), /truncated safetensors file: header claims 5000 bytes/);
});

test('writer refuses inconsistent tensors and leaves no file behind', () => {
  const f = path.join(dir, 'bad-out.safetensors');
  assert.throws(() => writeSafetensors(f, { w: { dtype: 'float32', shape: [4], data: new Uint8Array(4) } }),
    (e: unknown) => e instanceof CheckpointError && /'w' float32\[4\] needs 16 bytes, has 4/.test(e.message));
  assert.throws(() => writeSafetensors(f, { w: f32([1], [1]) }, { metadata: { n: 3 as unknown as string } }), /must be a string/);
  assert.equal(fs.existsSync(f), false);
  assert.deepEqual(fs.readdirSync(dir).filter((n) => n.includes('bad-out')), []);
});
