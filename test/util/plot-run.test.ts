import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { plotRun } from '../../src/cli/commands/plot.js';
import { MisfmError } from '../../src/util/errors.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'misfm-plotrun-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('misfm plot draws loss, validation and the chance floor; a resumed run keeps the last records; no metrics is an error', async () => {
  const { mkdirSync } = await import('node:fs');
  const lines: object[] = [];
  for (let i = 1; i <= 40; i++) lines.push({ event: 'train', iteration: i, loss: 1.3 - i * 0.01 });
  for (const i of [10, 20, 30, 40]) lines.push({ event: 'valid', iteration: i, score: 0.1 + i / 200, chance: 0.07 });
  const dirA = path.join(tmp, 'a'), dirB = path.join(tmp, 'b');
  mkdirSync(dirA); mkdirSync(dirB);
  writeFileSync(path.join(dirA, 'metrics.jsonl'), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  writeFileSync(path.join(dirB, 'metrics.jsonl'), lines.map((l) => JSON.stringify({ ...l, chance: undefined })).join('\n') + '\n');
  const a = readFileSync(plotRun(dirA)), b = readFileSync(plotRun(dirB));
  assert.deepEqual([...a.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG');
  assert.notDeepEqual(a, b, 'the chance series changes the picture');
  // A resume at 20 drops the records logged after it by the interrupted process.
  const dirC = path.join(tmp, 'c');
  mkdirSync(dirC);
  writeFileSync(path.join(dirC, 'metrics.jsonl'), [...lines, { event: 'resume', iteration: 20 }, ...lines.slice(20, 40)].map((l) => JSON.stringify(l)).join('\n') + '\n');
  assert.deepEqual(readFileSync(plotRun(dirC)).length > 0, true);
  const empty = path.join(tmp, 'empty');
  mkdirSync(empty);
  assert.throws(() => plotRun(empty), (e: unknown) => e instanceof MisfmError && /no metrics\.jsonl/.test(e.message));
});
