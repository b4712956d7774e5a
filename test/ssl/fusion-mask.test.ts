import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/util/rng.js';
import { MisfmError } from '../../src/util/errors.js';
import {
  drawDifferentScan, fuse, fusionLevelMap, pairForeground, type FusionRandom, type Triple,
} from '../../src/ssl/fusion-mask.js';

/** A random source that replays scripted randint results (and checks the requested ranges). */
function scripted(draws: Array<[lo: number, hi: number, value: number]>): FusionRandom & { left: () => number } {
  let i = 0;
  return {
    randint(lo: number, hi: number): number {
      const d = draws[i++];
      assert.ok(d !== undefined, `unexpected extra randint(${lo}, ${hi})`);
      assert.deepEqual([lo, hi], [d[0], d[1]], `draw ${i - 1}`);
      return d[2];
    },
    shuffle<A extends { length: number; [index: number]: unknown }>(a: A): A { return a; },
    left: () => draws.length - i,
  };
}

/** Expected map from explicit boxes [d0,d1,h0,h1,w0,w1,value], later ones overwrite. */
function boxesMap(shape: Triple, boxes: number[][]): Uint8Array {
  const [D, H, W] = shape;
  const m = new Uint8Array(D * H * W);
  for (const [d0, d1, h0, h1, w0, w1, v] of boxes as Array<[number, number, number, number, number, number, number]>) {
    for (let d = d0; d < d1; d++) for (let h = h0; h < h1; h++) for (let w = w0; w < w1; w++) m[(d * H + h) * W + w] = v;
  }
  return m;
}

test('blocks mode: draw order, start = c - size//2, end from the unclamped start, later blocks overwrite', () => {
  const shape: Triple = [16, 32, 64];
  const rng = scripted([
    [10, 40, 2], // M = 2
    // block 1: sizes 10,20,30; centres 0,5,63 -> d [-5,5)->[0,5), h [-5,15)->[0,15), w [48,78)->[48,64)
    [8, 40, 10], [8, 80, 20], [8, 80, 30], [0, 15, 0], [0, 31, 5], [0, 63, 63], [1, 4, 3],
    // block 2: odd sizes 9,9,9 at centre 4,4,50 -> [0,9) x [0,9) x [46,55): overlaps block 1
    [8, 40, 9], [8, 80, 9], [8, 80, 9], [0, 15, 4], [0, 31, 4], [0, 63, 50], [1, 4, 1],
  ]);
  const map = fusionLevelMap(shape, rng);
  assert.equal(rng.left(), 0);
  assert.deepEqual(map, boxesMap(shape, [[0, 5, 0, 15, 48, 64, 3], [0, 9, 0, 9, 46, 55, 1]]));
});

test('grid mode: block size, offsets, int(n*0.7) foreground cells in (d,h,w) order, remainder stays 0', () => {
  const shape: Triple = [10, 12, 13];
  // sizes 4,5,6 -> 2x2x2 cells; offsets in [0,2],[0,2],[0,1]; int(8*0.7) = 5 cells (shuffle = identity)
  const rng = scripted([
    [5, 20, 4], [8, 32, 5], [8, 32, 6], [0, 2, 1], [0, 2, 2], [0, 1, 1],
    [1, 4, 1], [1, 4, 2], [1, 4, 3], [1, 4, 4], [1, 4, 2],
  ]);
  const map = fusionLevelMap(shape, rng, { mode: 'grid' });
  assert.equal(rng.left(), 0);
  const cells: number[][] = [];
  let k = 0;
  const values = [1, 2, 3, 4, 2];
  for (let d = 0; d < 2; d++) for (let h = 0; h < 2; h++) for (let w = 0; w < 2; w++) {
    if (k < 5) cells.push([1 + 4 * d, 5 + 4 * d, 2 + 5 * h, 7 + 5 * h, 1 + 6 * w, 7 + 6 * w, values[k]!]);
    k++;
  }
  assert.deepEqual(map, boxesMap(shape, cells));
});

test('blocks mode with M = 1: visible extents respect size ranges, with clipping only at borders', () => {
  const shape: Triple = [20, 20, 20];
  const sizeMin: Triple = [2, 3, 4];
  const sizeMax: Triple = [6, 7, 9];
  const seenUnclipped = [new Set<number>(), new Set<number>(), new Set<number>()];
  let clippedFront = 0;
  let clippedBack = 0;
  for (let seed = 0; seed < 1500; seed++) {
    const map = fusionLevelMap(shape, new Rng(seed), { blockCount: [1, 1], sizeMin, sizeMax });
    const lo = [99, 99, 99];
    const hi = [-1, -1, -1];
    let count = 0;
    let value = -1;
    for (let i = 0; i < map.length; i++) {
      if (map[i] === 0) continue;
      if (value < 0) value = map[i]!;
      assert.equal(map[i], value); // one block, one value
      count++;
      const c = [Math.floor(i / 400), Math.floor(i / 20) % 20, i % 20];
      for (let a = 0; a < 3; a++) { lo[a] = Math.min(lo[a]!, c[a]!); hi[a] = Math.max(hi[a]!, c[a]!); }
    }
    assert.ok(value >= 1 && value <= 4);
    const ext = [0, 1, 2].map((a) => hi[a]! - lo[a]! + 1);
    assert.equal(count, ext[0]! * ext[1]! * ext[2]!); // a solid box
    for (let a = 0; a < 3; a++) {
      const e = ext[a]!;
      assert.ok(e <= sizeMax[a]!, `extent ${e} > max on axis ${a}`);
      const touchesFront = lo[a] === 0;
      const touchesBack = hi[a] === 19;
      if (!touchesFront && !touchesBack) {
        assert.ok(e >= sizeMin[a]!, `interior extent ${e} < min on axis ${a}`);
        seenUnclipped[a]!.add(e);
      } else {
        // A clipped block keeps at least the part from its centre to its end: size - size//2 voxels.
        assert.ok(e >= sizeMin[a]! - Math.floor(sizeMin[a]! / 2));
        if (e < sizeMin[a]!) { if (touchesFront) clippedFront++; else clippedBack++; }
      }
    }
  }
  for (let a = 0; a < 3; a++) {
    assert.deepEqual([...seenUnclipped[a]!].sort((x, y) => x - y), Array.from({ length: sizeMax[a]! - sizeMin[a]! + 1 }, (_, i) => sizeMin[a]! + i));
  }
  assert.ok(clippedFront > 0 && clippedBack > 0, `front ${clippedFront}, back ${clippedBack}`);
});

/** Probability that coordinate x of an axis of length n is inside one random block (exact). */
function axisCover(n: number, sMin: number, sMax: number): Float64Array {
  const p = new Float64Array(n);
  for (let s = sMin; s <= sMax; s++) {
    for (let c = 0; c < n; c++) {
      const d0 = c - Math.floor(s / 2);
      for (let x = Math.max(0, d0); x < Math.min(n, d0 + s); x++) p[x]! += 1;
    }
  }
  return p.map((v) => v / ((sMax - sMin + 1) * n));
}

test('blocks mode statistics: share of level 0 matches the exact expectation, levels 1..K equally likely', () => {
  const shape: Triple = [32, 64, 64];
  const [D, H, W] = shape;
  const pd = axisCover(D, 8, 40);
  const ph = axisCover(H, 8, 80);
  const pw = axisCover(W, 8, 80);
  let expected0 = 0;
  for (let d = 0; d < D; d++) for (let h = 0; h < H; h++) for (let w = 0; w < W; w++) {
    const q = 1 - pd[d]! * ph[h]! * pw[w]!;
    let s = 0;
    for (let m = 10; m <= 40; m++) s += q ** m;
    expected0 += s / 31;
  }
  expected0 /= D * H * W;

  const counts = new Array<number>(5).fill(0);
  const rng = new Rng(2023);
  const samples = 150;
  for (let i = 0; i < samples; i++) {
    const map = fusionLevelMap(shape, rng);
    for (let j = 0; j < map.length; j++) counts[map[j]!]! += 1;
  }
  const total = samples * D * H * W;
  const share = counts.map((c) => c / total);
  assert.ok(share.every((s) => s > 0), 'every level 0..K appears');
  assert.ok(Math.abs(share[0]! - expected0) < 0.03, `level-0 share ${share[0]} vs expected ${expected0}`);
  for (let k = 1; k <= 4; k++) {
    assert.ok(Math.abs(share[k]! - (1 - expected0) / 4) < 0.03, `level ${k} share ${share[k]}`);
  }
});

test('level maps are deterministic under a seed and honour K', () => {
  const a = fusionLevelMap([16, 32, 32], new Rng(9), { levels: 2 });
  const b = fusionLevelMap([16, 32, 32], new Rng(9), { levels: 2 });
  const c = fusionLevelMap([16, 32, 32], new Rng(10), { levels: 2 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  assert.ok(a.every((v) => v <= 2));
  const g1 = fusionLevelMap([64, 128, 128], new Rng(3), { mode: 'grid' });
  const g2 = fusionLevelMap([64, 128, 128], new Rng(3), { mode: 'grid' });
  assert.deepEqual(g1, g2);
  const fg = g1.reduce((s, v) => s + (v > 0 ? 1 : 0), 0) / g1.length;
  assert.ok(fg > 0.3 && fg <= 0.7 + 1e-9, `grid foreground share ${fg}`);
  assert.deepEqual(new Set(g1), new Set([0, 1, 2, 3, 4]));
});

test('bad options give clear errors', () => {
  const r = new Rng(1);
  assert.throws(() => fusionLevelMap([0, 4, 4], r), (e: unknown) => e instanceof MisfmError && /crop size/.test(e.message));
  assert.throws(() => fusionLevelMap([8, 8, 8], r, { sizeMin: [9, 8, 8], sizeMax: [8, 8, 8] }), /sizeMin/);
  assert.throws(() => fusionLevelMap([8, 8, 8], r, { levels: 0 }), /levels/);
  assert.throws(() => fusionLevelMap([8, 8, 8], r, { blockCount: [5, 2] }), /blockCount/);
  assert.throws(() => fusionLevelMap([8, 8, 8], r, { mode: 'grid', foregroundRatio: 1.5 }), /foregroundRatio/);
});

test('fuse: alpha = level/K in {0,.25,.5,.75,1}; output equals the float32 formula exactly', () => {
  const n = 20000;
  const rng = new Rng(4);
  const bg = Float32Array.from({ length: n }, () => rng.normal(0, 300));
  const fg = Float32Array.from({ length: n }, () => rng.normal(50, 1));
  const levels = Uint8Array.from({ length: n }, () => rng.randint(0, 4));
  const out = fuse(bg, fg, levels, 4);
  const f = Math.fround;
  for (let i = 0; i < n; i++) {
    const a = levels[i]! / 4; // exactly representable for K = 4
    assert.ok([0, 0.25, 0.5, 0.75, 1].includes(a));
    assert.equal(out[i], f(f(a * fg[i]!) + f(f(1 - a) * bg[i]!)));
    if (levels[i] === 0) assert.equal(out[i], bg[i]);
    if (levels[i] === 4) assert.equal(out[i], fg[i]);
    assert.ok(Math.abs(out[i]! - (a * fg[i]! + (1 - a) * bg[i]!)) <= 1e-6 * (Math.abs(fg[i]!) + Math.abs(bg[i]!)));
  }
  // Fusing a 0 background with a 1 foreground reveals alpha itself.
  const alpha = fuse(new Float32Array(5), new Float32Array(5).fill(1), Uint8Array.from([0, 1, 2, 3, 4]), 4);
  assert.deepEqual([...alpha], [0, 0.25, 0.5, 0.75, 1]);
  // In-place into the background buffer.
  const bg2 = Float32Array.from(bg);
  assert.equal(fuse(bg2, fg, levels, 4, bg2), bg2);
  assert.deepEqual(bg2, out);
  assert.throws(() => fuse(bg, fg.subarray(1), levels, 4), /equal lengths/);
  assert.throws(() => fuse(new Float32Array(1), new Float32Array(1), Uint8Array.from([5]), 4), /exceeds K=4/);
});

test('pairForeground: previous sample cyclically, and no sample is fused with its own scan', () => {
  assert.deepEqual(pairForeground(['a', 'b', 'c']), { partner: [2, 0, 1], needsDifferentScan: [] });
  assert.deepEqual(pairForeground([7, 9]), { partner: [1, 0], needsDifferentScan: [] });
  assert.deepEqual(pairForeground(['x']), { partner: [0], needsDifferentScan: [0] });
  assert.deepEqual(pairForeground(['a', 'a', 'b']), { partner: [2, 0, 1], needsDifferentScan: [1] });
  assert.deepEqual(pairForeground([3, 3]).needsDifferentScan, [0, 1]);
  assert.throws(() => pairForeground([]), /empty batch/);
  // Across many random batches, after replacing flagged partners nobody fuses with itself.
  const rng = new Rng(77);
  for (let t = 0; t < 500; t++) {
    const N = rng.randint(1, 4);
    const ids = Array.from({ length: N }, () => rng.randint(0, 3));
    const { partner, needsDifferentScan } = pairForeground(ids);
    const fgScan = partner.map((p) => ids[p]!);
    for (const n of needsDifferentScan) fgScan[n] = drawDifferentScan(rng, 4, ids[n]!);
    fgScan.forEach((s, n) => assert.notEqual(s, ids[n]));
  }
});

test('drawDifferentScan is uniform over the other scans and needs at least two scans', () => {
  const rng = new Rng(8);
  const counts = new Array<number>(5).fill(0);
  for (let i = 0; i < 8000; i++) counts[drawDifferentScan(rng, 5, 2)]! += 1;
  assert.equal(counts[2], 0);
  for (const k of [0, 1, 3, 4]) assert.ok(Math.abs(counts[k]! - 2000) < 200, `scan ${k}: ${counts[k]}`);
  assert.throws(() => drawDifferentScan(rng, 1, 0), (e: unknown) => e instanceof MisfmError && e.code === 'DATA' && /at least 2 scans/.test(e.message));
});
