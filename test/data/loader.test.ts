import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MisfmError } from '../../src/util/errors.js';
import { Loader, sampleView, type Batch, type LoaderOptions } from '../../src/data/loader.js';
import { MANIFEST_NAME } from '../../src/data/manifest.js';
import { writeCacheFile } from '../../src/data/format.js';
import type { Box3 } from '../../src/data/reader.js';
import { assertClose } from '../helpers.js';
import { buildCache, patternCT, referenceCrop, sleep, tempDir, vol } from './helpers.js';

const BIG: Box3 = [40, 70, 60];
const SMALL: Box3 = [6, 20, 30];

function blobLabel(dhw: Box3, blobs: [number, Box3, Box3][]): Uint8Array {
  const [, h, w] = dhw;
  const l = new Uint8Array(dhw[0] * h * w);
  for (const [v, s, e] of blobs) {
    for (let z = s[0]; z < e[0]; z++) for (let y = s[1]; y < e[1]; y++) for (let x = s[2]; x < e[2]; x++) l[(z * h + y) * w + x] = v;
  }
  return l;
}

const bigData = patternCT(BIG);
const smallData = patternCT(SMALL);
const bigLabel = blobLabel(BIG, [[3, [30, 50, 5], [34, 54, 9]], [8, [2, 2, 50], [4, 4, 52]]]);
const smallLabel = blobLabel(SMALL, [[3, [1, 1, 1], [3, 3, 3]]]);

function makeCache(): string {
  const dir = tempDir('loader');
  buildCache(dir, [
    { id: 'big', image: vol(bigData, BIG), label: vol(bigLabel, BIG) },
    { id: 'small', image: vol(smallData, SMALL), label: vol(smallLabel, SMALL) },
  ]);
  return dir;
}

async function collect(opts: LoaderOptions): Promise<Batch[]> {
  const l = await Loader.open(opts);
  const out: Batch[] = [];
  for await (const b of l) out.push(b);
  return out;
}

function flipBack(a: ArrayLike<number>, c: Box3, f: readonly boolean[]): number[] {
  const [d, h, w] = c;
  const out = new Array<number>(d * h * w);
  for (let z = 0; z < d; z++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const s = ((f[0] ? d - 1 - z : z) * h + (f[1] ? h - 1 - y : y)) * w + (f[2] ? w - 1 - x : x);
    out[(z * h + y) * w + x] = a[s]!;
  }
  return out;
}

test('loader: same seed gives the same samples with 1 or 2 workers; crops are exact windowed, flipped, padded sub-volumes', async () => {
  const dir = makeCache();
  try {
    const crop: Box3 = [16, 32, 32];
    const base: LoaderOptions = { cache: dir, cropSize: crop, batchSize: 3, seed: 11, numSamples: 24 };
    const a = await collect({ ...base, workers: 1, prefetch: 1 });
    const b = await collect({ ...base, workers: 2, prefetch: 5 });
    assert.equal(a.length, 8);
    assert.deepEqual(a.map((x) => x.samples), b.map((x) => x.samples));
    for (let i = 0; i < a.length; i++) assert.deepEqual(Buffer.from(a[i]!.image.buffer), Buffer.from(b[i]!.image.buffer), `batch ${i}`);
    const other = await collect({ ...base, seed: 12, workers: 2 });
    assert.notDeepEqual(other.map((x) => x.samples), a.map((x) => x.samples));

    // Epoch sampling: every 2 consecutive samples (one epoch) visit both cases.
    const ids = a.flatMap((x) => x.samples.map((s) => s.caseId));
    for (let e = 0; e < 12; e++) assert.deepEqual([ids[2 * e], ids[2 * e + 1]].sort(), ['big', 'small']);
    let flipsSeen = [0, 0, 0];
    for (const batch of a) {
      assert.deepEqual(batch.shape, [3, 1, ...crop]);
      batch.samples.forEach((s, k) => {
        const shape = s.caseId === 'big' ? BIG : SMALL;
        const data = s.caseId === 'big' ? bigData : smallData;
        for (let ax = 0; ax < 3; ax++) {
          const lo = Math.min(0, shape[ax]! - crop[ax]!), hi = Math.max(0, shape[ax]! - crop[ax]!);
          assert.ok(s.start[ax]! >= lo && s.start[ax]! <= hi, `start ${s.start} in range for ${s.caseId}`);
        }
        flipsSeen = flipsSeen.map((c, ax) => c + (s.flips[ax] ? 1 : 0));
        const n = crop[0] * crop[1] * crop[2];
        const got = flipBack(batch.image.subarray(k * n, (k + 1) * n), crop, s.flips);
        // Air padding (-1000 HU) then the [-1000,1000] -> [-1,1] window.
        const want = Array.from(referenceCrop(data, shape, s.start, crop, -1000), (v) => Math.min(1000, Math.max(-1000, v)) / 1000);
        assertClose(got, want, 0, 1e-6, `sample ${s.index}`);
      });
    }
    assert.ok(flipsSeen.every((c) => c > 0 && c < 24), `each axis flipped sometimes: ${flipsSeen}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('loader: resuming from state().nextIndex continues the exact sequence', async () => {
  const dir = makeCache();
  try {
    const base: LoaderOptions = { cache: dir, cropSize: [8, 16, 16], batchSize: 3, seed: 5, workers: 2 };
    const full = await collect({ ...base, numSamples: 24 });
    const l = await Loader.open({ ...base, numSamples: 24 });
    await l.next();
    await l.next();
    await l.next();
    const st = l.state();
    assert.deepEqual(st, { seed: 5, nextIndex: 9 });
    await l.close();
    const rest = await collect({ ...base, startIndex: st.nextIndex, numSamples: 24 - st.nextIndex });
    const tail = (bs: Batch[]): [string, number][] => bs.flatMap((b) => b.samples.map((s) => [s.caseId, s.index] as [string, number]));
    assert.deepEqual(tail(rest), tail(full).slice(9));
    assert.deepEqual(Buffer.from(rest[0]!.image.buffer), Buffer.from(full[3]!.image.buffer));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('loader: foreground oversampling frequency follows p; forced crops contain their class; classes chosen evenly', async () => {
  const dir = makeCache();
  try {
    const crop: Box3 = [8, 8, 8];
    const base: LoaderOptions = { cache: dir, mode: 'segment', cropSize: crop, batchSize: 8, seed: 3, workers: 2, numSamples: 400, caseIds: ['big'] };
    const n = crop[0] * crop[1] * crop[2];
    const run = async (p: number): Promise<{ forced: number; withFg: number; classes: Map<number, number> }> => {
      let forced = 0, withFg = 0;
      const classes = new Map<number, number>();
      for (const b of await collect({ ...base, foregroundP: p })) {
        b.samples.forEach((s, k) => {
          const view = sampleView(b, k);
          assert.deepEqual(view.shape, [1, ...crop]);
          assert.equal(view.info, s);
          const lab = view.label!;
          const hasFg = lab.some((v) => v !== 0);
          if (hasFg) withFg++;
          if (s.foregroundClass !== null) {
            forced++;
            classes.set(s.foregroundClass, (classes.get(s.foregroundClass) ?? 0) + 1);
            assert.ok(lab.includes(s.foregroundClass), `crop centred on class ${s.foregroundClass} contains it`);
          }
          // Labels are the exact crop of the label volume.
          assert.deepEqual(flipBack(lab, crop, s.flips), Array.from(referenceCrop(bigLabel, BIG, s.start, crop, 0)));
        });
      }
      return { forced, withFg, classes };
    };
    const p1 = await run(1);
    assert.equal(p1.forced, 400);
    assert.equal(p1.withFg, 400);
    const c3 = p1.classes.get(3) ?? 0;
    assert.ok(c3 > 140 && c3 < 260, `class 3 chosen ${c3}/400 (class 8 has 8x fewer voxels but equal chance)`);
    const p0 = await run(0);
    assert.equal(p0.forced, 0);
    // Uniform 8^3 crops of a 40x70x60 volume rarely hit two tiny blobs.
    assert.ok(p0.withFg < 40, `random crops with foreground: ${p0.withFg}`);
    const half = await run(0.5);
    // Binomial(400, 0.5): mean 200, sd 10.
    assert.ok(half.forced > 160 && half.forced < 240, `forced ${half.forced}/400 at p=0.5`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('loader: the prefetch queue is bounded and the consumer\'s data wait is measured', async () => {
  const dir = makeCache();
  try {
    const l = await Loader.open({ cache: dir, cropSize: [16, 32, 32], batchSize: 2, seed: 1, workers: 2, prefetch: 3 });
    assert.ok(l.outstanding <= 3);
    const first = (await l.next()).value!;
    // Workers had to start and make the batch while we waited.
    assert.ok(first.waitMs > 1, `first wait ${first.waitMs} ms`);
    await sleep(400);
    // The consumer is idle: exactly prefetch batches exist, no more.
    assert.equal(l.outstanding, 3);
    const waits = [first.waitMs];
    for (let i = 0; i < 12; i++) {
      const b = (await l.next()).value!;
      waits.push(b.waitMs);
      assert.ok(l.outstanding <= 3);
      if (i === 0) assert.ok(b.waitMs < 20, `a prefetched batch is served at once (${b.waitMs} ms)`);
      await sleep(15);
    }
    const st = l.stats();
    assert.equal(st.batches, 13);
    assert.equal(st.samples, 26);
    assert.equal(st.maxOutstanding, 3);
    assert.ok(Math.abs(st.waitMs - waits.reduce((x, y) => x + y, 0)) < 1e-6);
    assert.ok(st.workMs > 0);
    await l.close();
    assert.deepEqual(await l.next(), { done: true, value: undefined });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('loader: per-case label maps beat labelMap, and foreground crops centre only on mapped values', async () => {
  const dir = makeCache();
  try {
    // big's own map keeps only its value 8 (as class 5); small falls back to labelMap.
    const crop: Box3 = [4, 4, 4];
    const bs = await collect({ cache: dir, mode: 'segment', cropSize: crop, batchSize: 4, seed: 5, workers: 2, numSamples: 80, flip: false,
      foregroundP: 1, labelMap: { 3: 2 }, caseLabelMaps: { big: { 8: 5 } } });
    let big = 0;
    for (const b of bs) b.samples.forEach((s, k) => {
      const lab = sampleView(b, k).label!;
      if (s.caseId === 'big') {
        big++;
        assert.equal(s.foregroundClass, 8, 'big\'s crops centre on its mapped value only (3 is unmapped there)');
        assert.ok(lab.includes(5) && lab.every((v) => v === 0 || v === 5), 'big: 8 -> 5, 3 -> 0');
      } else {
        assert.ok(lab.every((v) => v === 0 || v === 2) && lab.includes(2), 'small: the loader-wide map');
      }
    });
    assert.ok(big > 20, `${big} crops of big`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('loader: reflect padding, no flips, zscore, label maps and a custom intensity module', async () => {
  const dir = makeCache();
  try {
    const crop: Box3 = [10, 24, 36];
    const [b] = await collect({
      cache: dir, mode: 'segment', caseIds: ['small'], cropSize: crop, batchSize: 1, numSamples: 1, workers: 1,
      pad: { mode: 'reflect' }, flip: false, intensity: { name: 'zscore' }, labelMap: { 3: 1 }, foregroundP: 0,
    });
    const s = b!.samples[0]!;
    assert.deepEqual(s.flips, [false, false, false]);
    let mean = 0, sq = 0;
    for (const v of smallData) { mean += v; sq += v * v; }
    mean /= smallData.length;
    const std = Math.sqrt(sq / smallData.length - mean * mean);
    const want = Array.from(referenceCrop(smallData, SMALL, s.start, crop, 'reflect'), (v) => (v - mean) / std);
    assertClose(b!.image, want, 1e-5, 1e-5, 'zscore reflect');
    const lab = Array.from(referenceCrop(smallLabel, SMALL, s.start, crop, 'reflect'), (v) => (v === 3 ? 1 : 0));
    assert.deepEqual(Array.from(b!.label!), lab);
    // A custom intensity transform from a module (relative path, params passed through).
    const mod = path.join(dir, 'scale.mjs');
    fs.writeFileSync(mod, 'export function intensity(raw, out, ctx) { for (let i = 0; i < raw.length; i++) out[i] = raw[i] * ctx.params.k; }\n');
    const [c] = await collect({
      cache: dir, caseIds: ['small'], cropSize: crop, batchSize: 1, numSamples: 1, workers: 1, pad: { mode: 'reflect' },
      flip: false, intensity: { name: 'custom', module: path.relative(process.cwd(), mod), params: { k: 3 } },
    });
    const s2 = c!.samples[0]!;
    assert.deepEqual(Array.from(c!.image), Array.from(referenceCrop(smallData, SMALL, s2.start, crop, 'reflect'), (v) => v * 3));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('loader errors: missing and damaged cache files are named; a worker error reaches the consumer', async () => {
  const dir = makeCache();
  try {
    const isErr = (file: string, re: RegExp) => (e: unknown): boolean => {
      assert.ok(e instanceof MisfmError, String(e));
      assert.ok(e.message.includes(file), `names ${file}: ${e.message}`);
      assert.match(e.message, re);
      return true;
    };
    // A damaged foreground file is only read by a worker: the error arrives through next().
    const fg = path.join(dir, 'big.fg');
    fs.writeFileSync(fg, 'garbage garbage garbage garbage garbage');
    const l = await Loader.open({ cache: dir, mode: 'segment', caseIds: ['big'], cropSize: [8, 8, 8], foregroundP: 1, workers: 1, numSamples: 4 });
    await assert.rejects(l.next(), isErr(fg, /corrupt foreground file: bad magic/));
    await assert.rejects(l.next(), isErr(fg, /corrupt foreground file/));
    // A valid cache file that is not the one the manifest describes.
    const img = path.join(dir, 'small.img.mvol');
    writeCacheFile(img, vol(new Int16Array(2 * 3 * 4), [2, 3, 4]), 'image');
    await assert.rejects(Loader.open({ cache: dir }), isErr(img, /cache file is 2x3x4 but the manifest says 6x20x30/));
    writeCacheFile(img, vol(smallData, SMALL), 'image');
    // Truncated image cache: caught when the loader opens.
    fs.truncateSync(img, 1000);
    await assert.rejects(Loader.open({ cache: dir }), isErr(img, /truncated: 1000 bytes, expected 7712/));
    fs.rmSync(img);
    await assert.rejects(Loader.open({ cache: dir }), isErr(img, /missing; re-run `misfm prepare`/));
    fs.rmSync(path.join(dir, MANIFEST_NAME));
    await assert.rejects(Loader.open({ cache: dir }), isErr(path.join(dir, MANIFEST_NAME), /run `misfm prepare` first/));
    buildCache(dir, [{ id: 'nolabel', image: vol(smallData, SMALL) }]);
    await assert.rejects(Loader.open({ cache: dir, mode: 'segment' }), /no usable case with a label/);
    await assert.rejects(Loader.open({ cache: dir, caseIds: ['zzz'] }), /not in the cache.*zzz/);
    await assert.rejects(Loader.open({ cache: dir, cropSize: [0, 8, 8] }), /cropSize/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
