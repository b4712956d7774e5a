/**
 * PCT-Net input and option validation, and the window machinery (partition order, fallback rule,
 * shifted-window mask) checked against hand-derived facts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randn, arange, noGrad } from '../../src/engine/creation.js';
import { dispose } from '../../src/engine/scope.js';
import { MisfmError } from '../../src/util/errors.js';
import { PCTNet, SwinTransformerBlock, windowPartition, windowReverse, shiftedWindowMask } from '../../src/models/pctnet/index.js';
import { tinyPCTNet } from './helpers.js';

function expectError(fn: () => unknown, code: string, ...parts: (string | RegExp)[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof MisfmError, `expected a MisfmError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    for (const p of parts) assert.match(e.message, typeof p === 'string' ? new RegExp(p.replace(/[[\]().*+?^$|\\]/g, '\\$&')) : p);
    return true;
  });
}

test('a wrong input size or channel count is a ShapeError naming the size the network was built for', () => {
  const net = tinyPCTNet(1);
  try {
    const wrongSize = randn([1, 1, 16, 32, 48]);
    expectError(() => net.forward(wrongSize), 'SHAPE', 'inputSize [16,32,32]', 'got [1,1,16,32,48]');
    const wrongChannels = randn([1, 2, 16, 32, 32]);
    expectError(() => net.forward(wrongChannels), 'SHAPE', 'inChannels 1', 'got [1,2,16,32,32]');
    const rank4 = randn([1, 16, 32, 32]);
    expectError(() => net.forward(rank4), 'SHAPE', 'got [1,16,32,32]');
    expectError(() => net.forwardCheckpointed(wrongSize), 'SHAPE', 'inputSize [16,32,32]');
    dispose([wrongSize, wrongChannels, rank4]);
  } finally {
    net.dispose();
  }
});

test('invalid options are ConfigErrors naming the key and the allowed values', () => {
  const base = { inChannels: 1, classNum: 2, inputSize: [16, 32, 32] };
  expectError(() => new PCTNet({ ...base, resolutionMode: 3 as 0 }), 'CONFIG', 'resolutionMode', '0, 1 or 2');
  expectError(() => new PCTNet({ ...base, inputSize: [16, 32, 40], resolutionMode: 1 }), 'CONFIG', 'inputSize', 'multiples of [8,16,16]');
  expectError(() => new PCTNet({ ...base, inputSize: [8, 32, 32], resolutionMode: 0 }), 'CONFIG', 'inputSize', '[16,16,16]');
  expectError(() => new PCTNet({ ...base, inputSize: [16, 32] }), 'CONFIG', 'inputSize', '3 integers');
  expectError(() => new PCTNet({ ...base, featureChns: [8, 16, 32, 64] }), 'CONFIG', 'featureChns', '5 integers');
  expectError(() => new PCTNet({ ...base, featureChns: [8, 16, 30, 64, 128], resolutionMode: 1 }), 'CONFIG', 'numHeads', 'featureChns[2]');
  expectError(() => new PCTNet({ ...base, dropout: [0, 0, 1.5, 0, 0], resolutionMode: 1 }), 'CONFIG', 'dropout', '[0, 1)');
  expectError(() => new PCTNet({ ...base, classNum: 0, resolutionMode: 1 }), 'CONFIG', 'classNum', '>= 1');
});

test('the smallest inputs of each mode build and run (eval)', () => {
  for (const [mode, size] of [[0, [16, 16, 16]], [1, [8, 16, 16]], [2, [4, 16, 16]]] as const) {
    const net = new PCTNet({ inChannels: 1, classNum: 2, inputSize: size, featureChns: [4, 8, 16, 32, 64], numHeads: [2, 4, 8], resolutionMode: mode });
    try {
      net.eval();
      const x = randn([1, 1, ...size]);
      const y = noGrad(() => net.forward(x));
      assert.ok(!Array.isArray(y));
      assert.deepEqual(y.shape, [1, 2, ...size]);
      dispose([x, y]);
    } finally {
      net.dispose();
    }
  }
});

test('window fallback: resolution not larger than the window shrinks it to min(resolution) with no shift', () => {
  const blk = new SwinTransformerBlock(32, [4, 8, 8], { numHeads: 2, windowSize: 6, shiftSize: 3, drop: 0, attnDrop: 0, dropPath: 0 });
  const big = new SwinTransformerBlock(32, [8, 8, 8], { numHeads: 2, windowSize: 6, shiftSize: 3, drop: 0, attnDrop: 0, dropPath: 0 });
  try {
    assert.equal(blk.windowSize, 4);
    assert.equal(blk.shiftSize, 0);
    assert.deepEqual(blk.attn.relativePositionBiasTable.shape, [343, 2]);
    assert.deepEqual(blk.attn.relativePositionIndex.shape, [64, 64]);
    assert.equal(big.windowSize, 6);
    assert.equal(big.shiftSize, 3);
    assert.deepEqual(big.attn.relativePositionBiasTable.shape, [1331, 2]);
  } finally {
    blk.dispose(); big.dispose();
  }
});

test('window partition orders windows (b, s, h, w) with tokens row-major inside; reverse inverts it', () => {
  // Values encode their own coordinates: v = ((b*6 + s)*9 + h)*3 + w (with C = 1).
  const x = arange(0, 2 * 6 * 9 * 3).to('float32').view([2, 6, 9, 3, 1]);
  const ws = 3;
  const win = windowPartition(x, ws);
  assert.deepEqual(win.shape, [2 * 2 * 3 * 1, 27, 1]);
  const v = win.dataF32();
  const at = (b: number, s: number, h: number, w: number): number => ((b * 6 + s) * 9 + h) * 3 + w;
  // Window 4 = (b 0, sWin 1, hWin 1, wWin 0); its token 5 = (s 0, h 1, w 2) inside the window.
  assert.equal(v[4 * 27 + 5], at(0, 3 + 0, 3 + 1, 0 + 2));
  // Window 6 = (b 1, sWin 0, hWin 0): first token (0,0,0) of batch 1.
  assert.equal(v[6 * 27], at(1, 0, 0, 0));
  const back = windowReverse(win, ws, 6, 9, 3);
  assert.deepEqual(back.dataF32(), x.dataF32());
  dispose([x, win, back]);
});

test('shifted-window mask: symmetric, 0 / -100, and the corner window splits into 8 regions', () => {
  // Resolution 8 padded to 9 with window 3 and shift 1: along each axis the last window holds
  // positions 6,7 (region 1) and 8 (region 2).
  const m = shiftedWindowMask([8, 8, 8], 3, 1);
  assert.deepEqual(m.shape, [27, 27, 27]);
  const v = m.dataF32();
  const n = 27;
  for (let w = 0; w < 27; w++) {
    for (let i = 0; i < n; i++) {
      assert.equal(v[(w * n + i) * n + i], 0);
      for (let j = 0; j < n; j++) {
        const a = v[(w * n + i) * n + j]!;
        assert.ok(a === 0 || a === -100);
        assert.equal(a, v[(w * n + j) * n + i]);
      }
    }
  }
  const zeros = (w: number): number => { let z = 0; for (let k = 0; k < n * n; k++) if (v[w * n * n + k] === 0) z++; return z; };
  assert.equal(zeros(0), n * n, 'an interior window is not masked');
  // Corner window: region sizes 2 or 1 per axis -> sum of squared region sizes = (2^2 + 1^2)^3 = 125.
  assert.equal(zeros(26), 125);
  m.dispose();
});
