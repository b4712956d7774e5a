import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/util/rng.js';
import { MisfmError } from '../../src/util/errors.js';

/** Pearson chi-square statistic of observed counts against equal expected counts. */
function chiSquare(counts: number[]): number {
  const total = counts.reduce((a, b) => a + b, 0);
  const e = total / counts.length;
  return counts.reduce((s, c) => s + ((c - e) * (c - e)) / e, 0);
}

test('xoshiro128** core matches the reference C implementation', () => {
  // Outputs of the authors' C code for state {1,2,3,4}.
  const r = Rng.fromState([1, 2, 3, 4, 0, 0]);
  const got = Array.from({ length: 8 }, () => r.nextUint32());
  assert.deepEqual(got, [11520, 0, 5927040, 70819200, 2031721883, 1637235492, 1287239034, 3734860849]);
});

test('seeding uses SplitMix64 (reference C: seed 42)', () => {
  const r = new Rng(42);
  assert.deepEqual(r.getState(), [3184996902, 803958421, 686809907, 2993090819, 0, 0]);
  assert.deepEqual(Array.from({ length: 5 }, () => r.nextUint32()), [825760943, 2622800619, 310231447, 2495256757, 2989135795]);
  // bigint and number seeds agree; negative seeds wrap modulo 2^64.
  assert.deepEqual(new Rng(42n).getState(), new Rng(42).getState());
  assert.deepEqual(new Rng(-1).getState(), new Rng((1n << 64n) - 1n).getState());
});

test('same seed gives the same stream, different seeds differ', () => {
  const a = new Rng(7);
  const b = new Rng(7);
  const c = new Rng(8);
  const sa = Array.from({ length: 1000 }, () => a.uniform());
  const sb = Array.from({ length: 1000 }, () => b.uniform());
  const sc = Array.from({ length: 1000 }, () => c.uniform());
  assert.deepEqual(sa, sb);
  assert.ok(sa.filter((v, i) => v === sc[i]).length === 0);
});

test('state round trip through JSON mid-stream continues identically (including a pending normal)', () => {
  const a = new Rng(123);
  for (let i = 0; i < 37; i++) a.uniform();
  a.normal(); // leaves the second Box-Muller value pending
  const saved = JSON.parse(JSON.stringify(a.getState())) as number[];
  assert.equal(saved[4], 1);
  const b = Rng.fromState(saved);
  for (let i = 0; i < 200; i++) {
    assert.equal(b.normal(), a.normal());
    assert.equal(b.randint(-5, 1000), a.randint(-5, 1000));
    assert.equal(b.uniform(), a.uniform());
  }
  const c = a.clone();
  assert.deepEqual(Array.from({ length: 10 }, () => c.nextUint32()), Array.from({ length: 10 }, () => a.nextUint32()));
});

test('setState rejects malformed states with a clear error', () => {
  const r = new Rng(1);
  for (const bad of [[1, 2, 3], [0, 0, 0, 0, 0, 0], [1, 2, 3, 2 ** 32, 0, 0], [1, 2, 3, 4, 2, 0], [1.5, 2, 3, 4, 0, 0]]) {
    assert.throws(() => r.setState(bad), (e: unknown) => e instanceof MisfmError && e.code === 'ARGUMENT' && /Rng.setState/.test(e.message));
  }
  assert.throws(() => new Rng(0.5), MisfmError);
});

test('uniform() is in [0,1) and passes a chi-square test on 100 buckets', () => {
  const r = new Rng(2024);
  const counts = new Array<number>(100).fill(0);
  let min = 1;
  let max = 0;
  for (let i = 0; i < 200000; i++) {
    const u = r.uniform();
    min = Math.min(min, u);
    max = Math.max(max, u);
    counts[Math.floor(u * 100)]! += 1;
  }
  assert.ok(min >= 0 && max < 1);
  assert.ok(min < 1e-4 && max > 1 - 1e-4);
  const chi = chiSquare(counts);
  // df = 99: 0.01% / 99.99% quantiles are 55.0 / 160.1.
  assert.ok(chi > 55 && chi < 160, `chi2 = ${chi}`);
  assert.ok(Math.abs(r.uniform(10, 12) - 11) <= 1);
});

test('randint is inclusive at both ends, unbiased, and validates its arguments', () => {
  const r = new Rng(5);
  const counts = new Map<number, number>();
  for (let i = 0; i < 60000; i++) {
    const v = r.randint(-2, 3);
    counts.set(v, (counts.get(v) ?? 0) + 1);
  }
  assert.deepEqual([...counts.keys()].sort((a, b) => a - b), [-2, -1, 0, 1, 2, 3]);
  const chi = chiSquare([...counts.values()]);
  assert.ok(chi < 25.7, `chi2 = ${chi}`); // df 5, 99.99%
  assert.equal(r.randint(9, 9), 9);
  // Ranges wider than 2^32 use the 53-bit path and still cover both halves.
  const big = Array.from({ length: 2000 }, () => r.randint(0, 2 ** 40));
  assert.ok(big.every((v) => Number.isInteger(v) && v >= 0 && v <= 2 ** 40));
  assert.ok(big.some((v) => v > 2 ** 39) && big.some((v) => v < 2 ** 39));
  assert.throws(() => r.randint(3, 2), /lo <= hi/);
  assert.throws(() => r.randint(0.5, 2), MisfmError);
});

test('normal() has mean 0 and variance 1; mean/std arguments apply', () => {
  const r = new Rng(99);
  const n = 100000;
  let s = 0;
  let s2 = 0;
  for (let i = 0; i < n; i++) {
    const z = r.normal();
    s += z;
    s2 += z * z;
  }
  const mean = s / n;
  const variance = s2 / n - mean * mean;
  assert.ok(Math.abs(mean) < 0.015, `mean ${mean}`);
  assert.ok(Math.abs(variance - 1) < 0.02, `var ${variance}`);
  let t = 0;
  for (let i = 0; i < 20000; i++) t += r.normal(5, 0.1);
  assert.ok(Math.abs(t / 20000 - 5) < 0.005);
});

test('shuffle permutes in place uniformly; choice picks members and rejects empty arrays', () => {
  const r = new Rng(11);
  const firstCounts = new Array<number>(4).fill(0);
  for (let i = 0; i < 40000; i++) {
    const a = [0, 1, 2, 3];
    const same = r.shuffle(a);
    assert.equal(same, a);
    firstCounts[a[0]!]! += 1;
    if (i < 100) assert.deepEqual([...a].sort(), [0, 1, 2, 3]);
  }
  assert.ok(chiSquare(firstCounts) < 21.1, `chi2 = ${chiSquare(firstCounts)}`); // df 3, 99.99%
  const typed = r.shuffle(Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8]));
  assert.deepEqual([...typed].sort(), [1, 2, 3, 4, 5, 6, 7, 8]);
  const items = ['a', 'b', 'c'];
  const seen = new Set(Array.from({ length: 100 }, () => r.choice(items)));
  assert.deepEqual([...seen].sort(), items);
  assert.throws(() => r.choice([]), /empty/);
});

test('fork gives reproducible, distinct child streams and leaves the parent alone', () => {
  const p = new Rng(31);
  const before = p.getState();
  const c1 = p.fork(1);
  const c1b = p.fork(1);
  const c2 = p.fork(2);
  assert.deepEqual(p.getState(), before);
  const s1 = Array.from({ length: 100 }, () => c1.nextUint32());
  assert.deepEqual(Array.from({ length: 100 }, () => c1b.nextUint32()), s1);
  const s2 = Array.from({ length: 100 }, () => c2.nextUint32());
  const sp = Array.from({ length: 100 }, () => p.nextUint32());
  assert.ok(s1.every((v, i) => v !== s2[i] && v !== sp[i]));
  // After the parent advanced, the same id yields a new stream.
  assert.notEqual(p.fork(1).nextUint32(), s1[0]);
  // Large ids (above 2^32) are distinct from their low words.
  assert.notDeepEqual(p.fork(2 ** 32 + 1).getState(), p.fork(1).getState());
  assert.throws(() => p.fork(-1), /streamId/);
});
