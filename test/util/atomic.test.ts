import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeFileAtomic, writeFileAtomicAsync, writeJsonAtomic } from '../../src/util/atomic.js';
import { MisfmError } from '../../src/util/errors.js';

test('writeFileAtomic replaces the file in one step and leaves no temp files', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'misfm-atomic-'));
  const file = path.join(dir, 'state.bin');
  writeFileAtomic(file, 'old contents');
  const bytes = Uint8Array.from({ length: 100000 }, (_, i) => (i * 7) & 255);
  writeFileAtomic(file, bytes);
  assert.deepEqual(new Uint8Array(fs.readFileSync(file)), bytes);
  await writeFileAtomicAsync(file, 'async text');
  assert.equal(fs.readFileSync(file, 'utf8'), 'async text');
  writeJsonAtomic(path.join(dir, 'c.json'), { lr: 1e-3, shape: [64, 128, 128] });
  assert.equal(fs.readFileSync(path.join(dir, 'c.json'), 'utf8'), '{\n  "lr": 0.001,\n  "shape": [\n    64,\n    128,\n    128\n  ]\n}\n');
  assert.deepEqual(fs.readdirSync(dir).sort(), ['c.json', 'state.bin']);
  fs.rmSync(dir, { recursive: true });
});

test('failures leave the target untouched, remove the temp file, and name the file', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'misfm-atomic-'));
  const missing = path.join(dir, 'nope', 'x.json');
  assert.throws(() => writeFileAtomic(missing, 'x'), (e: unknown) => e instanceof MisfmError && e.message.includes(missing) && /cannot write file/.test(e.message));
  await assert.rejects(writeFileAtomicAsync(missing, 'x'), (e: unknown) => e instanceof MisfmError && e.message.includes(missing));
  // Target is a directory: rename fails after the temp file was written; the temp must be cleaned up.
  const target = path.join(dir, 'adir');
  fs.mkdirSync(target);
  fs.writeFileSync(path.join(target, 'keep'), 'k');
  assert.throws(() => writeFileAtomic(target, 'data'), MisfmError);
  assert.deepEqual(fs.readdirSync(dir), ['adir']);
  assert.deepEqual(fs.readdirSync(target), ['keep']);
  const circular: Record<string, unknown> = {};
  circular['self'] = circular;
  const jf = path.join(dir, 'c.json');
  assert.throws(() => writeJsonAtomic(jf, circular), (e: unknown) => e instanceof MisfmError && /not JSON-serialisable/.test(e.message) && e.message.includes(jf));
  assert.equal(fs.existsSync(jf), false);
  fs.rmSync(dir, { recursive: true });
});
