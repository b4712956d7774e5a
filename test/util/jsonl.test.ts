import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { JsonlLogger, readJsonl } from '../../src/util/jsonl.js';
import { MisfmError } from '../../src/util/errors.js';

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'misfm-jsonl-'));
}

test('logger writes one object per line with an ISO time; reader returns them', () => {
  const dir = tmpDir();
  const file = path.join(dir, 'log.jsonl');
  let t = Date.UTC(2024, 0, 2, 3, 4, 5, 678);
  const log = new JsonlLogger(file, { clock: () => t });
  log.log({ iter: 1, loss: 0.5 });
  t += 1000;
  log.log({ iter: 2, loss: 0.25, note: 'line\nbreak' });
  log.close();
  log.close();
  const text = fs.readFileSync(file, 'utf8');
  assert.equal(text, '{"time":"2024-01-02T03:04:05.678Z","iter":1,"loss":0.5}\n{"time":"2024-01-02T03:04:06.678Z","iter":2,"loss":0.25,"note":"line\\nbreak"}\n');
  const { records, truncatedTail } = readJsonl<{ iter: number; note?: string }>(file);
  assert.deepEqual(records.map((r) => r.iter), [1, 2]);
  assert.equal(records[1]!.note, 'line\nbreak');
  assert.equal(truncatedTail, undefined);
  assert.throws(() => log.log({ iter: 3 }), /log after close/);
  fs.rmSync(dir, { recursive: true });
});

test('resuming appends; a crash-truncated last line is reported by the reader and repaired by the logger', () => {
  const dir = tmpDir();
  const file = path.join(dir, 'log.jsonl');
  const a = new JsonlLogger(file);
  a.log({ iter: 1 });
  a.log({ iter: 2 });
  a.close();
  // Simulate a crash in the middle of writing record 3.
  fs.appendFileSync(file, '{"time":"2024-01-0');
  const r1 = readJsonl(file);
  assert.equal(r1.records.length, 2);
  assert.equal(r1.truncatedTail, '{"time":"2024-01-0');
  const b = new JsonlLogger(file);
  assert.equal(b.repairedTail, '{"time":"2024-01-0');
  b.log({ iter: 3 });
  b.close();
  const r2 = readJsonl<{ iter: number }>(file);
  assert.deepEqual(r2.records.map((r) => r.iter), [1, 2, 3]);
  assert.equal(r2.truncatedTail, undefined);
  // A complete last record that only lacks its newline is kept.
  fs.writeFileSync(file, '{"iter":1}\n{"iter":2}');
  const c = new JsonlLogger(file);
  assert.equal(c.repairedTail, undefined);
  c.log({ iter: 3 });
  c.close();
  assert.deepEqual(readJsonl<{ iter: number }>(file).records.map((r) => r.iter), [1, 2, 3]);
  fs.rmSync(dir, { recursive: true });
});

test('reader rejects corrupt lines elsewhere, naming the file and line', () => {
  const dir = tmpDir();
  const file = path.join(dir, 'bad.jsonl');
  fs.writeFileSync(file, '{"a":1}\n\n{"a":2\n{"a":3}\n');
  assert.throws(() => readJsonl(file), (e: unknown) => e instanceof MisfmError && e.code === 'DATA' && e.message.includes(file) && /line 3 is not valid JSON/.test(e.message));
  fs.writeFileSync(file, '{"a":1}\n[1,2]\n');
  assert.throws(() => readJsonl(file), /line 2 is not a JSON object/);
  // A bad last line that does end with a newline is not a crash artefact.
  fs.writeFileSync(file, '{"a":1}\n{"a":\n');
  assert.throws(() => readJsonl(file), /line 2/);
  assert.throws(() => readJsonl(path.join(dir, 'missing.jsonl')), (e: unknown) => e instanceof MisfmError && /missing\.jsonl/.test(e.message));
  assert.throws(() => new JsonlLogger(path.join(dir, 'no-such-dir', 'x.jsonl')), (e: unknown) => e instanceof MisfmError && /no-such-dir/.test(e.message));
  const log = new JsonlLogger(path.join(dir, 'ok.jsonl'));
  assert.throws(() => log.log({ big: 1n }), /not JSON-serialisable/);
  log.close();
  fs.rmSync(dir, { recursive: true });
});
