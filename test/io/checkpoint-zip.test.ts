/** Zip reader/writer: round trips, 64-byte alignment, zip64, deflate, truncation and corruption. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32, deflateRawSync } from 'node:zlib';
import { ZipReader, ZipWriter, type ZipWriterOptions } from '../../src/io/checkpoint/zip.js';
import { CheckpointError } from '../../src/util/errors.js';
import { tempDir } from './checkpoint-support.js';

const dir = tempDir('zip');

function writeZip(file: string, entries: [string, Uint8Array[]][], opts?: ZipWriterOptions): void {
  const fd = fs.openSync(file, 'w');
  const w = new ZipWriter(fd, opts);
  for (const [n, chunks] of entries) w.add(n, chunks);
  w.finish();
  fs.closeSync(fd);
}

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

const sample: [string, Uint8Array[]][] = [
  ['arch/data.pkl', [bytes(1000, 1)]],
  ['arch/data/0', [bytes(7, 2), bytes(300, 3)]],
  ['arch/data/empty', []],
  ['arch/ünïcode name', [bytes(65, 4)]],
  ['arch/data/big', [bytes(300_000, 5), bytes(5, 6), bytes(2_000_000, 7)]], // large chunks bypass the write buffer
  ['arch/version', [new TextEncoder().encode('3\n')]],
];

function checkSample(file: string): void {
  const z = ZipReader.open(file);
  try {
    assert.deepEqual(z.entries.map((e) => e.name), sample.map(([n]) => n));
    for (const [n, chunks] of sample) {
      const e = z.entry(n);
      assert.ok(e !== undefined, n);
      assert.equal(e.method, 0);
      assert.equal(z.dataOffset(e) % 64, 0, `${n} data is 64-byte aligned`);
      assert.deepEqual(z.read(n), new Uint8Array(Buffer.concat(chunks)), n);
    }
  } finally {
    z.close();
  }
}

test('writer output reads back entry by entry, 64-byte aligned, CRC checked', () => {
  const f = path.join(dir, 'a.zip');
  writeZip(f, sample);
  checkSample(f);
  // Independent check of the CRC field against zlib.
  const z = ZipReader.open(f);
  assert.equal(z.entry('arch/data.pkl')?.crc32, crc32(bytes(1000, 1)));
  z.close();
});

test('forced zip64 records (local, central, end) read back', () => {
  const f = path.join(dir, 'z64.zip');
  writeZip(f, sample, { forceZip64: true });
  const raw = fs.readFileSync(f);
  assert.ok(raw.includes(Buffer.from([0x50, 0x4b, 0x06, 0x06])), 'zip64 end record present');
  checkSample(f);
});

test('more than 65535 entries switch to a zip64 end record', () => {
  const f = path.join(dir, 'many.zip');
  const fd = fs.openSync(f, 'w');
  const w = new ZipWriter(fd, { align: 1 });
  for (let i = 0; i < 70000; i++) w.add(`d/${i}`, [Uint8Array.of(i & 0xff)]);
  w.finish();
  fs.closeSync(fd);
  const z = ZipReader.open(f);
  assert.equal(z.entries.length, 70000);
  assert.deepEqual(z.read('d/69999'), Uint8Array.of(69999 & 0xff));
  z.close();
});

/** A one-entry DEFLATE zip with a data descriptor, assembled by hand (as other zip tools write). */
function deflateZip(name: string, content: Uint8Array): Buffer {
  const packed = deflateRawSync(content);
  const nm = Buffer.from(name);
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0); local.writeUInt16LE(20, 4); local.writeUInt16LE(8, 6); // flag 3: sizes follow
  local.writeUInt16LE(8, 8); local.writeUInt16LE(nm.length, 26);
  const desc = Buffer.alloc(16);
  desc.writeUInt32LE(0x08074b50, 0); desc.writeUInt32LE(crc32(content), 4);
  desc.writeUInt32LE(packed.length, 8); desc.writeUInt32LE(content.length, 12);
  const cd = Buffer.alloc(46);
  cd.writeUInt32LE(0x02014b50, 0); cd.writeUInt16LE(20, 4); cd.writeUInt16LE(20, 6); cd.writeUInt16LE(8, 8);
  cd.writeUInt16LE(8, 10); cd.writeUInt32LE(crc32(content), 16); cd.writeUInt32LE(packed.length, 20);
  cd.writeUInt32LE(content.length, 24); cd.writeUInt16LE(nm.length, 28);
  const cdOffset = 30 + nm.length + packed.length + 16;
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0); end.writeUInt16LE(1, 8); end.writeUInt16LE(1, 10);
  end.writeUInt32LE(46 + nm.length, 12); end.writeUInt32LE(cdOffset, 16);
  return Buffer.concat([local, nm, packed, desc, cd, nm, end]);
}

test('DEFLATE entries with data descriptors are inflated', () => {
  const f = path.join(dir, 'deflate.zip');
  const content = new TextEncoder().encode('misfm '.repeat(1000));
  fs.writeFileSync(f, deflateZip('x/data.pkl', content));
  const z = ZipReader.open(f);
  assert.equal(z.entries[0]?.method, 8);
  assert.ok(z.entries[0]!.compressedSize < content.length / 10);
  assert.deepEqual(z.read('x/data.pkl'), content);
  z.close();
});

function expectZipError(file: string, pattern: RegExp, read?: string): void {
  assert.throws(() => {
    const z = ZipReader.open(file);
    try {
      if (read !== undefined) z.read(read);
    } finally {
      z.close();
    }
  }, (e: unknown) => e instanceof CheckpointError && e.code === 'CHECKPOINT' && e.message.includes(file) && pattern.test(e.message));
}

test('truncated, shifted and corrupted archives give CheckpointErrors naming the file', () => {
  const f = path.join(dir, 'good.zip');
  writeZip(f, sample);
  const good = fs.readFileSync(f);
  const cut = path.join(dir, 'cut.zip');
  fs.writeFileSync(cut, good.subarray(0, good.length - 30));
  expectZipError(cut, /no end-of-central-directory record/);
  const holed = path.join(dir, 'holed.zip');
  fs.writeFileSync(holed, Buffer.concat([good.subarray(0, 200), good.subarray(400)]));
  expectZipError(holed, /central directory .* beyond the file size|damaged/);
  const flipped = Buffer.from(good);
  flipped[640] = (flipped[640] ?? 0) ^ 0xff; // inside arch/data.pkl's data (starts at 64)
  const bad = path.join(dir, 'crc.zip');
  fs.writeFileSync(bad, flipped);
  expectZipError(bad, /CRC-32 mismatch in 'arch\/data.pkl'/, 'arch/data.pkl');
  const z = ZipReader.open(bad);
  assert.equal(z.read('arch/data.pkl', false).byteLength, 1000, 'verify=false skips the CRC check');
  z.close();
  const text = path.join(dir, 'text.zip');
  fs.writeFileSync(text, 'just some text, not a zip\n');
  expectZipError(text, /not a readable zip archive/);
  expectZipError(path.join(dir, 'missing.zip'), /cannot open/);
});
