import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Progress, formatDuration, type ProgressStream } from '../../src/util/progress.js';

/** A fake stream that records writes, and a manual clock. */
function setup(isTTY: boolean, columns?: number): { stream: ProgressStream & { out: string[] }; clock: { t: number; now: () => number } } {
  const out: string[] = [];
  const stream = { out, isTTY, columns, write(s: string): boolean { out.push(s); return true; } };
  const clock = { t: 1000, now: (): number => clock.t };
  return { stream, clock };
}

test('formatDuration', () => {
  assert.equal(formatDuration(0), '0:00');
  assert.equal(formatDuration(61.4), '1:01');
  assert.equal(formatDuration(3600 + 5 * 60 + 7), '1:05:07');
  assert.equal(formatDuration(Number.POSITIVE_INFINITY), '?');
});

test('TTY: one updating line, throttled to 10 Hz, with rate, ETA and extra fields', () => {
  const { stream, clock } = setup(true);
  const p = new Progress({ total: 100, label: 'train', stream, clock: clock.now });
  for (let i = 0; i < 10; i++) {
    clock.t += 20; // 50 items/s, updates every 20 ms
    p.tick(1, { loss: 0.123456, 'wait%': 12 });
  }
  // 200 ms of updates at a 100 ms throttle: drawn at t=1020 (first) and t=1120 (after 100 ms).
  assert.equal(stream.out.length, 2);
  assert.ok(stream.out.every((s) => s.startsWith('\r') && !s.includes('\n')));
  const last = stream.out[stream.out.length - 1]!;
  assert.match(last, /^\rtrain {2}6\/100 \(6\.0%\)/);
  assert.match(last, /50\.00 it\/s/);
  assert.match(last, /eta 0:02/); // 94 left at 50/s = 1.9 s
  assert.match(last, /loss 0\.1235/);
  assert.match(last, /wait% 12/);
  clock.t += 500;
  p.finish({ loss: 0.1 });
  const fin = stream.out[stream.out.length - 1]!;
  assert.ok(fin.endsWith('\n'));
  assert.match(fin, /10\/100/);
  assert.doesNotMatch(fin, /eta/);
  p.finish();
  assert.equal(stream.out.filter((s) => s.endsWith('\n')).length, 1, 'finish is idempotent');
});

test('TTY: lines are cut to the terminal width and shorter lines clear the rest', () => {
  const { stream, clock } = setup(true, 30);
  const p = new Progress({ total: 1000, stream, clock: clock.now });
  clock.t += 200;
  p.update(1, { a_long_field_name: 'x'.repeat(40) });
  assert.equal(stream.out[0]!.length, 1 + 29); // '\r' + 29 visible columns
  const { stream: s2, clock: c2 } = setup(true);
  const r = new Progress({ stream: s2, clock: c2.now });
  c2.t += 200;
  r.update(5, { note: 'a long note here' });
  c2.t += 200;
  r.update(6, { note: '' });
  assert.ok(!s2.out[0]!.includes('\x1b[K'));
  assert.ok(s2.out[1]!.endsWith('\x1b[K'), 'clear-to-end after a shorter line');
});

test('rate is smoothed: a sudden slowdown moves the rate gradually', () => {
  const { stream, clock } = setup(false);
  const p = new Progress({ total: 10000, stream, clock: clock.now, plainIntervalMs: 0, smoothingSeconds: 10 });
  for (let i = 0; i < 100; i++) { clock.t += 100; p.tick(10); } // 100 items/s for 10 s
  assert.ok(Math.abs(p.itemsPerSecond() - 100) < 1e-6);
  for (let i = 0; i < 10; i++) { clock.t += 100; p.tick(1); } // 10 items/s for 1 s
  const r = p.itemsPerSecond();
  // EMA with tau 10 s after 1 s: 100 - 90 * (1 - e^-0.1) = 91.4
  assert.ok(Math.abs(r - (100 - 90 * (1 - Math.exp(-0.1)))) < 1e-6, `rate ${r}`);
  assert.equal(stream.out.length, 0, 'plainIntervalMs 0 prints nothing before finish');
  p.finish();
  assert.equal(stream.out.length, 1);
});

test('a long field-only update (validation) does not drag the rate to zero; the final line shows the average', () => {
  const { stream, clock } = setup(false);
  const p = new Progress({ total: 4, stream, clock: clock.now, plainIntervalMs: 0 });
  for (let i = 0; i < 4; i++) { clock.t += 1000; p.tick(); } // 1 it/s
  clock.t += 60_000;
  p.update(4, { valid: 0.5 }); // a minute of validation, no new item
  assert.ok(Math.abs(p.itemsPerSecond() - 1) < 1e-9, `rate ${p.itemsPerSecond()}`);
  p.finish();
  // 4 items in 64 s: the final line reports the run's average, 0.0625 it/s.
  assert.match(stream.out[stream.out.length - 1]!, /0\.06\d* it\/s/);
});

test('not a TTY: plain lines every plainIntervalMs, no control characters', () => {
  const { stream, clock } = setup(false);
  const p = new Progress({ total: 50, unit: 'vol', stream, clock: clock.now, plainIntervalMs: 5000 });
  for (let i = 0; i < 50; i++) { clock.t += 1000; p.tick(); }
  // 50 s of work, a line every 5 s.
  assert.equal(stream.out.length, 10);
  assert.ok(stream.out.every((s) => s.endsWith('\n') && !s.includes('\r') && !s.includes('\x1b')));
  assert.match(stream.out[0]!, /^5\/50 \(10\.0%\) {2}1\.00 vol\/s {2}elapsed 0:05 {2}eta 0:45/);
  p.finish();
  assert.match(stream.out[10]!, /^50\/50 \(100\.0%\)/);
});

test('open-ended count shows no percentage or ETA', () => {
  const { stream, clock } = setup(false);
  const p = new Progress({ stream, clock: clock.now });
  clock.t += 2000;
  p.update(7);
  assert.equal(p.format(), '7  3.50 it/s  elapsed 0:02');
});
