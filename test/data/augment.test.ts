import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { augmentActive, augmentCrop, checkAugment, gaussianBlur, gaussianKernel, type AugmentSpec } from '../../src/data/augment.js';
import { Loader, type Batch, type LoaderOptions } from '../../src/data/loader.js';
import type { Box3 } from '../../src/data/reader.js';
import { Rng } from '../../src/util/rng.js';
import { applyOverrides } from '../../src/config/resolve.js';
import { presetConfig } from '../../src/config/defaults.js';
import { ConfigError, MisfmError } from '../../src/util/errors.js';
import { buildCache, patternCT, tempDir, vol } from './helpers.js';

const OFF: AugmentSpec = presetConfig('small-finetune').data.augment;
const only = (name: keyof AugmentSpec, range: [number, number], p = 1): AugmentSpec => ({ ...OFF, [name]: { p, range } });
const SHAPE: Box3 = [12, 16, 20];
const N = SHAPE[0] * SHAPE[1] * SHAPE[2];
const ramp = (): Float32Array => Float32Array.from({ length: N }, (_, i) => Math.sin(i / 37) * 0.5 + (i % 20) / 40);

function stats(a: ArrayLike<number>): { mean: number; std: number; min: number; max: number } {
  let s = 0, q = 0, min = Infinity, max = -Infinity;
  for (let i = 0; i < a.length; i++) { const v = a[i]!; s += v; q += v * v; min = Math.min(min, v); max = Math.max(max, v); }
  const mean = s / a.length;
  return { mean, std: Math.sqrt(q / a.length - mean * mean), min, max };
}

test('augment: off by default; p = 0 leaves the crop untouched', () => {
  assert.equal(augmentActive(OFF), false);
  assert.equal(augmentActive(undefined), false);
  const x = ramp();
  const rec = augmentCrop(x, SHAPE, OFF, new Rng(1));
  assert.deepEqual(rec, {});
  assert.deepEqual(Array.from(x), Array.from(ramp()));
});

test('augment: each operation does what it says, with its drawn strength', () => {
  // Brightness: an exact multiplication.
  let x = ramp();
  let rec = augmentCrop(x, SHAPE, only('brightness', [0.8, 1.2]), new Rng(2));
  assert.ok(rec.brightness! >= 0.8 && rec.brightness! <= 1.2);
  const r0 = ramp();
  for (let i = 0; i < N; i++) assert.equal(x[i], Math.fround(r0[i]! * rec.brightness!));
  // Noise: the added field has the drawn standard deviation and zero mean.
  x = ramp();
  rec = augmentCrop(x, SHAPE, only('noise', [0.05, 0.1]), new Rng(3));
  const diff = x.map((v, i) => v - r0[i]!);
  const d = stats(diff);
  assert.ok(Math.abs(d.std - rec.noise!) < 0.04 * rec.noise!, `noise std ${d.std} vs drawn ${rec.noise}`);
  assert.ok(Math.abs(d.mean) < 4 * rec.noise! / Math.sqrt(N));
  // Contrast: about the mean, never beyond the original range.
  x = ramp();
  rec = augmentCrop(x, SHAPE, only('contrast', [1.5, 1.5]), new Rng(4));
  const before = stats(r0), after = stats(x);
  assert.ok(after.min >= before.min - 1e-6 && after.max <= before.max + 1e-6);
  assert.ok(after.std > before.std * 1.1, 'contrast raised');
  // Blur and low resolution smooth a noisy crop and keep a constant one constant.
  for (const [name, range] of [['blur', [1, 1]], ['lowResolution', [0.5, 0.5]]] as const) {
    const noisy = Float32Array.from({ length: N }, (_, i) => ((i * 7919) % 13) / 13 - 0.5);
    augmentCrop(noisy, SHAPE, only(name, [...range]), new Rng(5));
    assert.ok(stats(noisy).std < 0.6 * stats(Float32Array.from({ length: N }, (_, i) => ((i * 7919) % 13) / 13 - 0.5)).std, `${name} smooths`);
    const flat = new Float32Array(N).fill(0.25);
    augmentCrop(flat, SHAPE, only(name, [...range]), new Rng(5));
    for (const v of flat) assert.ok(Math.abs(v - 0.25) < 1e-6, `${name} keeps a constant`);
  }
});

test('augment: blur of a point is the separable Gaussian kernel (edges replicate)', () => {
  const shape: Box3 = [9, 11, 13];
  const x = new Float32Array(9 * 11 * 13);
  const at = (z: number, y: number, w: number): number => (z * 11 + y) * 13 + w;
  x[at(4, 5, 6)] = 1;
  gaussianBlur(x, shape, 1.2);
  const k = gaussianKernel(1.2);
  const r = (k.length - 1) / 2;
  for (const [dz, dy, dw] of [[0, 0, 0], [1, 0, 0], [0, -2, 1], [2, 2, -3]] as const) {
    const want = k[dz + r]! * k[dy + r]! * k[dw + r]!;
    assert.ok(Math.abs(x[at(4 + dz, 5 + dy, 6 + dw)]! - want) < 1e-6, `offset ${dz},${dy},${dw}`);
  }
  assert.ok(Math.abs(x.reduce((a, b) => a + b, 0) - 1) < 1e-5, 'mass kept away from the edges');
});

test('augment: deterministic per sample; operations draw from separate streams', () => {
  const all: AugmentSpec = {
    noise: { p: 1, range: [0, 0.05] }, blur: { p: 1, range: [0.5, 1.5] }, brightness: { p: 1, range: [0.75, 1.25] },
    contrast: { p: 1, range: [0.75, 1.25] }, lowResolution: { p: 1, range: [0.5, 1] },
  };
  const a = ramp(), b = ramp();
  const ra = augmentCrop(a, SHAPE, all, new Rng(9));
  const rb = augmentCrop(b, SHAPE, all, new Rng(9));
  assert.deepEqual(ra, rb);
  assert.deepEqual(Array.from(a), Array.from(b));
  // Turning noise off changes neither whether nor how strongly the others fire.
  const rc = augmentCrop(ramp(), SHAPE, { ...all, noise: { p: 0, range: [0, 0.05] } }, new Rng(9));
  const { noise: _n, ...rest } = ra;
  assert.deepEqual(rc, rest);
  // Frequencies follow p.
  let fired = 0;
  for (let s = 0; s < 400; s++) if (augmentCrop(new Float32Array(8), [2, 2, 2], only('brightness', [1, 1], 0.3), new Rng(s)).brightness !== undefined) fired++;
  assert.ok(fired > 90 && fired < 150, `fired ${fired}/400 at p 0.3`);
});

test('augment: bad specs are refused, naming the key', () => {
  assert.throws(() => checkAugment(only('noise', [0, 0.1], 1.5)), (e: unknown) => e instanceof MisfmError && /augment\.noise\.p/.test(e.message));
  assert.throws(() => checkAugment(only('blur', [0, 1])), /augment\.blur\.range must be > 0/);
  assert.throws(() => checkAugment(only('lowResolution', [0.5, 2])), /zoom factor in \(0, 1\]/);
  assert.throws(() => checkAugment(only('contrast', [1.2, 0.8])), /min <= max/);
  const cfg = presetConfig('small-finetune');
  const bad = (o: string, key: RegExp): void => assert.throws(() => applyOverrides(cfg, [o]), (e: unknown) => e instanceof ConfigError && key.test(e.message), o);
  bad('data.augment.blur={"p":0.2,"range":[0,1]}', /data\.augment\.blur\.range/);
  bad('data.augment.noise.p=2', /data\.augment\.noise\.p/);
  bad('data.augment.lowResolution.range=[0.5,1.5]', /data\.augment\.lowResolution\.range.*must not exceed 1/);
  bad('data.augment.speckle={"p":1,"range":[0,1]}', /data\.augment.*speckle/);
  const ok = applyOverrides(cfg, ['data.augment.noise={"p":0.3,"range":[0,0.05]}']);
  assert.deepEqual(ok.data.augment.noise, { p: 0.3, range: [0, 0.05] });
  assert.deepEqual(ok.data.augment.blur, OFF.blur);
});

async function collect(opts: LoaderOptions): Promise<Batch[]> {
  const l = await Loader.open(opts);
  const out: Batch[] = [];
  for await (const b of l) out.push(b);
  return out;
}

test('loader: augmentation changes images only, is recorded per sample, and is the same with 1 or 2 workers', async () => {
  const dir = tempDir('augment-loader');
  try {
    const shape: Box3 = [20, 30, 30];
    const label = new Uint8Array(shape[0] * shape[1] * shape[2]).map((_, i) => (i % 900 < 300 ? 1 : 0));
    buildCache(dir, [
      { id: 'a', image: vol(patternCT(shape), shape), label: vol(label, shape) },
      { id: 'b', image: vol(patternCT(shape), shape), label: vol(label, shape) },
    ]);
    const base: LoaderOptions = { cache: dir, mode: 'segment', cropSize: [8, 16, 16], batchSize: 2, seed: 4, numSamples: 12 };
    const spec: AugmentSpec = { ...OFF, noise: { p: 0.5, range: [0.01, 0.05] }, blur: { p: 0.5, range: [0.5, 1] } };
    const plain = await collect({ ...base, workers: 1 });
    const one = await collect({ ...base, workers: 1, augment: spec });
    const two = await collect({ ...base, workers: 2, augment: spec });
    let changed = 0;
    for (let i = 0; i < plain.length; i++) {
      assert.deepEqual(Array.from(one[i]!.label!), Array.from(plain[i]!.label!), 'labels untouched');
      assert.deepEqual(one[i]!.samples.map((s) => s.start), plain[i]!.samples.map((s) => s.start), 'crops unchanged');
      assert.deepEqual(Buffer.from(one[i]!.image.buffer), Buffer.from(two[i]!.image.buffer), `batch ${i}: same with 2 workers`);
      assert.deepEqual(one[i]!.samples, two[i]!.samples);
      const n = 8 * 16 * 16;
      one[i]!.samples.forEach((s, k) => {
        const same = Buffer.from(one[i]!.image.subarray(k * n, (k + 1) * n).slice().buffer).equals(Buffer.from(plain[i]!.image.subarray(k * n, (k + 1) * n).slice().buffer));
        const applied = s.augment !== undefined && Object.keys(s.augment).length > 0;
        assert.equal(same, !applied, `sample ${s.index}: image changed iff an augmentation is recorded (${JSON.stringify(s.augment)})`);
        if (applied) changed++;
      });
    }
    assert.ok(changed > 0 && changed < 12, `some but not all samples augmented: ${changed}`);
    await assert.rejects(Loader.open({ ...base, augment: only('blur', [0, 1]) }), /augment\.blur\.range/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
