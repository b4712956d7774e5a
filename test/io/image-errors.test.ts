import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readImage, writeImage, assertSameGeometry, sameGrid, GeometryError } from '../../src/io/image/index.js';
import { ImageIOError, MisfmError } from '../../src/util/errors.js';
import { quietly } from '../../src/io/image/itk.js';
import { dataPath, syntheticVolume, tempDir, writeNifti1, writeNrrd } from './image-helpers.js';

const CT_SM = dataPath('01_totalseg_abdomen_ct', 'ct_sm.nii.gz');

/** A rejection that is an ImageIOError naming `file` and matching `re`. */
async function rejectsIO(p: Promise<unknown>, file: string, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof ImageIOError, `expected ImageIOError, got ${String(e)}`);
    assert.equal(e.code, 'IMAGE_IO');
    assert.ok(e.message.includes(file), `message should name ${file}: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

test('missing files, unknown endings and non-images are named errors, not wasm stack traces', async () => {
  const dir = tempDir('err1');
  try {
    const missing = path.join(dir, 'nope.nii.gz');
    await rejectsIO(readImage(missing), missing, /not found/);
    const txt = path.join(dir, 'notes.txt');
    fs.writeFileSync(txt, 'hello');
    await rejectsIO(readImage(txt), txt, /unsupported file type "\.txt"/);
    const fakeNii = path.join(dir, 'text.nii');
    fs.writeFileSync(fakeNii, 'this is a text file, not an image at all\n'.repeat(20));
    await rejectsIO(readImage(fakeNii), fakeNii, /not a NIfTI file: header size field is \d+, expected 348/);
    const fakeGz = path.join(dir, 'text.nii.gz');
    fs.writeFileSync(fakeGz, 'plain text');
    await rejectsIO(readImage(fakeGz), fakeGz, /not gzip-compressed/);
    const fakeNrrd = path.join(dir, 'text.nrrd');
    fs.writeFileSync(fakeNrrd, 'hello world');
    await rejectsIO(readImage(fakeNrrd), fakeNrrd, /not a NRRD file/);
    const fakeMha = path.join(dir, 'text.mha');
    fs.writeFileSync(fakeMha, 'hello world');
    await rejectsIO(readImage(fakeMha), fakeMha, /not a MetaImage file/);
    const empty = path.join(dir, 'empty.nii');
    fs.writeFileSync(empty, '');
    await rejectsIO(readImage(empty), empty, /file is empty/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('truncated and corrupt gzip / raw data are detected before itk-wasm reads zeros', async () => {
  const dir = tempDir('err2');
  try {
    const gz = fs.readFileSync(CT_SM);
    const cut = path.join(dir, 'cut.nii.gz');
    fs.writeFileSync(cut, gz.subarray(0, Math.floor(gz.length * 0.6)));
    await rejectsIO(readImage(cut), cut, /truncated or corrupt gzip data \(unexpected end of file\)/);
    const head = path.join(dir, 'head.nii.gz');
    fs.writeFileSync(head, gz.subarray(0, 60));
    await rejectsIO(readImage(head), head, /truncated or corrupt gzip data: the NIfTI header needs 348 bytes, only \d+ decompress/);
    // Damage inside a full-length file keeps the length trailer: only the CRC check sees it.
    const bad = Buffer.from(gz);
    for (let i = 200000; i < 200040; i++) bad[i] = bad[i]! ^ 0x5a;
    const dmg = path.join(dir, 'damaged.nii.gz');
    fs.writeFileSync(dmg, bad);
    await rejectsIO(readImage(dmg, { verifyGzip: true }), dmg, /corrupt gzip data/);
    // Uncompressed formats: a short file is caught from the header's size.
    const vol = syntheticVolume('int16');
    for (const ext of ['.nii', '.nrrd', '.mha']) {
      const f = path.join(dir, `full${ext}`);
      await writeImage(f, vol, { compress: false });
      const bytes = fs.readFileSync(f);
      const t = path.join(dir, `short${ext}`);
      fs.writeFileSync(t, bytes.subarray(0, bytes.length - 10));
      await rejectsIO(readImage(t), t, /truncated/);
    }
    const nrrdGz = path.join(dir, 'gz.nrrd');
    await writeImage(nrrdGz, await readImage(CT_SM));
    const nb = fs.readFileSync(nrrdGz);
    const nrrdCut = path.join(dir, 'gzcut.nrrd');
    fs.writeFileSync(nrrdCut, nb.subarray(0, nb.length - 1000));
    await rejectsIO(readImage(nrrdCut), nrrdCut, /truncated or corrupt gzip data/);
    // Detached header whose data file is gone.
    const nhdr = path.join(dir, 'det.nhdr');
    await writeImage(nhdr, vol);
    for (const n of fs.readdirSync(dir)) if (n.startsWith('det.') && n !== 'det.nhdr') fs.rmSync(path.join(dir, n));
    await rejectsIO(readImage(nhdr), nhdr, /data file det\.raw(\.gz)? not found/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('2D, 4D, RGB, complex and empty-axis images are refused with the reason', async () => {
  const dir = tempDir('err3');
  try {
    const f = (n: string): string => path.join(dir, n);
    writeNifti1(f('2d.nii'), [4, 5], 4, 16, new Uint8Array(40));
    await rejectsIO(readImage(f('2d.nii')), f('2d.nii'), /2D image \(4x5\): misfm needs a 3D volume/);
    writeNifti1(f('4d.nii.gz'), [4, 5, 6, 3], 4, 16, new Uint8Array(720), true);
    await rejectsIO(readImage(f('4d.nii.gz')), f('4d.nii.gz'), /4D image \(4x5x6x3\) holds 3 volumes/);
    writeNifti1(f('rgb.nii'), [4, 5, 6], 128, 24, new Uint8Array(360));
    await rejectsIO(readImage(f('rgb.nii')), f('rgb.nii'), /unsupported pixel type: NIfTI datatype 128 \(RGB24\)/);
    writeNifti1(f('cplx.nii'), [4, 5, 6], 32, 64, new Uint8Array(960));
    await rejectsIO(readImage(f('cplx.nii')), f('cplx.nii'), /complex64/);
    writeNifti1(f('zero.nii'), [4, 0, 6], 4, 16, new Uint8Array(0));
    await rejectsIO(readImage(f('zero.nii')), f('zero.nii'), /empty axis: dimensions 4x0x6/);
    // The same checks after itk-wasm decoded the file (NRRD headers are not pre-screened for them).
    writeNrrd(f('2d.nrrd'), { type: 'short', dimension: '2', sizes: '4 5', encoding: 'raw', endian: 'little' }, new Uint8Array(40));
    await rejectsIO(readImage(f('2d.nrrd')), f('2d.nrrd'), /2D image \(4x5\)/);
    writeNrrd(f('4d.nrrd'), { type: 'short', dimension: '4', sizes: '4 5 6 2', encoding: 'raw', endian: 'little' }, new Uint8Array(480));
    await rejectsIO(readImage(f('4d.nrrd')), f('4d.nrrd'), /4D image \(4x5x6x2\) holds 2 volumes/);
    writeNrrd(f('rgb.nrrd'), { type: 'uchar', dimension: '4', sizes: '3 4 5 6', kinds: 'RGB-color domain domain domain', encoding: 'raw' }, new Uint8Array(360));
    await rejectsIO(readImage(f('rgb.nrrd')), f('rgb.nrrd'), /unsupported pixel type RGB of 3 uint8 components/);
    // A 4th axis of length 1 is squeezed away.
    writeNifti1(f('4d1.nii'), [4, 5, 6, 1], 2, 8, new Uint8Array(120).map((_, i) => i));
    const sq = await readImage(f('4d1.nii'));
    assert.deepEqual(sq.size, [4, 5, 6]);
    assert.equal(sq.data[119], 119);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('NaN / Inf voxels in float images: error with count and position, or skipped on request', async () => {
  const dir = tempDir('err4');
  try {
    const vals = new Float32Array(4 * 5 * 6).fill(1.5);
    vals[3 + 4 * (2 + 5 * 3)] = NaN; // voxel (3, 2, 3), x-fastest
    vals[4 + 4 * (2 + 5 * 3)] = NaN; // the next one, voxel (0, 3, 3)
    vals[100] = Infinity;
    const file = path.join(dir, 'nan.nrrd');
    writeNrrd(file, { type: 'float', dimension: '3', sizes: '4 5 6', encoding: 'raw', endian: 'little' }, new Uint8Array(vals.buffer));
    await rejectsIO(readImage(file), file, /3 voxel\(s\) are NaN or infinite, first at voxel \(3, 2, 3\) = NaN/);
    const v = await readImage(file, { checkFinite: false });
    assert.ok(Number.isNaN(v.data[3 + 4 * (2 + 5 * 3)]!));
    assert.equal(v.data[100], Infinity);
    // ITK's NIfTI reader (niftilib) zeroes non-finite floats itself: pinned here so a change shows.
    const nii = path.join(dir, 'nan.nii');
    writeNifti1(nii, [4, 5, 6], 16, 32, new Uint8Array(vals.buffer));
    const n = await readImage(nii);
    assert.deepEqual([n.data[3 + 4 * (2 + 5 * 3)], n.data[100], n.data[0]], [0, 0, 1.5]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('writeImage refuses DICOM, unknown endings and broken volumes, naming the file', async () => {
  const dir = tempDir('err5');
  try {
    const v = syntheticVolume('int16');
    await rejectsIO(writeImage(path.join(dir, 'x.dcm'), v), 'x.dcm', /cannot write DICOM/);
    await rejectsIO(writeImage(path.join(dir, 'x.png'), v), 'x.png', /unsupported file type "\.png"/);
    await rejectsIO(writeImage(path.join(dir, 'x.nii'), { ...v, spacing: [1, 0, 1] }), 'x.nii', /invalid spacing/);
    await rejectsIO(writeImage(path.join(dir, 'x.nii'), { ...v, direction: [1, 0, 0, 1, 0, 0, 0, 0, 1] }), 'x.nii', /singular/);
    assert.deepEqual(fs.readdirSync(dir), []);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('assertSameGeometry names both files and the differing field; tolerates float32 noise', () => {
  const a = syntheticVolume('int16');
  const noisy = { ...a, origin: [a.origin[0] + 2e-5, a.origin[1], a.origin[2]] as [number, number, number], spacing: [0.7000001, 1.3, 2.5] as [number, number, number] };
  assert.ok(sameGrid(a, noisy));
  assertSameGeometry(a, noisy, ['img.nii.gz', 'seg.nii.gz']);
  const fail = (b: typeof a, re: RegExp): void => assert.throws(() => assertSameGeometry(a, b, ['img.nii.gz', 'seg.nii.gz']), (e: unknown) => {
    assert.ok(e instanceof GeometryError && e instanceof MisfmError);
    assert.equal(e.code, 'GEOMETRY');
    assert.match(e.message, /img\.nii\.gz and seg\.nii\.gz do not share a voxel grid/);
    assert.match(e.message, re);
    return true;
  });
  fail({ ...a, spacing: [0.7, 1.3, 2.6] }, /spacing \(0\.7, 1\.3, 2\.5\) vs \(0\.7, 1\.3, 2\.6\) mm/);
  fail({ ...a, size: [7, 5, 5], data: new Int16Array(175) }, /size 7x5x4 vs 7x5x5/);
  fail({ ...a, origin: [12.5, -33.25, 103.625] }, /origin \(12\.5, -33\.25, 101\.125\) vs \(12\.5, -33\.25, 103\.625\) mm \(LPS; 2\.5 mm apart\)/);
  assert.equal(sameGrid(a, { ...a, direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] }), false);
});

test('a symlinked image is read through its real path (itk-wasm cannot follow links)', async () => {
  const dir = tempDir('err6');
  try {
    const link = path.join(dir, 'link.nii.gz');
    fs.symlinkSync(CT_SM, link);
    const v = await readImage(link);
    assert.deepEqual(v.size, [122, 101, 30]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('failures inside itk-wasm become ImageIOErrors and print nothing to the console', async () => {
  const dir = tempDir('err7');
  const printed: string[] = [];
  const saved = { log: console.log, error: console.error };
  console.log = (...a: unknown[]) => { printed.push(a.join(' ')); };
  console.error = (...a: unknown[]) => { printed.push(a.join(' ')); };
  try {
    const bz = path.join(dir, 'bz.nrrd');
    writeNrrd(bz, { type: 'short', dimension: '3', sizes: '4 5 6', encoding: 'bzip2', endian: 'little' }, new Uint8Array(100).fill(7));
    await rejectsIO(readImage(bz), bz, /ITK's NRRD reader failed without a message/);
    // MetaIO reports "Uncompress failed" on stderr yet returns a zero image: that must not pass.
    const mha = path.join(dir, 'z.mha');
    fs.writeFileSync(mha, 'ObjectType = Image\nNDims = 3\nDimSize = 4 5 6\nElementType = MET_SHORT\nCompressedData = True\nElementDataFile = LOCAL\n' + 'garbage'.repeat(20));
    await rejectsIO(readImage(mha), mha, /cannot read image: Uncompress failed/);
    // While a call is in flight only itk-wasm's own printing is captured; other logging passes.
    const fakeItk = new Function('m', 'console.log(m);\n//# sourceURL=/x/node_modules/itk-wasm/dist/fake.js') as (m: string) => void;
    const r = await quietly(async () => {
      console.log('progress line from elsewhere');
      fakeItk('ITK says hi');
      return 7;
    });
    assert.deepEqual([r.value, r.output], [7, 'ITK says hi']);
  } finally {
    console.log = saved.log;
    console.error = saved.error;
    fs.rmSync(dir, { recursive: true, force: true });
  }
  assert.deepEqual(printed, ['progress line from elsewhere']);
});

test('a grid of another size on the same lattice is named as a size mismatch, not as a reindexing case', () => {
  const a = syntheticVolume('int16');
  const taller = { ...a, size: [7, 6, 4] as [number, number, number], data: new Int16Array(7 * 6 * 4) };
  assert.throws(() => assertSameGeometry(a, taller, ['pred.nii.gz', 'gt.nii.gz']), (e: unknown) =>
    e instanceof GeometryError && /size 7x5x4 vs 7x6x4; spacing, direction and voxel lattice agree, only the extent differs/.test(e.message) &&
    !/alignToGrid|same voxel centres/.test(e.message));
  // One voxel further along the first axis, and one voxel longer: the shift is named too.
  const step = [0, 1, 2].map((r) => a.direction[r * 3]! * a.spacing[0]) as [number, number, number];
  const shifted = { ...taller, size: [8, 5, 4] as [number, number, number], origin: a.origin.map((o, r) => o - step[r]!) as [number, number, number] };
  assert.throws(() => assertSameGeometry(a, shifted, ['pred.nii.gz', 'gt.nii.gz']), (e: unknown) =>
    e instanceof GeometryError && /only the extent differs \(7x5x4 vs 8x5x4 voxels, and voxel \(0,0,0\) of the first is voxel \(1,0,0\) of the second\)/.test(e.message));
});
