import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  readImage, listDicomSeries, alignToGrid, latticeMapping, assertSameGeometry, sameGrid, orientationCode, parseDicomHeader, affineRAS,
  DicomError, GeometryError,
} from '../../src/io/image/index.js';
import { voxelToWorld, worldToVoxel, type Volume } from '../../src/io/volume.js';
import { dataPath, meanInLabel, tempDir } from './image-helpers.js';

const CT02 = dataPath('02_totalseg_ct_dicom', 'uncompressed');
const J2K02 = dataPath('02_totalseg_ct_dicom', 'j2k_original');
const LAB02 = dataPath('02_totalseg_ct_dicom', 'labels_total.nii.gz');
const CT05 = dataPath('05_dcmqi_ct_3slice', 'dicom');

let cached: Volume | undefined;
async function ct02(): Promise<Volume> {
  cached ??= await readImage(CT02);
  return cached;
}

test('02 DICOM series: size, LPS geometry from the headers, HU range (rescale applied once)', async () => {
  const ct = await ct02();
  assert.ok(ct.data instanceof Int16Array);
  assert.deepEqual(ct.size, [512, 512, 20]);
  assert.deepEqual(ct.spacing, [0.9765625, 0.9765625, 2]);
  // Slices sorted by ascending z along the normal: origin is the lowest slice, z = -804.5.
  assert.deepEqual(ct.origin, [-249.51171875, -437.51171875, -804.5]);
  assert.deepEqual(ct.direction, [1, 0, 0, 0, 1, 0, 0, 0, 1]);
  assert.equal(orientationCode(ct), 'LPS');
  let lo = Infinity, hi = -Infinity;
  for (const x of ct.data) { if (x < lo) lo = x; if (x > hi) hi = x; }
  // Stored 12-bit unsigned with intercept -1024: applying it twice would give -2048.
  assert.deepEqual([lo, hi], [-1024, 1839]);
});

test('02 labels (y flipped) sit on the DICOM grid: integer voxel mapping and README organ HU', async () => {
  const ct = await ct02();
  const lab = await readImage(LAB02);
  assert.equal(orientationCode(lab), 'LAS');
  // README: affine [[-0.977,0,0,249.512],[0,0.977,0,-61.512],[0,0,2,-804.5]] (RAS).
  const ras = affineRAS(lab);
  const want = [[-0.9765625, 0, 0, 249.51171875], [0, 0.9765625, 0, -61.51171875], [0, 0, 2, -804.5], [0, 0, 0, 1]];
  for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) assert.ok(Math.abs(ras[r]![c]! - want[r]![c]!) < 1e-4, `RAS affine ${JSON.stringify(ras)}`);
  // Every label voxel centre is a DICOM voxel centre: voxel -> world -> voxel gives integers.
  for (const ijk of [[0, 0, 0], [511, 511, 19], [100, 37, 5], [300, 400, 12]] as Array<[number, number, number]>) {
    const q = worldToVoxel(ct, voxelToWorld(lab, ijk));
    for (const x of q) assert.ok(Math.abs(x - Math.round(x)) < 1e-6, `label ${ijk} -> dicom ${q}`);
    assert.deepEqual(q.map(Math.round), [ijk[0], 511 - ijk[1], ijk[2]], 'README: (i, j, k) = (column, 511 - row, slice)');
  }
  const m = latticeMapping(lab, ct);
  assert.deepEqual(m, { axis: [0, 1, 2], sign: [1, -1, 1], offset: [0, 511, 0] });
  // Direct comparison must refuse, and point at the fix.
  assert.throws(() => assertSameGeometry(ct, lab, ['ct.dcm-series', 'labels_total.nii.gz']), (e: unknown) =>
    e instanceof GeometryError && e.code === 'GEOMETRY' && /ct\.dcm-series and labels_total\.nii\.gz/.test(e.message) &&
    /origin/.test(e.message) && /direction LPS .* vs LAS/.test(e.message) && /alignToGrid/.test(e.message));
  const aligned = alignToGrid(lab, ct, ['labels', 'ct']);
  assert.ok(sameGrid(aligned, ct));
  assert.equal(aligned.data[5 + 512 * 500], lab.data[5 + 512 * 11], 'row r of the DICOM is row 511-r of the labels');
  const expect: Array<[number, number, number, number]> = [[5, 89, 366708, 1], [1, 80, 130634, 1], [52, 177, 11723, 1], [32, 267, 23576, 1], [0, -742, 4503460, 1]];
  for (const [label, hu, count, tol] of expect) {
    const r = meanInLabel(ct.data, aligned.data, label);
    assert.equal(r.count, count, `label ${label} voxels`);
    assert.ok(Math.abs(r.mean - hu) <= tol, `label ${label}: mean HU ${r.mean.toFixed(1)}, README ${hu}`);
  }
  // Without the flip, the liver would land on other tissue: the test can tell.
  const wrong = meanInLabel(ct.data, lab.data, 5);
  assert.ok(Math.abs(wrong.mean - 89) > 20, `unaligned liver mean ${wrong.mean}`);
});

test('02 j2k_original: empty UIDs still form one series; JPEG 2000 decodes to the same voxels', async () => {
  const list = await listDicomSeries(J2K02);
  assert.equal(list.length, 1);
  const s = list[0]!;
  assert.equal(s.uid, '');
  assert.equal(s.id, 'unnamed-1');
  assert.equal(s.transferSyntax, '1.2.840.10008.1.2.4.90');
  assert.equal(s.numFiles, 20);
  assert.deepEqual(s.size, [512, 512, 20]);
  assert.deepEqual(s.spacing, [0.9765625, 0.9765625, 2]);
  const j2k = await readImage(J2K02);
  const ct = await ct02();
  assert.deepEqual([j2k.origin, j2k.spacing, j2k.direction], [ct.origin, ct.spacing, ct.direction]);
  assert.deepEqual(Buffer.from(j2k.data.buffer), Buffer.from(ct.data.buffer));
});

test('05 DICOM (3 slices, implicit VR, signed + intercept) and its NRRD labels share a grid; liver 37 HU', async () => {
  const ct = await readImage(CT05);
  const lab = await readImage(dataPath('05_dcmqi_ct_3slice', 'liver_spine_seg.nrrd'));
  assert.ok(ct.data instanceof Int16Array, 'HU narrowed back to int16');
  assert.deepEqual(ct.size, [512, 512, 3]);
  assertSameGeometry(ct, lab, ['05 dicom', 'liver_spine_seg.nrrd']);
  assert.ok(Math.abs(ct.origin[2] - -128.69) < 1e-4, 'k=0 is z=-128.69 (03.dcm)');
  let lo = Infinity;
  for (const x of ct.data) if (x < lo) lo = x;
  assert.equal(lo, -3024, 'padding -2000 stored + intercept -1024');
  const liver = meanInLabel(ct.data, lab.data, 1), spine = meanInLabel(ct.data, lab.data, 2);
  assert.equal(liver.count, 107098);
  assert.equal(spine.count, 12439);
  assert.ok(Math.abs(liver.mean - 37) < 1, `liver ${liver.mean}`);
  assert.ok(Math.abs(spine.mean - 328) < 1, `spine ${spine.mean}`);
});

test('a single .dcm file reads as one slice with SliceThickness as z spacing', async () => {
  const one = await readImage(path.join(CT05, '02.dcm'));
  assert.deepEqual(one.size, [512, 512, 1]);
  assert.equal(one.spacing[2], 1.25);
  assert.ok(Math.abs(one.origin[2] - -127.69) < 1e-4);
});

function linkAll(from: string, to: string, skip: (name: string, i: number) => boolean = () => false): string[] {
  fs.mkdirSync(to, { recursive: true });
  const names = fs.readdirSync(from).sort();
  names.forEach((n, i) => { if (!skip(n, i)) fs.symlinkSync(path.join(from, n), path.join(to, n)); });
  return names;
}

test('a folder with two series: listing, refusal without a choice, selection by UID, pickLargest', async () => {
  const dir = tempDir('dcm2');
  try {
    linkAll(CT02, path.join(dir, 'a'));
    linkAll(CT05, path.join(dir, 'b', 'deeper'));
    fs.writeFileSync(path.join(dir, 'README.txt'), 'not dicom');
    const list = await listDicomSeries(dir);
    assert.equal(list.length, 2);
    const small = list.find((s) => s.size[2] === 3)!;
    assert.equal(small.modality, 'CT');
    assert.equal(small.uid, '1.2.392.200103.20080913.113635.1.2009.6.22.21.43.10.23430.1');
    await assert.rejects(readImage(dir), (e: unknown) =>
      e instanceof DicomError && e.code === 'DICOM' && e.message.includes(dir) && /2 image series/.test(e.message) &&
      e.message.includes(small.id) && /--series/.test(e.message));
    const v = await readImage(dir, { seriesUid: small.uid });
    assert.deepEqual(v.size, [512, 512, 3]);
    const warnings: string[] = [];
    const big = await readImage(dir, { pickLargest: true, onWarning: (m) => warnings.push(m) });
    assert.deepEqual(big.size, [512, 512, 20]);
    assert.ok(warnings.some((w) => /reading the largest/.test(w)), warnings.join('\n'));
    await assert.rejects(readImage(dir, { seriesUid: '1.2.3' }), (e: unknown) => e instanceof DicomError && /no series 1\.2\.3/.test(e.message));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a missing slice: strict geometry names the gap and its files; by default it is resampled with a warning', async () => {
  const dir = tempDir('dcmgap');
  try {
    // Files are named in ascending instance order = descending z; drop the 10th.
    const names = linkAll(CT02, dir, (_, i) => i === 9);
    const list = await listDicomSeries(dir);
    assert.equal(list.length, 1);
    assert.equal(list[0]!.problem, undefined);
    assert.match(list[0]!.irregular?.message ?? '', /inconsistent slice spacing/);
    const warnings: string[] = [];
    const v = await readImage(dir, { onWarning: (m) => warnings.push(m) });
    assert.deepEqual(v.size, [512, 512, 20], 'the 4 mm gap is filled by interpolation at the 2 mm step');
    assert.deepEqual([v.origin, v.spacing], [(await ct02()).origin, (await ct02()).spacing]);
    assert.match(warnings.join('\n'), /uneven slice gaps \(smallest 2 mm\): resampled onto a regular grid/);
    await assert.rejects(readImage(dir, { strictGeometry: true }), (e: unknown) => {
      assert.ok(e instanceof DicomError, String(e));
      assert.match(e.message, /inconsistent slice spacing: the usual gap is 2 mm/);
      assert.match(e.message, /4 mm between slice \d+ \(\S+, z=-786\.5\) and slice \d+ \(\S+, z=-782\.5\)/);
      assert.ok(e.message.includes(names[8]!) && e.message.includes(names[10]!), e.message);
      assert.match(e.message, /missing slices/);
      return true;
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('duplicate slice positions, empty folders and folders without DICOM give named errors', async () => {
  const dir = tempDir('dcmbad');
  try {
    const dup = path.join(dir, 'dup');
    linkAll(CT05, dup);
    fs.copyFileSync(path.join(CT05, '01.dcm'), path.join(dup, '01-copy.dcm'));
    // Same SOP instance twice is still two files at one position.
    await assert.rejects(readImage(dup), (e: unknown) => e instanceof DicomError && /same position/.test(e.message) && /01-copy\.dcm/.test(e.message));
    const empty = path.join(dir, 'empty');
    fs.mkdirSync(empty);
    await assert.rejects(readImage(empty), (e: unknown) => e instanceof DicomError && e.message.includes(empty) && /no DICOM image series found: the folder is empty/.test(e.message));
    const text = path.join(dir, 'text');
    fs.mkdirSync(text);
    fs.writeFileSync(path.join(text, 'a.dcm'), 'hello');
    fs.writeFileSync(path.join(text, 'b'), Buffer.alloc(300));
    await assert.rejects(readImage(text), (e: unknown) => e instanceof DicomError && /none of its 2 files is DICOM/.test(e.message));
    await assert.rejects(readImage(path.join(text, 'a.dcm')), (e: unknown) => e instanceof DicomError && /not a DICOM file/.test(e.message));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** Explicit VR little-endian element. */
function el(group: number, elem: number, vr: string, value: Buffer): Buffer {
  const long = ['OB', 'OW', 'SQ', 'UN', 'UT'].includes(vr);
  const h = Buffer.alloc(long ? 12 : 8);
  h.writeUInt16LE(group, 0); h.writeUInt16LE(elem, 2); h.write(vr, 4, 'latin1');
  if (long) h.writeUInt32LE(value.length === 0 && vr === 'SQ' ? 0xffffffff : value.length, 8);
  else h.writeUInt16LE(value.length, 6);
  return Buffer.concat([h, value]);
}
const str = (s: string): Buffer => Buffer.from(s.length % 2 ? `${s} ` : s, 'latin1');

test('parseDicomHeader skips nested undefined-length sequences and stops at pixel data', () => {
  const item = (body: Buffer): Buffer => {
    const h = Buffer.alloc(8); h.writeUInt16LE(0xfffe, 0); h.writeUInt16LE(0xe000, 2); h.writeUInt32LE(0xffffffff, 4);
    const end = Buffer.alloc(8); end.writeUInt16LE(0xfffe, 0); end.writeUInt16LE(0xe00d, 2);
    return Buffer.concat([h, body, end]);
  };
  const seqEnd = Buffer.alloc(8); seqEnd.writeUInt16LE(0xfffe, 0); seqEnd.writeUInt16LE(0xe0dd, 2);
  // A sequence holding an item that itself holds a sequence, with a decoy SeriesInstanceUID inside.
  const inner = Buffer.concat([el(0x0008, 0x1150, 'SQ', Buffer.alloc(0)), item(el(0x0020, 0x000e, 'UI', str('9.9.9'))), seqEnd]);
  const outer = Buffer.concat([el(0x0008, 0x1140, 'SQ', Buffer.alloc(0)), item(inner), seqEnd]);
  const us = (v: number): Buffer => { const b = Buffer.alloc(2); b.writeUInt16LE(v); return b; };
  const meta = el(0x0002, 0x0010, 'UI', str('1.2.840.10008.1.2.1'));
  const body = Buffer.concat([
    el(0x0008, 0x0060, 'CS', str('MR')), outer, el(0x0020, 0x000e, 'UI', str('1.2.3.4')), el(0x0020, 0x0032, 'DS', str('1.5\\-2\\3.25')),
    el(0x0020, 0x0037, 'DS', str('1\\0\\0\\0\\0\\-1')), el(0x0028, 0x0010, 'US', us(4)), el(0x0028, 0x0011, 'US', us(6)),
    el(0x0028, 0x0030, 'DS', str('0.5\\0.25')), el(0x7fe0, 0x0010, 'OW', Buffer.alloc(48)), el(0x0020, 0x000e, 'UI', str('after.pixels')),
  ]);
  const file = Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), meta, body]);
  const h = parseDicomHeader(file, true)!;
  assert.equal(h.seriesUid, '1.2.3.4');
  assert.equal(h.modality, 'MR');
  assert.deepEqual(h.imagePosition, [1.5, -2, 3.25]);
  assert.deepEqual(h.imageOrientation, [1, 0, 0, 0, 0, -1]);
  assert.deepEqual([h.rows, h.columns, h.pixelSpacing], [4, 6, [0.5, 0.25]]);
  assert.equal(h.hasPixelData, true);
  assert.equal(parseDicomHeader(Buffer.from('not dicom at all, just text....'), true), undefined);
  // Cut inside the header: asks for more bytes rather than guessing.
  assert.throws(() => parseDicomHeader(file.subarray(0, 200), false), /continues past/);
});
