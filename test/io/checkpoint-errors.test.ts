/**
 * Foreign, legacy, truncated and corrupt checkpoint files: each must give a CheckpointError that names
 * the file and says what is wrong. Also state_dict extraction rules and atomic writes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  PyDict, extractStateDict, loadCheckpointFile, readTorchFile, saveTorchCheckpoint, writeTorchFile,
} from '../../src/io/checkpoint/index.js';
import { ZipReader, ZipWriter } from '../../src/io/checkpoint/zip.js';
import { CheckpointError } from '../../src/util/errors.js';
import { f32, fixtureDir, tempDir } from './checkpoint-support.js';

const dir = tempDir('ckerr');

async function expectLoadError(f: string, pattern: RegExp): Promise<void> {
  await assert.rejects(loadCheckpointFile(f), (e: unknown) => {
    assert.ok(e instanceof CheckpointError, `CheckpointError expected, got ${String(e)}`);
    assert.equal(e.code, 'CHECKPOINT');
    assert.ok(e.message.includes(f), `message names the file: ${e.message}`);
    assert.match(e.message, pattern);
    return true;
  });
}

function file(name: string, content: Uint8Array | string): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, content);
  return f;
}

function zipWith(name: string, entries: [string, Uint8Array][]): string {
  const f = path.join(dir, name);
  const fd = fs.openSync(f, 'w');
  const w = new ZipWriter(fd);
  for (const [n, b] of entries) w.add(n, [b]);
  w.finish();
  fs.closeSync(fd);
  return f;
}

test('foreign files are recognised and explained', async () => {
  await expectLoadError(file('img.png', Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13)), /looks like a PNG image/);
  await expectLoadError(file('notes.txt', 'model weights are in another castle\n'), /the file is text/);
  await expectLoadError(file('empty.pt', ''), /empty file/);
  await expectLoadError(file('vol.nii.gz', Uint8Array.of(0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3)), /gzip/);
  await expectLoadError(file('rand.bin', Uint8Array.of(0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8)), /unrecognised content \(first bytes de ad be ef/);
  await expectLoadError(path.join(dir, 'does-not-exist.pt'), /cannot open/);
});

test('legacy torch.save files and bare pickles get a conversion hint', async () => {
  const legacy = Uint8Array.of(0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e);
  await expectLoadError(file('legacy.pt', legacy), /legacy .* not supported.*_use_new_zipfile_serialization=True/);
  await expectLoadError(file('bare.pkl', Uint8Array.of(0x80, 0x04, 0x4e, 0x2e)), /bare Python pickle/);
});

test('zips that are not torch archives, and TorchScript archives', async () => {
  await expectLoadError(zipWith('other.zip', [['readme.txt', new TextEncoder().encode('hi')]]),
    /not a torch\.save file: no <name>\/data\.pkl entry \(entries: readme\.txt\)/);
  await expectLoadError(zipWith('emptyzip.pt', []), /no <name>\/data\.pkl entry \(entries: none\)/);
  await expectLoadError(zipWith('script.pt', [['m/data.pkl', Uint8Array.of(0x80, 2, 0x4e, 0x2e)], ['m/code/__torch__/m.py', new Uint8Array(3)]]),
    /TorchScript archive/);
});

test('truncated and corrupt .pt files', async () => {
  const good = fs.readFileSync(path.join(fixtureDir, 'state_dict.pt'));
  await expectLoadError(file('half.pt', good.subarray(0, good.length >> 1)), /no end-of-central-directory record/);
  const flipped = Buffer.from(good);
  flipped[good.length >> 1] = (flipped[good.length >> 1] ?? 0) ^ 0x55;
  await expectLoadError(file('flipped.pt', flipped), /CRC-32 mismatch in 'state_dict\/data\/\d+'/);
  // A pickle that names a storage the archive lacks, and one whose storage has the wrong size.
  const dir2 = tempDir('ckerr2');
  const src = path.join(dir2, 'x.pt');
  writeTorchFile(src, { a: f32([3], [1, 2, 3]) });
  const pkl = readEntry(src, 'x/data.pkl');
  await expectLoadError(zipWith('nostorage.pt', [['x/data.pkl', pkl]]), /storage 'x\/data\/0' referenced by x\/data\.pkl is missing/);
  await expectLoadError(zipWith('short.pt', [['x/data.pkl', pkl], ['x/data/0', new Uint8Array(8)]]),
    /storage 'x\/data\/0' has 8 bytes, expected 12 \(3 x float32\)/);
  await expectLoadError(zipWith('badpkl.pt', [['x/data.pkl', pkl.subarray(0, 40)]]), /bad pickle data \(x\/data\.pkl at byte \d+\): truncated/);
});

function readEntry(f: string, name: string): Uint8Array {
  const z = ZipReader.open(f);
  try {
    return z.read(name);
  } finally {
    z.close();
  }
}

test('state_dict extraction: bare, nested, DataParallel prefix, and clear failures', () => {
  const F = '/virtual/ck.pt';
  const sd = new PyDict([['module.a.weight', f32([1], [1])], ['module.a.bias', f32([1], [0])]], true);
  const r = extractStateDict(new PyDict([['epoch', 3], ['state_dict', sd]]), F);
  assert.equal(r.source, 'state_dict');
  assert.equal(r.strippedPrefix, 'module.');
  assert.deepEqual([...r.stateDict.keys()], ['a.weight', 'a.bias']);
  const mixed = new PyDict([['module.a', f32([1], [1])], ['b', f32([1], [1])]]);
  assert.equal(extractStateDict(mixed, F).strippedPrefix, null, 'only stripped when every key has it');
  assert.equal(extractStateDict(new PyDict([['model', mixed]]), F).source, 'model');
  assert.throws(() => extractStateDict(new PyDict([['iteration', 1], ['optimizer', new PyDict()]]), F),
    /no state_dict found: the top-level dict has keys \["iteration", "optimizer"\]/);
  assert.throws(() => extractStateDict([f32([1], [1])], F), /top-level object is a list/);
  assert.throws(() => extractStateDict(new PyDict([['model_state_dict', new PyDict([['w', f32([1], [1])], ['n', 3]])]]), F),
    (e: unknown) => e instanceof CheckpointError && e.message.includes(F) && /'model_state_dict' entry 'n' is a int, not a tensor/.test(e.message));
  assert.throws(() => extractStateDict(new PyDict([['state_dict', new PyDict()]]), F), /state_dict under 'state_dict' is empty/);
});

test('saving is atomic: a failing save leaves neither a partial file nor a temp file', () => {
  const target = path.join(dir, 'atomic.pt');
  saveTorchCheckpoint(target, { model_state_dict: new PyDict([['w', f32([2], [1, 2])]], true), iteration: 1 });
  const before = fs.readFileSync(target);
  assert.throws(() => saveTorchCheckpoint(target, { bad: { dtype: 'int64', shape: [2], data: new Uint8Array(3) } }),
    (e: unknown) => e instanceof CheckpointError && e.message.includes(target) && /needs 16 bytes, has 3/.test(e.message));
  assert.ok(fs.readFileSync(target).equals(before), 'the previous file is untouched');
  assert.deepEqual(fs.readdirSync(dir).filter((n) => n.includes('atomic.pt') && n !== 'atomic.pt'), []);
  assert.throws(() => saveTorchCheckpoint(path.join(dir, 'no-such-dir', 'x.pt'), { a: 1 }), /cannot create output/);
  const v = readTorchFile(target);
  assert.ok(v instanceof PyDict);
  assert.equal(v.get('iteration'), 1);
});
