/**
 * SwinUNETR (MONAI 1.3.0) and VoCo's backbone: state-dict names and shapes against MONAI's list,
 * the relative-position index, and the backbone forward against the voco_small fixture (22 crops,
 * every embedding and the SwinViT / encoder intermediates of row 0). The fixture was generated in
 * MONAI's (X, Y, Z) order; misfm crops its (D, H, W) volume and the network's axisOrder 'xyz'
 * transposes, so this also checks the axis convention of spec 1.5.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { sharedDir, assertClose } from '../helpers.js';
import { fromTypedArray, manualSeed, noGrad } from '../../src/engine/creation.js';
import { SwinUNETR, SwinVoCoBackbone } from '../../src/models/swin-unetr/index.js';
import { swinRelativePositionIndexValues, monaiRegionLabels } from '../../src/models/swin-unetr/window.js';
import { ConfigError, ShapeError } from '../../src/util/errors.js';
import { baseBoxes, cropBox, volumeShape, type Box } from '../../src/ssl/voco/crops.js';
import { f32, i64, hashVolumeDHW, weightsUnder, vocoWeights } from '../ssl/voco-fixture.js';

const RTOL = 1e-4, ATOL = 1e-5;

interface KeyRow { name: string; shape: number[]; dtype: string; kind: string }
function monaiKeys(): KeyRow[] {
  const rows: KeyRow[] = [];
  const text = readFileSync(path.join(sharedDir, 'reference', 'swin_unetr_keys.txt'), 'utf8');
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+(\S+)\s+\[([\d, ]*)\]\s+(\S+)\s+(\d+)\s+(param|buffer)\s+(yes|no)\s*$/.exec(line);
    if (m === null) continue;
    rows.push({ name: m[2]!, shape: m[3]!.split(',').map((s) => Number(s.trim())), dtype: m[4]!, kind: m[6]! });
  }
  return rows;
}

test('SwinUNETR(fs 48, use_v2) has MONAI 1.3.0 state-dict names, order, shapes and dtypes (swin_unetr_keys.txt)', () => {
  const want = monaiKeys();
  assert.equal(want.length, 167);
  manualSeed(0);
  const net = new SwinUNETR({ inChannels: 1, classNum: 14, featureSize: 48, useV2: true });
  try {
    const sd = net.stateDict();
    const bufferNames = new Set([...net.namedBuffers('', true)].map(([k]) => k));
    const got = [...sd].map(([k, t]) => ({ name: k, shape: t.shape, dtype: t.dtype, kind: bufferNames.has(k) ? 'buffer' : 'param' }));
    assert.deepEqual(got, want);
    assert.equal(net.numParameters(), 72_762_656);
  } finally { net.dispose(); }
});

test('SwinUNETR v1 lacks exactly the layers{1-4}c blocks; VoCo backbone holds the 145 encoder entries', () => {
  const want = monaiKeys();
  const v1 = new SwinUNETR({ inChannels: 1, classNum: 14, featureSize: 12 });
  const bb = new SwinVoCoBackbone({ inChannels: 1, featureSize: 12, useV2: true });
  try {
    const names = [...v1.stateDict().keys()];
    assert.deepEqual(names, want.map((r) => r.name).filter((n) => !/^swinViT\.layers\dc\./.test(n)));
    assert.deepEqual([...bb.stateDict().keys()], want.map((r) => r.name).filter((n) => /^(swinViT|encoder\d+)\./.test(n)));
    assert.equal(bb.embeddingDim, 24 * 12);
  } finally { v1.dispose(); bb.dispose(); }
});

test('relative-position index equals the fixture buffers (window 5) and the standard Swin formula', () => {
  const idx = vocoWeights().get('backbone.swinViT.layers1.0.blocks.0.attn.relative_position_index')!;
  const ref = new BigInt64Array(idx.data.buffer.slice(idx.data.byteOffset, idx.data.byteOffset + idx.data.byteLength));
  assert.deepEqual(idx.shape, [125, 125]);
  assert.deepEqual(swinRelativePositionIndexValues([5, 5, 5]), ref);
  // An axis with shift 0 is one region (MONAI's slice(-0, None) covers the axis): here the first.
  const labels = monaiRegionLabels([4, 7, 7], [4, 7, 7], [0, 3, 3]);
  assert.equal(new Set(labels).size, 4);
});

test('options are validated with the key named', () => {
  assert.throws(() => new SwinUNETR({ inChannels: 1, classNum: 2, featureSize: 10 }), (e: unknown) => e instanceof ConfigError && /featureSize/.test(String(e)));
  assert.throws(() => new SwinUNETR({ inChannels: 1, classNum: 2, axisOrder: 'zyx' as never }), (e: unknown) => e instanceof ConfigError && /axisOrder/.test(String(e)));
  const net = new SwinUNETR({ inChannels: 1, classNum: 2, featureSize: 12, windowSize: 3 });
  try {
    const x = fromTypedArray(new Float32Array(48 * 32 * 32), [1, 1, 48, 32, 32]);
    assert.throws(() => net.forward(x), (e: unknown) => e instanceof ShapeError && /multiple of 32/.test(String(e)));
    x.dispose();
  } finally { net.dispose(); }
});

/** The fixture's model input rows as misfm crops of the hash volumes. */
export function fixtureRows(): Float32Array[] {
  const g = { grid: 3, roi: 64, depth: 64 };
  const shape = volumeShape(g);
  const vols = [hashVolumeDHW(0), hashVolumeDHW(1)];
  const rb = i64('data/random_boxes');
  const toBox = (r: number[]): Box => ({ w: [r[0]!, r[1]!], h: [r[2]!, r[3]!], d: [r[4]!, r[5]!] });
  const rows: Float32Array[] = [];
  for (let v = 0; v < 2; v++) for (let s = 0; s < 2; s++) rows.push(cropBox(vols[v]!, shape, toBox(rb.slice((v * 2 + s) * 6, (v * 2 + s + 1) * 6))));
  for (let v = 0; v < 2; v++) for (const b of baseBoxes(g)) rows.push(cropBox(vols[v]!, shape, b));
  return rows;
}

test('VoCo backbone on the 22 fixture crops: embeddings and row-0 intermediates match MONAI/VoCo', () => {
  const rows = fixtureRows();
  // The hash volumes and crop assembly first (exact data, sums at rtol 1e-5).
  const probe = f32('data/volume_probe');
  const v0 = hashVolumeDHW(0), v1 = hashVolumeDHW(1);
  const zline = (v: Float32Array): number[] => Array.from({ length: 64 }, (_, z) => v[z * 192 * 192]!);
  assert.deepEqual([...zline(v0), ...zline(v1)], [...probe]);
  assertClose(rows.map((r) => r.reduce((a, b) => a + b, 0)), f32('data/model_input_sums'), 1e-5, 0, 'model input sums');

  const net = new SwinVoCoBackbone({ inChannels: 1, featureSize: 6, windowSize: 5, useV2: true });
  try {
    const rep = net.loadStateDict(weightsUnder('backbone'));
    assert.equal(rep.loaded.length, 145);
    net.eval();
    const want = f32('features/embeddings');
    const seen = new Map<string, Float32Array>();
    for (let r = 0; r < 22; r += 2) {
      const x = fromTypedArray(Float32Array.from([...rows[r]!, ...rows[r + 1]!]), [2, 1, 64, 64, 64]);
      const taps = r === 0 ? (name: string, t: { shape: number[]; dataF32(): Float32Array; select(d: number, i: number): { dataF32(): Float32Array; dispose(): void } }): void => {
        const s = t.select(0, 0); seen.set(name, s.dataF32()); s.dispose();
      } : undefined;
      const e = noGrad(() => net.embed(x, taps === undefined ? {} : { taps: taps as never }));
      assert.deepEqual(e.shape, [2, 144]);
      assertClose(e.dataF32(), want.subarray(r * 144, (r + 2) * 144), RTOL, ATOL, `embeddings rows ${r}-${r + 1}`);
      e.dispose(); x.dispose();
    }
    for (let i = 0; i < 5; i++) assertClose(seen.get(`swinViT.out${i}`)!, f32(`intermediates/sample0/swinvit_out${i}`), RTOL, ATOL, `swinvit_out${i}`);
    assertClose(seen.get('encoder3')!, f32('intermediates/sample0/enc2_encoder3'), RTOL, ATOL, 'encoder3');
    assertClose(seen.get('encoder4')!, f32('intermediates/sample0/enc3_encoder4'), RTOL, ATOL, 'encoder4');
    assertClose(seen.get('encoder10')!, f32('intermediates/sample0/dec4_encoder10'), RTOL, ATOL, 'encoder10');
    const corner = (t: Float32Array, c: number, n: number): number[] => {
      const out: number[] = [];
      for (let ch = 0; ch < c; ch++) for (let a = 0; a < 16; a++) for (let b = 0; b < 16; b++) for (let d = 0; d < 16; d++) out.push(t[((ch * n + a) * n + b) * n + d]!);
      return out;
    };
    assertClose(corner(seen.get('encoder1')!, 6, 64), f32('intermediates/sample0/enc0_encoder1_corner16'), RTOL, ATOL, 'encoder1 corner');
    assertClose(corner(seen.get('encoder2')!, 6, 32), f32('intermediates/sample0/enc1_encoder2_corner16'), RTOL, ATOL, 'encoder2 corner');
  } finally { net.dispose(); }
});

test("axisOrder 'xyz' is the network run on the (W, H, D) transpose: same logits as 'dhw' on the transposed input", () => {
  manualSeed(4);
  const a = new SwinUNETR({ inChannels: 1, classNum: 2, featureSize: 12, windowSize: 3, useV2: true, axisOrder: 'xyz' });
  const b = new SwinUNETR({ inChannels: 1, classNum: 2, featureSize: 12, windowSize: 3, useV2: true, axisOrder: 'dhw' });
  try {
    b.loadStateDict(a.stateDict());
    a.eval(); b.eval();
    const x = fromTypedArray(Float32Array.from({ length: 32 * 64 * 32 }, (_, i) => Math.sin(i * 0.37)), [1, 1, 32, 64, 32]);
    const ya = noGrad(() => a.forward(x));
    assert.deepEqual(ya.shape, [1, 2, 32, 64, 32], 'logits come back in (D, H, W)');
    const xt = x.permute([0, 1, 4, 3, 2]).contiguous();
    const yb = noGrad(() => b.forward(xt));
    const ybt = yb.permute([0, 1, 4, 3, 2]).contiguous();
    assertClose(ya.dataF32(), ybt.dataF32(), 1e-5, 1e-6, 'xyz vs transposed dhw');
    // And the order matters: 'dhw' on the untransposed input differs.
    const yc = noGrad(() => b.forward(x));
    assert.ok(yc.dataF32().some((v, i) => Math.abs(v - ya.dataF32()[i]!) > 1e-3));
    for (const t of [x, ya, xt, yb, ybt, yc]) t.dispose();
  } finally { a.dispose(); b.dispose(); }
});
