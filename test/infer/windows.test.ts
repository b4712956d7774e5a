import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fitWindowToImage, gaussianImportanceMap, overlapToStride, padToWindow, windowStarts, type Triple3 } from '../../src/infer/windows.js';
import { ShapeError, MisfmError } from '../../src/util/errors.js';

// dist/test/infer/ -> repo root is three levels up.
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const fixtureDir = path.resolve(repoRoot, '../shared/fixtures/sliding_window_small');

interface TensorInfo { file: string; shape: number[]; dtype: string; byte_order: string }
interface FixtureMeta {
  meta: { inferer_config: { sliding_window_size: number[]; sliding_window_stride: number[] }; image_size: number[] };
  tensors: Record<string, TensorInfo>;
}

function readFixture(): FixtureMeta {
  return JSON.parse(fs.readFileSync(path.join(fixtureDir, 'tensors.json'), 'utf8')) as FixtureMeta;
}

function triple(a: number[] | undefined): [number, number, number] {
  assert.ok(a !== undefined && a.length === 3);
  return [a[0]!, a[1]!, a[2]!];
}

test('gaussianImportanceMap matches the reference weight map (fixture) to 1e-6 relative', () => {
  const meta = readFixture();
  const info = meta.tensors['gaussian_weight_map'];
  assert.ok(info !== undefined);
  assert.equal(info.dtype, 'float32');
  assert.equal(info.byte_order, 'little');
  const buf = fs.readFileSync(path.join(fixtureDir, info.file));
  const ref = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
  const size = triple(info.shape);
  assert.deepEqual(size, triple(meta.meta.inferer_config.sliding_window_size));
  const g = gaussianImportanceMap(size);
  assert.equal(g.length, ref.length);
  let maxAbs = 0;
  let maxRel = 0;
  for (let i = 0; i < g.length; i++) {
    const d = Math.abs(g[i]! - ref[i]!);
    maxAbs = Math.max(maxAbs, d);
    if (ref[i] !== 0) maxRel = Math.max(maxRel, d / ref[i]!);
  }
  assert.ok(maxAbs <= 1e-6 && maxRel <= 1e-6, `max abs ${maxAbs}, max rel ${maxRel}`);
  // Peak at size//2, not rescaled (peak is far below 1).
  const [, H, W] = size;
  const peak = g[(16 * H + 32) * W + 32]!;
  assert.ok(g.every((v) => v <= peak));
  assert.ok(peak > 2e-4 && peak < 3e-4);
});

test('gaussian map: separable, zero beyond r = int(4 sigma + 0.5), 1-D kernels normalised over the support', () => {
  // size 8: sigma 1, r 4, centre 4 -> index 0 is at x = -4 (inside), so nothing is zero.
  // Size-1 axes: sigma 1/8, r 1, kernel [e^-32, 1, e^-32] normalised, of which only the centre is visible.
  const k1 = 1 / (1 + 2 * Math.exp(-32));
  const g1 = gaussianImportanceMap([1, 1, 8]);
  const sum = Array.from({ length: 9 }, (_, i) => Math.exp(-((i - 4) ** 2) / 2)).reduce((a, b) => a + b);
  for (let i = 0; i < 8; i++) assert.equal(g1[i], Math.fround(k1 * k1 * (Math.exp(-((i - 4) ** 2) / 2) / sum)));
  // size 40, sigmaScale 1/20: sigma 2, r = 8, centre 20: indices < 12 and > 28 are zero.
  const g2 = gaussianImportanceMap([1, 1, 40], 1 / 20);
  g2.forEach((v, i) => assert.equal(v === 0, Math.abs(i - 20) > 8, `index ${i}`));
  const g3 = gaussianImportanceMap([3, 4, 5]);
  const a = gaussianImportanceMap([3, 1, 1]);
  const b = gaussianImportanceMap([1, 4, 1]);
  const c = gaussianImportanceMap([1, 1, 5]);
  const one = gaussianImportanceMap([1, 1, 1])[0]!;
  for (let d = 0; d < 3; d++) for (let h = 0; h < 4; h++) for (let w = 0; w < 5; w++) {
    const expect = (a[d]! * b[h]! * c[w]!) / (one * one);
    assert.ok(Math.abs(g3[(d * 4 + h) * 5 + w]! - expect) <= 1e-6 * expect);
  }
  assert.throws(() => gaussianImportanceMap([0, 4, 4]), ShapeError);
  assert.throws(() => gaussianImportanceMap([4, 4, 4], 0), /sigmaScale/);
});

test('windowStarts reproduces the reference order (W outer, D inner) with clamping and duplicates', () => {
  const meta = readFixture();
  const image = triple(meta.meta.image_size);
  const win = triple(meta.meta.inferer_config.sliding_window_size);
  const stride = triple(meta.meta.inferer_config.sliding_window_stride);
  assert.deepEqual([image, win, stride], [[40, 80, 72], [32, 64, 64], [16, 32, 32]]);
  // range(0,40,16) -> 0,16,32 -> clamp to 40-32=8: 0,8,8; H: 0,32,64 -> 0,16,16; W: 0,32,64 -> 0,8,8.
  const expected: number[][] = [];
  for (const w of [0, 8, 8]) for (const h of [0, 16, 16]) for (const d of [0, 8, 8]) expected.push([d, h, w]);
  const starts = windowStarts(image, win, stride);
  assert.equal(starts.length, 27);
  assert.deepEqual(starts, expected);
  const unique = windowStarts(image, win, stride, { dedupe: true });
  assert.deepEqual(unique, [[0, 0, 0], [8, 0, 0], [0, 16, 0], [8, 16, 0], [0, 0, 8], [8, 0, 8], [0, 16, 8], [8, 16, 8]]);
});

test('windowStarts covers every voxel, handles exact fits, and never shrinks the window', () => {
  assert.deepEqual(windowStarts([32, 64, 64], [32, 64, 64], [16, 32, 32]), Array.from({ length: 8 }, () => [0, 0, 0]));
  assert.deepEqual(windowStarts([32, 64, 64], [32, 64, 64], [16, 32, 32], { dedupe: true }), [[0, 0, 0]]);
  const image: [number, number, number] = [37, 21, 50];
  const win: [number, number, number] = [8, 21, 13];
  const covered = new Uint8Array(37 * 21 * 50);
  for (const [d, h, w] of windowStarts(image, win, [5, 7, 11], { dedupe: true })) {
    assert.ok(d + 8 <= 37 && h + 21 <= 21 && w + 13 <= 50);
    for (let z = d; z < d + 8; z++) for (let y = h; y < h + 21; y++) for (let x = w; x < w + 13; x++) covered[(z * 21 + y) * 50 + x] = 1;
  }
  assert.ok(covered.every((v) => v === 1));
  assert.throws(() => windowStarts([20, 80, 80], [32, 64, 64], [16, 32, 32]), (e: unknown) => e instanceof ShapeError && /padToWindow/.test(e.message) && /\[20,80,80\]/.test(e.message));
  assert.throws(() => windowStarts([40, 80, 80], [32, 64, 64], [0, 32, 32]), /stride/);
});

test('padToWindow pads symmetrically (odd voxel at the end) and only where needed', () => {
  assert.deepEqual(padToWindow([20, 128, 125], [64, 128, 128]), { before: [22, 0, 1], after: [22, 0, 2], paddedSize: [64, 128, 128] });
  assert.deepEqual(padToWindow([100, 200, 200], [64, 128, 128]), { before: [0, 0, 0], after: [0, 0, 0], paddedSize: [100, 200, 200] });
  const p = padToWindow([31, 1, 64], [32, 64, 64]);
  assert.deepEqual(p, { before: [0, 31, 0], after: [1, 32, 0], paddedSize: [32, 64, 64] });
  // After padding, windowStarts accepts the image.
  assert.equal(windowStarts(p.paddedSize, [32, 64, 64], [16, 32, 32], { dedupe: true }).length, 1);
  assert.throws(() => padToWindow([1, 2] as unknown as Triple3, [1, 2, 3]), ShapeError);
});

test('overlapToStride: floor(window * (1 - overlap)), at least 1, overlap in [0, 1)', () => {
  assert.deepEqual(overlapToStride([64, 128, 128], 0.5), [32, 64, 64]);
  assert.deepEqual(overlapToStride([32, 64, 64], [0, 0.25, 0.75]), [32, 48, 16]);
  assert.deepEqual(overlapToStride([5, 3, 1], 0.9), [1, 1, 1]);
  assert.throws(() => overlapToStride([64, 64, 64], 1), (e: unknown) => e instanceof MisfmError && /overlap must be >= 0 and < 1, got 1/.test(e.message));
  assert.throws(() => overlapToStride([64, 64, 64], -0.1), /got -0.1/);
});

test('fitWindowToImage: thin axes get the smallest covering multiple of the divisor, others keep the window', () => {
  assert.deepEqual(fitWindowToImage([14, 167, 167], [64, 64, 64], 16), [16, 64, 64]);
  assert.deepEqual(fitWindowToImage([17, 40, 64], [64, 64, 64], 16), [32, 48, 64]);
  assert.deepEqual(fitWindowToImage([200, 200, 200], [64, 64, 64], 16), [64, 64, 64]);
  assert.deepEqual(fitWindowToImage([1, 1, 1], [8, 8, 8], 8), [8, 8, 8]);
  assert.throws(() => fitWindowToImage([10, 10, 10], [16, 16, 16], 0), /divisor/);
});
