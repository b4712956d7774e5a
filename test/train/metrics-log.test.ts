import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as E from '../../src/engine/index.js';
import * as nn from '../../src/nn/index.js';
import { train, type BatchSource, type TrainableModel } from '../../src/train/trainer.js';
import { effectiveRecords, readMetricsLog, recordsOf, type MetricsRecord } from '../../src/train/metrics-log.js';
import { plotRun } from '../../src/cli/commands/plot.js';
import { presetConfig, applyOverrides } from '../../src/config/index.js';
import { Rng } from '../../src/util/rng.js';
import { MisfmError } from '../../src/util/errors.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'misfm-metricslog-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const jsonl = (recs: object[]): string => recs.map((r) => JSON.stringify(r)).join('\n') + '\n';

test('the resume rule: a resume at N supersedes earlier records past N and earlier end records, nothing else', () => {
  const log: MetricsRecord[] = [
    { event: 'train', iteration: 1, loss: 1 }, { event: 'train', iteration: 2, loss: 0.9 }, { event: 'valid', iteration: 2, score: 0.1 },
    { event: 'train', iteration: 3, loss: 0.8 }, { event: 'valid', iteration: 4, score: 0.3 }, { event: 'train', iteration: 4, loss: 0.7 },
    { event: 'end', iterations: 4, interrupted: true },
    { event: 'resume', iteration: 2, from: 'latest.pt' },
    { event: 'train', iteration: 3, loss: 0.85 }, { event: 'train', iteration: 4, loss: 0.75 }, { event: 'valid', iteration: 4, score: 0.2 },
    { event: 'end', iterations: 4, interrupted: false },
  ];
  const r = effectiveRecords(log);
  assert.equal(r.resumes, 1);
  assert.equal(r.superseded, 4, 'train 3, valid 4, train 4 and the interrupted end');
  assert.deepEqual(r.records.filter((x) => x.event === 'train').map((x) => [x.iteration, x.loss]), [[1, 1], [2, 0.9], [3, 0.85], [4, 0.75]]);
  assert.deepEqual(r.records.filter((x) => x.event === 'valid').map((x) => x.score), [0.1, 0.2]);
  assert.deepEqual(r.records.filter((x) => x.event === 'end').map((x) => x['interrupted']), [false]);
  // Two resumes: the second (from an older checkpoint) supersedes the first resumed run's records too.
  const twice = effectiveRecords([...log.slice(0, 11), { event: 'resume', iteration: 1 }, { event: 'train', iteration: 2, loss: 0.5 }]);
  assert.deepEqual(twice.records.filter((x) => x.event === 'train').map((x) => x.loss), [1, 0.5]);
  assert.equal(twice.resumes, 2);
  // Without a resume nothing is dropped, duplicates included (the rule is the only de-duplication).
  assert.equal(effectiveRecords(log.slice(0, 7)).records.length, 7);
});

test('readMetricsLog takes a run folder or the file, tolerates a crash-cut last line, names what is missing', () => {
  const run = path.join(tmp, 'r1');
  mkdirSync(run);
  writeFileSync(path.join(run, 'metrics.jsonl'), jsonl([{ event: 'train', iteration: 1, loss: 1 }, { event: 'resume', iteration: 0 }]) + '{"event":"tra');
  const a = readMetricsLog(run), b = readMetricsLog(path.join(run, 'metrics.jsonl'));
  assert.deepEqual(a.records, b.records);
  assert.deepEqual(recordsOf(a, 'train'), []);
  assert.equal(a.truncatedTail, '{"event":"tra');
  const empty = path.join(tmp, 'r-empty');
  mkdirSync(empty);
  assert.throws(() => readMetricsLog(empty), (e: unknown) => e instanceof MisfmError && e.message.includes(empty) && /no metrics\.jsonl/.test(e.message));
});

test('misfm plot draws a log with superseded iterations exactly like the clean log', () => {
  const clean: object[] = [], dup: object[] = [];
  for (let i = 1; i <= 30; i++) clean.push({ event: 'train', iteration: i, loss: 1.3 - i * 0.01 });
  for (const i of [10, 20, 30]) clean.push({ event: 'valid', iteration: i, score: i / 40 });
  // The lost process logged 21..26 with other values (and a validation at 25), then was killed.
  for (let i = 1; i <= 26; i++) dup.push({ event: 'train', iteration: i, loss: i <= 20 ? 1.3 - i * 0.01 : 5 });
  dup.push({ event: 'valid', iteration: 10, score: 0.25 }, { event: 'valid', iteration: 20, score: 0.5 }, { event: 'valid', iteration: 25, score: 0.99 });
  dup.push({ event: 'resume', iteration: 20, from: 'checkpoints/latest.pt' });
  for (let i = 21; i <= 30; i++) dup.push({ event: 'train', iteration: i, loss: 1.3 - i * 0.01 });
  dup.push({ event: 'valid', iteration: 30, score: 0.75 });
  const dirs = ['clean', 'dup'].map((n) => { const d = path.join(tmp, n, 'run'); mkdirSync(d, { recursive: true }); return d; });
  writeFileSync(path.join(dirs[0]!, 'metrics.jsonl'), jsonl(clean));
  writeFileSync(path.join(dirs[1]!, 'metrics.jsonl'), jsonl(dup));
  const a = readFileSync(plotRun(dirs[0]!)), b = readFileSync(plotRun(dirs[1]!));
  assert.ok(a.equals(b), 'the superseded records must not change the picture');
  // and the rule is what makes them equal: without the resume record the picture differs
  writeFileSync(path.join(dirs[1]!, 'metrics.jsonl'), jsonl(dup.filter((r) => (r as { event: string }).event !== 'resume')));
  assert.ok(!a.equals(readFileSync(plotRun(dirs[1]!))));
});

class Tiny extends nn.Module implements TrainableModel {
  readonly net: nn.Sequential;
  constructor() {
    super();
    this.net = this.registerModule('net', new nn.Sequential(new nn.Conv3d(1, 3, 3, { padding: 1 }), new nn.PReLU(), new nn.Conv3d(3, 3, 1)));
  }
  forward(x: E.Tensor): E.Tensor { return this.net.forward(x); }
}

function source(position: unknown): BatchSource {
  let next = typeof position === 'number' ? position : 0;
  return {
    async next() {
      const rng = new Rng(5).fork(next++);
      const n = 4 * 8 * 8;
      const img = new Float32Array(n).map(() => rng.normal());
      const l = E.fromTypedArray(new Int32Array(n).map((_, i) => (img[i]! > 0.5 ? 2 : img[i]! < -0.5 ? 1 : 0)), [1, 4, 8, 8]);
      const target = E.F.oneHot(l, 3);
      l.dispose();
      return { image: E.fromTypedArray(img, [1, 1, 4, 8, 8]), target };
    },
    position: () => next,
    async close() { /* nothing held */ },
  };
}

test('a real run interrupted after its checkpoint and resumed: the log in effect equals an uninterrupted run', async () => {
  const config = (dir: string): ReturnType<typeof presetConfig> => applyOverrides(presetConfig('small'), [
    'training.iterations=6', 'training.validEvery=2', 'training.saveEvery=100', `output.dir=${JSON.stringify(dir)}`,
    'training.deepSupervision.enabled=false', 'training.lr=0.01',
  ]);
  const validate = async (m: TrainableModel): Promise<{ score: number; metrics: Record<string, number> }> =>
    ({ score: E.tidy(() => (m as Tiny).net.at(2).stateDict().get('weight')!.abs().mean().item()), metrics: {} });
  const runA = path.join(tmp, 'uninterrupted'), runB = path.join(tmp, 'interrupted');
  E.manualSeed(3);
  const a = new Tiny();
  await train({ model: a, config: config(runA), makeSource: async (p) => source(p), validate, runDir: runA, quiet: true });
  E.manualSeed(3);
  const b1 = new Tiny();
  const s1 = await train({ model: b1, config: config(runB), makeSource: async (p) => source(p), validate, runDir: runB, quiet: true, stopAt: 2 });
  const kept = path.join(runB, 'at-2.pt');
  copyFileSync(s1.checkpoints.latest, kept);
  // The process goes on to iteration 5 (logging 3..5), and its later checkpoint is lost.
  const b2 = new Tiny();
  await train({ model: b2, config: config(runB), makeSource: async (p) => source(p), validate, runDir: runB, quiet: true, resumeFrom: kept, stopAt: 5 });
  const b3 = new Tiny();
  await train({ model: b3, config: config(runB), makeSource: async (p) => source(p), validate, runDir: runB, quiet: true, resumeFrom: kept });
  const raw = readFileSync(path.join(runB, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as MetricsRecord);
  assert.deepEqual(raw.filter((r) => r.event === 'train').map((r) => r.iteration), [1, 2, 3, 4, 5, 3, 4, 5, 6], 'the file keeps what each process logged');
  const logA = readMetricsLog(runA), logB = readMetricsLog(runB);
  const strip = (rs: MetricsRecord[]): unknown[] => rs.map((r) => [r.event, r.iteration, r['loss'] ?? r['score']]);
  assert.deepEqual(strip(recordsOf(logB, 'train')), strip(recordsOf(logA, 'train')));
  assert.deepEqual(strip(recordsOf(logB, 'valid')), strip(recordsOf(logA, 'valid')));
  assert.equal(recordsOf(logB, 'end').length, 1);
  assert.equal(logB.resumes, 2);
  assert.equal(logB.superseded, 3 + 1 + 2, 'train 3..5, valid 4, the end records of both earlier processes');
  for (const m of [a, b1, b2, b3]) m.dispose();
});
