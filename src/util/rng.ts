/**
 * Seedable pseudo-random numbers: xoshiro128** (Blackman & Vigna) on four 32-bit words.
 *
 * Why this generator: it passes BigCrush, needs only 32-bit integer ops (fast in JS via Math.imul),
 * and its whole state is four integers, so it can be saved in a JSON checkpoint and restored to
 * continue a training run bit-exactly. Seeding and stream forking use SplitMix64 (BigInt, rarely
 * called), which turns any seed or (state, streamId) pair into a well-mixed 128-bit state.
 */
import { MisfmError } from './errors.js';

const MASK64 = (1n << 64n) - 1n;
const TWO32 = 4294967296;
const TWO53 = 9007199254740992;

/** One SplitMix64 step: advances `state` by the golden gamma and returns the mixed output. */
function splitmix64(state: { s: bigint }): bigint {
  state.s = (state.s + 0x9e3779b97f4a7c15n) & MASK64;
  let z = state.s;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/** Four 32-bit words from a 64-bit seed via SplitMix64 (the seeding the xoshiro authors recommend). */
function expandSeed(seed: bigint): [number, number, number, number] {
  const st = { s: seed & MASK64 };
  const a = splitmix64(st);
  const b = splitmix64(st);
  const words: [number, number, number, number] = [
    Number(a >> 32n) >>> 0, Number(a & 0xffffffffn) >>> 0,
    Number(b >> 32n) >>> 0, Number(b & 0xffffffffn) >>> 0,
  ];
  // The all-zero state is the one fixed point of xoshiro; SplitMix64 practically never yields it.
  if ((words[0] | words[1] | words[2] | words[3]) === 0) words[0] = 1;
  return words;
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** A seed: any safe integer (negative allowed) or a bigint; reduced modulo 2^64. */
export type Seed = number | bigint;

/**
 * A seedable PRNG with exact, JSON-serialisable state.
 *
 * Streams: `fork(id)` derives an independent child generator from the current state and `id`
 * without advancing the parent, so `rng.fork(i)` gives sample i the same stream however many
 * workers process samples, in whatever order.
 */
export class Rng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;
  /** Second Box-Muller value, kept so that normal() costs one pair per two calls; part of the state. */
  private spare: number | undefined;

  /** Seed from an integer (default 0). Equal seeds give equal sequences on every platform. */
  constructor(seed: Seed = 0) {
    if (typeof seed === 'number' && !Number.isSafeInteger(seed)) {
      throw new MisfmError('ARGUMENT', `Rng: seed must be a safe integer or a bigint, got ${seed}`);
    }
    const words = expandSeed(BigInt.asUintN(64, BigInt(seed)));
    [this.s0, this.s1, this.s2, this.s3] = words;
  }

  /** Rebuild a generator from `getState()` output. */
  static fromState(state: readonly number[]): Rng {
    const r = new Rng(0);
    r.setState(state);
    return r;
  }

  /** Next raw 32-bit output as an unsigned integer in [0, 2^32). */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform double with 53 random bits in [0, 1); with arguments, lo + (hi - lo) * u. */
  uniform(lo = 0, hi = 1): number {
    const a = this.nextUint32() >>> 5; // 27 bits
    const b = this.nextUint32() >>> 6; // 26 bits
    const u = (a * 67108864 + b) / TWO53;
    return lo === 0 && hi === 1 ? u : lo + (hi - lo) * u;
  }

  /**
   * Uniform integer in [lo, hi], both ends inclusive (Python's `random.randint`). Unbiased
   * (rejection sampling). lo and hi must be safe integers with hi - lo < 2^53.
   */
  randint(lo: number, hi: number): number {
    if (!Number.isSafeInteger(lo) || !Number.isSafeInteger(hi) || hi < lo) {
      throw new MisfmError('ARGUMENT', `Rng.randint: need integers lo <= hi, got lo=${lo}, hi=${hi}`);
    }
    const n = hi - lo + 1;
    if (n <= TWO32) {
      // Accept only the largest multiple of n below 2^32 so every residue is equally likely.
      const limit = TWO32 - (TWO32 % n);
      let u = this.nextUint32();
      while (u >= limit) u = this.nextUint32();
      return lo + (u % n);
    }
    if (n > TWO53) throw new MisfmError('ARGUMENT', `Rng.randint: range ${lo}..${hi} is wider than 2^53`);
    const limit = TWO53 - (TWO53 % n);
    for (;;) {
      const u = (this.nextUint32() >>> 5) * 67108864 + (this.nextUint32() >>> 6);
      if (u < limit) return lo + (u % n);
    }
  }

  /** Gaussian sample (Box-Muller, polar form) with the given mean and standard deviation. */
  normal(mean = 0, std = 1): number {
    if (this.spare !== undefined) {
      const z = this.spare;
      this.spare = undefined;
      return mean + std * z;
    }
    let u: number;
    let v: number;
    let s: number;
    do {
      u = 2 * this.uniform() - 1;
      v = 2 * this.uniform() - 1;
      s = u * u + v * v;
    } while (s >= 1 || s === 0);
    const f = Math.sqrt((-2 * Math.log(s)) / s);
    this.spare = v * f;
    return mean + std * u * f;
  }

  /** True with probability p. */
  bernoulli(p: number): boolean {
    return this.uniform() < p;
  }

  /** Shuffle in place (Fisher-Yates) and return the same array. Works on arrays and typed arrays. */
  shuffle<A extends { length: number; [index: number]: unknown }>(array: A): A {
    for (let i = array.length - 1; i > 0; i--) {
      const j = this.randint(0, i);
      const tmp = array[i];
      array[i] = array[j];
      array[j] = tmp;
    }
    return array;
  }

  /** One element chosen uniformly. Throws on an empty array. */
  choice<T>(items: readonly T[]): T {
    if (items.length === 0) throw new MisfmError('ARGUMENT', 'Rng.choice: cannot choose from an empty array');
    return items[this.randint(0, items.length - 1)] as T;
  }

  /**
   * An independent child generator for stream `streamId` (a non-negative safe integer). Derived
   * by hashing the parent's current state with the id; the parent does not advance. Different ids
   * (or different parent states) give statistically independent streams.
   */
  fork(streamId: number): Rng {
    if (!Number.isSafeInteger(streamId) || streamId < 0) {
      throw new MisfmError('ARGUMENT', `Rng.fork: streamId must be a non-negative safe integer, got ${streamId}`);
    }
    // Absorb state words and the id one by one; each round fully mixes the accumulated value.
    const st = { s: 0x6a09e667f3bcc908n };
    let acc = 0n;
    for (const w of [this.s0, this.s1, this.s2, this.s3, streamId % TWO32, Math.floor(streamId / TWO32)]) {
      st.s ^= acc ^ BigInt(w >>> 0);
      acc = splitmix64(st);
    }
    const child = new Rng(0);
    [child.s0, child.s1, child.s2, child.s3] = expandSeed(acc);
    return child;
  }

  /**
   * Exact state as plain numbers: [s0, s1, s2, s3, hasSpare(0|1), spare]. JSON round-trips it
   * exactly (doubles serialise losslessly), so a resumed run continues the same sequence.
   */
  getState(): number[] {
    return [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0, this.spare === undefined ? 0 : 1, this.spare ?? 0];
  }

  /** Restore a state from `getState()`. Throws a MisfmError on a malformed array. */
  setState(state: readonly number[]): void {
    const ok = state.length === 6
      && state.slice(0, 4).every((w) => Number.isInteger(w) && w >= 0 && w < TWO32)
      && (state[4] === 0 || state[4] === 1) && Number.isFinite(state[5])
      && state.slice(0, 4).some((w) => w !== 0);
    if (!ok) {
      throw new MisfmError('ARGUMENT', `Rng.setState: expected [4 uint32 words (not all 0), 0|1, finite number], got ${JSON.stringify(state)}`);
    }
    this.s0 = state[0] as number;
    this.s1 = state[1] as number;
    this.s2 = state[2] as number;
    this.s3 = state[3] as number;
    this.spare = state[4] === 1 ? (state[5] as number) : undefined;
  }

  /** An independent copy with the same state. */
  clone(): Rng {
    return Rng.fromState(this.getState());
  }
}
