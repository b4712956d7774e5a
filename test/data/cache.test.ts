import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readImage } from '../../src/io/image/index.js';
import type { Volume } from '../../src/io/volume.js';
import { MisfmError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/rng.js';
import { HEADER_BYTES, readCacheHeader, writeCacheFile } from '../../src/data/format.js';
import { CacheVolume, chooseStrategy, type Box3, type ReadStrategy } from '../../src/data/reader.js';
import { readCrop, reflectIndex } from '../../src/data/crop.js';
import { readForeground, sampleForeground, writeForeground } from '../../src/data/foreground.js';
import { labelCounts } from '../../src/data/stats.js';
import { assertSameValues, dataPath, referenceCrop, tempDir, vol } from './helpers.js';

const STRATEGIES: ReadStrategy[] = ['rows', 'slabs', 'block', 'auto'];

/** Crop of a Volume's x-fastest data, i.e. its (D,H,W) C-order array, by direct indexing. */
function directBox(v: Volume, start: Box3, size: Box3): Float64Array {
  return referenceCrop(v.data, [v.size[2], v.size[1], v.size[0]], start, size, 0);
}

/** Random boxes inside `shape`, plus the corner/border cases: first voxel, last voxel, full extent. */
function boxes(shape: Box3, crop: Box3, rng: Rng, n: number): [Box3, Box3][] {
  const c = crop.map((k, a) => Math.min(k, shape[a]!)) as Box3;
  const out: [Box3, Box3][] = [
    [[0, 0, 0], c],
    [shape.map((s, a) => s - c[a]!) as Box3, c],
    [[0, 0, 0], [...shape] as Box3],
    [[shape[0] - 1, shape[1] - 1, shape[2] - 1], [1, 1, 1]],
    [[0, shape[1] - 1, 0], [shape[0], 1, shape[2]]],
  ];
  for (let i = 0; i < n; i++) {
    const size = c.map((k) => rng.randint(1, k)) as Box3;
    out.push([size.map((s, a) => rng.randint(0, shape[a]! - s)) as Box3, size]);
  }
  return out;
}

async function checkRealVolume(source: string, tag: string): Promise<void> {
  const v = await readImage(source);
  const dir = tempDir(tag);
  try {
    const file = path.join(dir, 'v.mvol');
    const bytes = writeCacheFile(file, v, 'image');
    assert.equal(bytes, HEADER_BYTES + v.data.byteLength);
    const cv = CacheVolume.open(file);
    const shape: Box3 = [v.size[2], v.size[1], v.size[0]];
    assert.deepEqual(cv.shape, shape);
    assert.deepEqual(cv.header.spacing, v.spacing);
    assert.deepEqual(cv.header.origin, v.origin);
    assert.deepEqual(cv.header.direction, v.direction);
    assertSameValues(cv.readAll(), v.data, 'whole volume round trip');
    const rng = new Rng(7);
    for (const [start, size] of boxes(shape, [64, 128, 128], rng, 12)) {
      const want = directBox(v, start, size);
      for (const s of STRATEGIES) {
        assertSameValues(cv.readBox(start, size, undefined, s), want, `${tag} ${s} box ${start} ${size}`);
      }
    }
    // Crops reaching outside (padding), compared with a voxel-by-voxel reference.
    for (const [start, size] of [
      [[-3, -5, -7], [8, 16, 16]], [[shape[0] - 4, shape[1] - 9, shape[2] - 2], [8, 16, 16]], [[-2, 10, -1], [shape[0] + 5, 4, 3]],
    ] as [Box3, Box3][]) {
      assertSameValues(readCrop(cv, start, size, { mode: 'constant', value: -1000 }), referenceCrop(v.data, shape, start, size, -1000), `${tag} constant pad ${start}`);
      assertSameValues(readCrop(cv, start, size, { mode: 'reflect' }), referenceCrop(v.data, shape, start, size, 'reflect'), `${tag} reflect pad ${start}`);
    }
    cv.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('random and border crops from the cache equal crops of the decoded real CT (01, NIfTI int32)', async () => {
  await checkRealVolume(dataPath('01_totalseg_abdomen_ct', 'ct.nii.gz'), 'ct01');
});

test('random and border crops from the cache equal crops of the decoded DICOM series (02, 512x512x20 int16)', async () => {
  await checkRealVolume(dataPath('02_totalseg_ct_dicom', 'uncompressed'), 'dcm02');
});

test('auto picks slabs for CT-shaped crops and exact reads when rows are full', () => {
  assert.equal(chooseStrategy([200, 512, 512], [64, 128, 128], 2), 'slabs');
  assert.equal(chooseStrategy([200, 512, 512], [64, 512, 512], 2), 'block');
  // Huge rows, narrow crop: reading whole rows would move far more data than many small reads.
  assert.equal(chooseStrategy([4, 4, 50_000_000], [2, 2, 4], 2), 'rows');
  assert.equal(reflectIndex(-1, 5), 1);
  assert.equal(reflectIndex(5, 5), 3);
  assert.equal(reflectIndex(-9, 5), 1);
  assert.equal(reflectIndex(7, 1), 0);
});

test('damaged cache files give errors naming the file and the problem', () => {
  const dir = tempDir('corrupt');
  try {
    const file = path.join(dir, 'a.mvol');
    const data = new Int16Array(4 * 5 * 6).map((_, i) => i);
    writeCacheFile(file, vol(data, [4, 5, 6]), 'image');
    const good = fs.readFileSync(file);
    const expectErr = (f: string, re: RegExp): void => {
      for (const fn of [() => CacheVolume.open(f), () => readCacheHeader(f)]) {
        assert.throws(fn, (e: unknown) => {
          assert.ok(e instanceof MisfmError, String(e));
          assert.ok(e.message.includes(f), `names the file: ${e.message}`);
          assert.match(e.message, re);
          return true;
        });
      }
    };
    const trunc = path.join(dir, 'trunc.mvol');
    fs.writeFileSync(trunc, good.subarray(0, good.length - 10));
    expectErr(trunc, /truncated: 742 bytes, expected 752 for int16 4x5x6/);
    const short = path.join(dir, 'short.mvol');
    fs.writeFileSync(short, good.subarray(0, 100));
    expectErr(short, /truncated header: 100 of 512 bytes/);
    const magic = path.join(dir, 'magic.mvol');
    fs.writeFileSync(magic, Buffer.concat([Buffer.from('NOTMAGIC'), good.subarray(8)]));
    expectErr(magic, /bad magic "NOTMAGIC"/);
    const text = path.join(dir, 'text.mvol');
    fs.writeFileSync(text, 'hello, I am a text file\n');
    expectErr(text, /bad magic/);
    const flipped = Buffer.from(good);
    flipped[40]! ^= 0xff; // a spacing byte
    const crc = path.join(dir, 'crc.mvol');
    fs.writeFileSync(crc, flipped);
    expectErr(crc, /header checksum mismatch/);
    const extra = path.join(dir, 'extra.mvol');
    fs.writeFileSync(extra, Buffer.concat([good, Buffer.alloc(3)]));
    expectErr(extra, /trailing bytes/);
    expectErr(path.join(dir, 'missing.mvol'), /missing/);
    // Reads outside the volume are argument errors, not silent garbage.
    const cv = CacheVolume.open(file);
    assert.throws(() => cv.readBox([0, 0, 1], [4, 5, 6]), /not inside the volume 4x5x6/);
    cv.close();
    // Writes that cannot happen name the file and leave no temp file.
    const noDir = path.join(dir, 'absent', 'b.mvol');
    assert.throws(() => writeCacheFile(noDir, vol(data, [4, 5, 6]), 'image'),
      (e: unknown) => e instanceof MisfmError && e.message.includes(noDir) && /cannot write cache file/.test(e.message));
    const fgNoDir = path.join(dir, 'absent', 'b.fg');
    assert.throws(() => writeForeground(fgNoDir, { shape: [6, 5, 4], classes: [] }),
      (e: unknown) => e instanceof MisfmError && e.message.includes(fgNoDir) && /cannot write foreground file/.test(e.message));
    assert.deepEqual(fs.readFileSync(file), good, 'the existing cache file is untouched');
    assert.deepEqual(fs.readdirSync(dir).filter((n) => n.includes('.tmp-')), [], 'no temp file left behind');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('foreground samples: every stored index holds its class; small classes complete, large ones sampled', () => {
  const dhw: [number, number, number] = [30, 40, 50];
  const lab = new Uint8Array(30 * 40 * 50);
  // class 1: a 20x30x40 block (24000 voxels, more than 10000), class 7: 27 voxels.
  for (let z = 5; z < 25; z++) for (let y = 5; y < 35; y++) for (let x = 5; x < 45; x++) lab[(z * 40 + y) * 50 + x] = 1;
  for (let z = 0; z < 3; z++) for (let y = 0; y < 3; y++) for (let x = 0; x < 3; x++) lab[(z * 40 + y) * 50 + x] = 7;
  const counts = labelCounts(lab);
  assert.deepEqual([...counts.entries()], [[0, 60000 - 24027], [1, 24000], [7, 27]]);
  const fg = sampleForeground(lab, dhw, counts);
  const dir = tempDir('fg');
  try {
    const f = path.join(dir, 'x.fg');
    writeForeground(f, fg);
    const back = readForeground(f);
    assert.deepEqual(back.shape, dhw);
    assert.deepEqual(back.classes.map((c) => [c.value, c.count, c.indices.length]), [[1, 24000, 10000], [7, 27, 27]]);
    for (const c of back.classes) {
      for (let i = 0; i < c.indices.length; i++) {
        assert.equal(lab[c.indices[i]!], c.value);
        if (i > 0) assert.ok(c.indices[i]! > c.indices[i - 1]!, 'ascending, no repeats');
      }
    }
    // The sample spreads over the whole class, not just its first voxels.
    const ones = back.classes[0]!.indices;
    assert.ok(ones[0]! < 30000 && ones[ones.length - 1]! > 45000, `spread ${ones[0]}..${ones[ones.length - 1]}`);
    const bad = Buffer.from(fs.readFileSync(f));
    fs.writeFileSync(f, bad.subarray(0, bad.length - 4));
    assert.throws(() => readForeground(f), (e: unknown) => e instanceof MisfmError && e.message.includes(f) && /corrupt foreground file/.test(e.message));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
