/**
 * DICOM-SEG output (issue 17): written from a label map with a reference to its source series,
 * validated by dciodvfy (Debian dicom3tools), read back by misfm and by itk-wasm (dcmqi), and
 * overlaid in world coordinates on a tilted series that misfm resampled.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { readImage } from '../../src/io/image/index.js';
import { readSegmentationWithItk } from '../../src/io/image/itk.js';
import { voxelToWorld, type Vec3, type Volume } from '../../src/io/volume.js';
import { resampleToReference } from '../../src/transforms/resample.js';
import { readDicomSource, writeDicomSeg, readDicomSeg, rgbToDicomLab, dicomLabToRgb, parseDataset, getItems, getNumbers, tag } from '../../src/io/dicom/index.js';
import { DicomError } from '../../src/io/image/errors.js';
import { tempDir } from './image-helpers.js';
import { writeSynthSeries, type SynthSeries } from './dicom-synth.js';

const hasDciodvfy = spawnSync('dciodvfy', ['-'], { stdio: 'ignore' }).error === undefined;
const SKIP_DCIODVFY = hasDciodvfy ? false : "dciodvfy not installed (Debian package dicom3tools; scripts/setup.sh --with-python-torch installs it)";

/** dciodvfy's verdict: its error lines (it prints "Error - ..." for IOD violations). */
function dciodvfyErrors(file: string): { errors: string[]; output: string } {
  const r = spawnSync('dciodvfy', ['-new', file], { encoding: 'utf8' });
  const output = `${r.stdout}${r.stderr}`;
  return { errors: output.split('\n').filter((l) => /^Error/.test(l)), output };
}

const ball = (c: Vec3, r: number) => (w: Vec3): boolean => Math.hypot(w[0] - c[0], w[1] - c[1], w[2] - c[2]) < r;

function axialSeries(): SynthSeries {
  return {
    rows: 18, cols: 16, spacing: [1.5, 1.25], row: [1, 0, 0], col: [0, 1, 0],
    positions: Array.from({ length: 10 }, (_, s) => [-12, -10, -30 + 3 * s] as Vec3), value: (w) => 40 + w[0] + 2 * w[1],
  };
}

/** Two organs: a ball (liver) and a slab of the upper-right corner (unknown name -> palette colour, generic code). */
function labelsOn(vol: Volume): Uint8Array {
  const lab = new Uint8Array(vol.data.length);
  const [nx, ny] = vol.size;
  const inBall = ball([-3, -2, -18], 6);
  for (let i = 0; i < lab.length; i++) {
    const w = voxelToWorld(vol, [i % nx, Math.floor(i / nx) % ny, Math.floor(i / (nx * ny))]);
    if (inBall(w)) lab[i] = 5;
    else if (w[0] > 4 && w[1] > 3 && w[2] < -12) lab[i] = 9;
  }
  return lab;
}

test('DICOM-SEG of a CT series: dciodvfy finds no error, misfm and itk-wasm read it back voxel for voxel', async () => {
  const dir = tempDir('dcmseg');
  try {
    const s = axialSeries();
    const { sopUids } = writeSynthSeries(path.join(dir, 'ct'), s);
    const ct = await readImage(path.join(dir, 'ct'));
    const lab = labelsOn(ct);
    const source = await readDicomSource(path.join(dir, 'ct'));
    assert.deepEqual(source.instances.map((x) => x.sopInstanceUid), sopUids, 'instances in slice order');
    const file = path.join(dir, 'seg.dcm');
    await writeDicomSeg(file, { ...ct, data: lab }, [{ value: 5, label: 'liver' }, { value: 9, label: 'corner thing', color: [10, 200, 30] }], source);
    await assert.rejects(writeDicomSeg(path.join(dir, 'bad.dcm'), { ...ct, data: lab }, [{ value: 0, label: 'background' }], source), /distinct and non-zero/);
    assert.ok(!fs.existsSync(path.join(dir, 'bad.dcm')));

    // misfm's reader: the SEG's grid is the CT's (the first and last slices hold labels).
    const back = await readDicomSeg(file);
    assert.equal(back.referencedSeriesUid, source.seriesInstanceUid);
    assert.deepEqual(back.referencedInstances, sopUids);
    assert.equal(back.studyInstanceUid, source.studyInstanceUid);
    assert.equal(back.frameOfReferenceUid, source.frameOfReferenceUid);
    assert.deepEqual(back.segments.map((x) => [x.number, x.label, x.type]), [[1, 'liver', 'Liver'], [2, 'corner thing', 'Tissue']]);
    assert.deepEqual(back.segments[1]!.color, [10, 200, 30], 'colour survives the CIELab round trip');
    const onCt = resampleToReference(back.labels, ct, { interpolation: 'nearest', outside: 0 });
    let diff = 0, n5 = 0;
    for (let i = 0; i < lab.length; i++) {
      const want = lab[i] === 5 ? 1 : lab[i] === 9 ? 2 : 0;
      if (onCt.data[i] !== want) diff++;
      if (want === 1) n5++;
    }
    assert.ok(n5 > 100);
    assert.equal(diff, 0, 'segment numbers on the CT grid');
    // Only frames that hold a segment are stored.
    const ds = parseDataset(fs.readFileSync(file)).dataset;
    const frames = getItems(ds, tag(0x5200, 0x9230)).length;
    const slicesWith = (v: number): number => { let c = 0; for (let k = 0; k < ct.size[2]; k++) { const p = ct.size[0] * ct.size[1]; if (lab.subarray(k * p, (k + 1) * p).includes(v)) c++; } return c; };
    assert.equal(frames, slicesWith(5) + slicesWith(9));
    assert.equal(getNumbers(ds, tag(0x0028, 0x0008))[0], frames);

    // An independent reader: itk-wasm's (dcmqi).
    const itk = await readSegmentationWithItk(file);
    const itkOnCt = resampleToReference(itk.labels, ct, { interpolation: 'nearest', outside: 0 });
    let itkDiff = 0;
    for (let i = 0; i < lab.length; i++) if (itkOnCt.data[i] !== (lab[i] === 5 ? 1 : lab[i] === 9 ? 2 : 0)) itkDiff++;
    assert.equal(itkDiff, 0, `itk-wasm's label image on the CT grid (size ${itk.labels.size}, origin ${itk.labels.origin})`);
    assert.match(JSON.stringify(itk.meta), /liver/);

    await assert.rejects(readDicomSeg(sopUidFile(dir)), (e: unknown) => e instanceof DicomError && /not a DICOM Segmentation/.test(e.message));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

function sopUidFile(dir: string): string {
  return path.join(dir, 'ct', fs.readdirSync(path.join(dir, 'ct'))[0]!);
}

test('dciodvfy (dicom3tools) reports no errors for misfm\'s DICOM-SEG', { skip: SKIP_DCIODVFY }, async () => {
  const dir = tempDir('dcmsegv');
  try {
    const s = axialSeries();
    writeSynthSeries(path.join(dir, 'ct'), s);
    const ct = await readImage(path.join(dir, 'ct'));
    const file = path.join(dir, 'seg.dcm');
    await writeDicomSeg(file, { ...ct, data: labelsOn(ct) }, [{ value: 5, label: 'liver' }, { value: 9, label: 'corner thing' }], await readDicomSource(path.join(dir, 'ct')));
    const r = dciodvfyErrors(file);
    assert.deepEqual(r.errors, [], r.output);
    assert.match(r.output, /Segmentation/, 'dciodvfy recognised the IOD');
    // An empty prediction still gives a valid object (one empty frame).
    const empty = path.join(dir, 'empty.dcm');
    await writeDicomSeg(empty, { ...ct, data: new Uint8Array(ct.data.length) }, [{ value: 1, label: 'spleen' }], await readDicomSource(path.join(dir, 'ct')));
    const e = dciodvfyErrors(empty);
    assert.deepEqual(e.errors, [], e.output);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a SEG made on a resampled tilted series overlays in world coordinates', async () => {
  const dir = tempDir('dcmsegtilt');
  try {
    const tilt = 12 * Math.PI / 180;
    const center: Vec3 = [0, 1, 2];
    const inBall = ball(center, 4.5);
    const s: SynthSeries = {
      rows: 20, cols: 20, spacing: [1, 1], row: [1, 0, 0], col: [0, Math.cos(tilt), Math.sin(tilt)],
      positions: Array.from({ length: 12 }, (_, k) => [-10, -9, -12 + 2 * k] as Vec3), value: (w) => (inBall(w) ? 500 : 0),
    };
    writeSynthSeries(path.join(dir, 'ct'), s);
    const ct = await readImage(path.join(dir, 'ct'), { onWarning: () => {} });
    // "Prediction": threshold of the resampled image.
    const lab = new Uint8Array(ct.data.length);
    for (let i = 0; i < lab.length; i++) lab[i] = ct.data[i]! > 250 ? 1 : 0;
    const file = path.join(dir, 'seg.dcm');
    await writeDicomSeg(file, { ...ct, data: lab }, [{ value: 1, label: 'liver' }], await readDicomSource(path.join(dir, 'ct')));
    const back = await readDicomSeg(file);
    // Centroid of the segment in world coordinates is the ball's centre.
    const acc = [0, 0, 0];
    let n = 0;
    const [nx, ny] = back.labels.size;
    back.labels.data.forEach((v, i) => {
      if (v !== 1) return;
      const w = voxelToWorld(back.labels, [i % nx, Math.floor(i / nx) % ny, Math.floor(i / (nx * ny))]);
      for (let a = 0; a < 3; a++) acc[a]! += w[a]!;
      n++;
    });
    const c = acc.map((x) => x / n);
    assert.ok(n > 100 && Math.hypot(c[0]! - center[0], c[1]! - center[1], c[2]! - center[2]) < 0.4, `segment centroid ${c} vs ${center} (${n} voxels)`);
    // Voxel for voxel on the read grid.
    const onCt = resampleToReference(back.labels, ct, { interpolation: 'nearest', outside: 0 });
    let diff = 0;
    for (let i = 0; i < lab.length; i++) if (onCt.data[i] !== lab[i]) diff++;
    assert.equal(diff, 0);
    if (hasDciodvfy) { const r = dciodvfyErrors(file); assert.deepEqual(r.errors, [], r.output); }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('CIELab colour conversion: known values and round trips', () => {
  assert.deepEqual(rgbToDicomLab([255, 255, 255]), [65535, 32896, 32896]);
  assert.deepEqual(rgbToDicomLab([0, 0, 0]), [0, 32896, 32896]);
  for (const c of [[221, 130, 101], [0, 151, 206], [10, 200, 30], [255, 0, 0]] as Array<[number, number, number]>) {
    assert.deepEqual(dicomLabToRgb(rgbToDicomLab(c)), c);
  }
});
