/**
 * predictCase and loadModelForInference: output geometry equals the input's for oblique, flipped
 * inputs and through reorient + body crop + resample; misfm checkpoints round-trip; foreign
 * checkpoints need an explicit config; errors name the file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readImage, gridDifferences } from '../../src/io/image/index.js';
import { voxelToWorld, type Vec3, type Volume } from '../../src/io/volume.js';
import { CheckpointError, ImageIOError, MisfmError, ShapeError } from '../../src/util/errors.js';
import { native } from '../../src/engine/native.js';
import { loadModelForInference } from '../../src/infer/model.js';
import { predictCase, probabilityChannels, windowFor } from '../../src/infer/predict.js';
import { modelPredictor, slidingWindowSegment } from '../../src/infer/sliding-window.js';
import { normalizeMeanStd } from '../../src/transforms/intensity.js';
import { volumeToBatch } from '../../src/transforms/volume-tensor.js';
import { presetConfig } from '../../src/config/defaults.js';
import { dataDir, fixturesDir } from '../helpers.js';
import { OBLIQUE_FLIPPED } from '../io/image-helpers.js';
import { tempDir, thresholdBundle, writeTinyCheckpoint, writeVolume } from './helpers.js';

const TIGHT = { spacing: 1e-6, origin: 1e-4, direction: 1e-6 };

function assertSameGeometry(a: Volume, b: Volume, what: string): void {
  assert.deepEqual(gridDifferences(a, b, TIGHT), [], what);
  assert.deepEqual(a.size, b.size);
}

test('oblique, flipped input: labels overlay the input exactly (reoriented internally, windows smaller and larger than the image)', async () => {
  const dir = tempDir('predict-geom');
  try {
    const input = path.join(dir, 'oblique.nii.gz');
    const hu = (i: number, j: number, k: number): number => ((i - 10) ** 2 + (j - 7) ** 2 + ((k - 6) * 2) ** 2 < 30 || (i === 1 && j === 2) ? 200 : -800);
    await writeVolume(input, [21, 18, 13], hu, { spacing: [0.9, 1.3, 2.5], origin: [-40.5, 12.25, 100.1], direction: OBLIQUE_FLIPPED });
    const src = await readImage(input);
    for (const window of [[8, 8, 8], [16, 32, 32]] as [number, number, number][]) {
      const out = path.join(dir, `labels-${window[1]}.nii.gz`);
      const r = await predictCase(thresholdBundle({ reorient: 'LPS' }, window), input, out);
      const lab = await readImage(out);
      assertSameGeometry(lab, src, `window ${window.join('x')}`);
      assert.ok(lab.data instanceof Uint8Array);
      for (let t = 0; t < src.data.length; t++) assert.equal(lab.data[t], src.data[t]! > 0 ? 1 : 0, `voxel ${t}`);
      assert.deepEqual(r.labelsFound, [0, 1]);
      const side = JSON.parse(fs.readFileSync(path.join(dir, `labels-${window[1]}.json`), 'utf8')) as Record<string, unknown>;
      assert.deepEqual(side['classes'], { 0: 'background', 1: 'bright' });
      assert.deepEqual((side['geometry'] as { size: number[] }).size, [21, 18, 13]);
      assert.equal((side['preprocess'] as { reorient: string }).reorient, 'LPS');
      assert.ok(typeof (side['timingsMs'] as { total: number }).total === 'number');
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('reorient + body crop + resample to 2 mm: same grid as the input, the structure stays where it is in the world', async () => {
  const dir = tempDir('predict-pipe');
  try {
    const input = path.join(dir, 'ct.nii.gz');
    const spacing: Vec3 = [0.8, 0.8, 1.5];
    const geom = { spacing, origin: [10, -20, 30] as Vec3, direction: [-1, 0, 0, 0, -1, 0, 0, 0, 1] as Volume['direction'] };
    const centre: Vec3 = [26, 30, 13];
    const inSphere = (i: number, j: number, k: number): boolean =>
      ((i - centre[0]) * spacing[0]) ** 2 + ((j - centre[1]) * spacing[1]) ** 2 + ((k - centre[2]) * spacing[2]) ** 2 < 8 * 8;
    // Body: an elliptic cylinder of soft tissue in air; the sphere (400 HU) sits inside it.
    const hu = (i: number, j: number, k: number): number =>
      inSphere(i, j, k) ? 400 : ((i - 30) / 22) ** 2 + ((j - 28) / 18) ** 2 < 1 ? 20 : -1000;
    await writeVolume(input, [64, 56, 26], hu, geom);
    const src = await readImage(input);
    const out = path.join(dir, 'seg.nii.gz');
    const bundle = thresholdBundle({ reorient: 'LPS', bodyCrop: true, spacing: [2, 2, 2], intensity: { kind: 'ct-window', window: [100, 500] } }, [8, 8, 8]);
    await predictCase(bundle, input, out, { keepLargest: 'union' });
    const lab = await readImage(out);
    assertSameGeometry(lab, src, 'cropped + resampled pipeline');
    let n = 0, inter = 0, truth = 0;
    let cx = 0, cy = 0, cz = 0;
    let t = 0;
    for (let k = 0; k < 26; k++) for (let j = 0; j < 56; j++) for (let i = 0; i < 64; i++, t++) {
      const s = inSphere(i, j, k);
      if (s) truth++;
      if (lab.data[t] !== 1) continue;
      n++; if (s) inter++;
      cx += i; cy += j; cz += k;
    }
    const dice = (2 * inter) / (n + truth);
    assert.ok(dice > 0.85, `Dice ${dice}`);
    const got = voxelToWorld(src, [cx / n, cy / n, cz / n]);
    const want = voxelToWorld(src, centre);
    const dist = Math.hypot(got[0] - want[0], got[1] - want[1], got[2] - want[2]);
    assert.ok(dist < 1.0, `centre moved by ${dist} mm`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('misfm checkpoint: model, intensity and window come from the stored config; output equals the sliding window run by hand', async () => {
  const dir = tempDir('predict-ckpt');
  try {
    const ckpt = path.join(dir, 'tiny.pt');
    writeTinyCheckpoint(ckpt, { classNames: ['background', 'liver', 'spleen'] });
    const bundle = await loadModelForInference(ckpt);
    assert.equal(bundle.modelConfig.name, 'unet3d');
    assert.equal(bundle.provenance.kind, 'misfm');
    assert.equal(bundle.provenance.iteration, 7);
    assert.match(bundle.provenance.configHash, /^[0-9a-f]{16}$/);
    assert.deepEqual(bundle.preprocess.intensity, { kind: 'zscore' });
    assert.equal(bundle.preprocess.reorient, 'LPS');
    assert.match(bundle.provenance.preprocessSource, /defaults/);
    assert.deepEqual(bundle.classNames, ['background', 'liver', 'spleen']);
    assert.deepEqual(windowFor(bundle), [16, 16, 16]);
    const input = path.join(dir, 'img.nrrd');
    await writeVolume(input, [22, 19, 11], (i, j, k) => Math.round(100 * Math.sin(i / 3) * Math.cos(j / 4) + 10 * k), { spacing: [1.2, 1.2, 3] });
    const out = path.join(dir, 'out', 'img.nii.gz');
    const r = await predictCase(bundle, input, out, { probabilities: [1, 2], probabilityFormat: 'uint8' });
    const lab = await readImage(out);
    // By hand: zscore over the volume, slab sliding window with the recorded settings.
    const src = await readImage(input);
    const x = volumeToBatch(normalizeMeanStd(src));
    const seg = slidingWindowSegment(modelPredictor(bundle.model), x, { window: [16, 16, 16], overlap: 0.5, batchSize: 2, duplicates: 'weighted' });
    x.dispose();
    assert.deepEqual(Array.from(lab.data), Array.from(seg.labels));
    assert.equal(r.probabilityFiles.length, 2);
    const p1 = await readImage(r.probabilityFiles[0]!);
    assert.ok(p1.data instanceof Uint8Array);
    assertSameGeometry(p1, src, 'probability map');
    assert.equal(path.basename(r.probabilityFiles[1]!), 'img_prob2.nii.gz');
    const side = JSON.parse(fs.readFileSync(path.join(dir, 'out', 'img.json'), 'utf8')) as { classes: Record<string, string>; model: { configHash: string; kind: string }; inference: { windowsComputed: number; referenceWindows: number } };
    assert.deepEqual(side.classes, { 0: 'background', 1: 'liver', 2: 'spleen' });
    assert.equal(side.model.configHash, bundle.provenance.configHash);
    assert.equal(side.inference.windowsComputed, seg.windowsComputed);
    assert.ok(side.inference.referenceWindows >= side.inference.windowsComputed);
    bundle.model.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('probability maps are chosen and named by label value or class name, not by network channel', async () => {
  const dir = tempDir('predict-probvalues');
  try {
    // Trained with data.labels: channel 1 is written as value 5 (liver), channel 2 as 7 (spleen).
    const ckpt = path.join(dir, 'tiny.pt');
    const base = presetConfig('small-finetune').data as unknown as Record<string, unknown>;
    writeTinyCheckpoint(ckpt, { data: { ...base, labels: { values: [5, 7], names: ['liver', 'spleen'] } } });
    const bundle = await loadModelForInference(ckpt);
    assert.deepEqual(bundle.labelValues, [0, 5, 7]);
    assert.deepEqual(probabilityChannels(bundle, [7]), [2]);
    assert.deepEqual(probabilityChannels(bundle, ['spleen', '5']), [1, 2]);
    assert.deepEqual(probabilityChannels(bundle, 'all'), [1, 2]);
    // Channel numbers that are not label values are refused, naming what exists.
    assert.throws(() => probabilityChannels(bundle, [2]), (e: unknown) => e instanceof MisfmError && /'2'/.test(e.message) && /5 \(liver\), 7 \(spleen\)/.test(e.message));
    assert.throws(() => probabilityChannels(bundle, ['kidney']), /'kidney' is not one of the model's classes/);
    const input = path.join(dir, 'img.nrrd');
    await writeVolume(input, [18, 17, 9], (i, j, k) => Math.round(100 * Math.sin(i / 3) + 7 * j - 5 * k));
    const out = path.join(dir, 'img.nii.gz');
    const r = await predictCase(bundle, input, out, { probabilities: ['spleen'] });
    assert.deepEqual(r.probabilityFiles.map((f) => path.basename(f)), ['img_prob7.nii.gz']);
    const both = await predictCase(bundle, input, path.join(dir, 'all.nii.gz'), { probabilities: 'all' });
    const [p5, p7] = await Promise.all(both.probabilityFiles.map((f) => readImage(f)));
    assert.deepEqual(both.probabilityFiles.map((f) => path.basename(f)), ['all_prob5.nii.gz', 'all_prob7.nii.gz']);
    // The spleen map written alone equals the spleen map of the 'all' run, not the liver map.
    const alone = await readImage(r.probabilityFiles[0]!);
    assert.deepEqual(Array.from(alone.data), Array.from(p7!.data));
    assert.notDeepEqual(Array.from(alone.data), Array.from(p5!.data));
    const side = JSON.parse(fs.readFileSync(path.join(dir, 'all.json'), 'utf8')) as { classes: Record<string, string>; probabilities: { files: Record<string, string> } };
    assert.deepEqual(side.classes, { 0: 'background', 5: 'liver', 7: 'spleen' });
    assert.deepEqual(side.probabilities.files, { 5: 'all_prob5.nii.gz', 7: 'all_prob7.nii.gz' });
    bundle.model.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('official PyMIC .pt: needs an explicit model config and intensity, then loads', async () => {
  const pt = path.join(fixturesDir, 'pctnet_small', 'checkpoint_pymic.pt');
  await assert.rejects(loadModelForInference(pt), (e: unknown) => e instanceof CheckpointError && e.message.includes(pt) && /records no model config/.test(e.message) && /pctnet/.test(e.message));
  const modelConfig = { name: 'pctnet' as const, inChannels: 1, classNum: 5, inputSize: [32, 64, 64], featureChns: [8, 16, 32, 64, 128], resolutionMode: 1 as const, multiscalePred: true };
  await assert.rejects(loadModelForInference(pt, { modelConfig }), /intensity/);
  await assert.rejects(loadModelForInference(pt, { modelConfig: { ...modelConfig, classNum: 2 }, preprocess: { intensity: { kind: 'zscore' } } }),
    (e: unknown) => e instanceof CheckpointError && /another shape/.test(e.message));
  const b = await loadModelForInference(pt, { modelConfig, preprocess: { intensity: { kind: 'ct-window', window: [-1000, 1000] } } });
  assert.equal(b.provenance.kind, 'pytorch');
  assert.equal(b.model.classNum, 5);
  assert.equal(b.model.multiscalePred, false);
  assert.equal(b.preprocess.reorient, false);
  assert.deepEqual(windowFor(b), [32, 64, 64]);
  assert.throws(() => windowFor(b, [16, 64, 64]), (e: unknown) => e instanceof ShapeError && /must equal the network input size \[32,64,64\]/.test(e.message));
  b.model.dispose();
});

test('a DICOM series folder: labels on the grid of the series', async () => {
  const dir = tempDir('predict-dicom');
  try {
    const dicom = path.join(dataDir, '05_dcmqi_ct_3slice', 'dicom');
    const out = path.join(dir, 'dicom.nii.gz');
    await predictCase(thresholdBundle({ reorient: 'LPS' }, [4, 64, 64]), dicom, out, { stride: [4, 64, 64] });
    const [src, lab] = await Promise.all([readImage(dicom), readImage(out)]);
    assertSameGeometry(lab, src, 'DICOM');
    for (let t = 0; t < src.data.length; t += 101) assert.equal(lab.data[t], src.data[t]! > 0 ? 1 : 0);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('errors name the file: missing input, bad output name, missing checkpoint, unavailable device', async () => {
  const dir = tempDir('predict-err');
  try {
    const bundle = thresholdBundle({});
    const missing = path.join(dir, 'nope.nii.gz');
    await assert.rejects(predictCase(bundle, missing, path.join(dir, 'o.nii.gz')), (e: unknown) => e instanceof ImageIOError && e.message.includes(missing));
    const input = path.join(dir, 'in.nii.gz');
    await writeVolume(input, [5, 5, 5], () => 0);
    await assert.rejects(predictCase(bundle, input, path.join(dir, 'o.txt')), (e: unknown) => e instanceof MisfmError && /image ending/.test(e.message));
    assert.ok(!fs.existsSync(path.join(dir, 'o.txt')));
    await assert.rejects(loadModelForInference(path.join(dir, 'none.pt')), (e: unknown) => e instanceof CheckpointError && /no such checkpoint/.test(e.message));
    const garbage = path.join(dir, 'garbage.pt');
    fs.writeFileSync(garbage, 'not a checkpoint at all');
    await assert.rejects(loadModelForInference(garbage), (e: unknown) => e instanceof MisfmError && e.message.includes(garbage));
    if (!native().info().cudaAvailable) {
      const ckpt = path.join(dir, 'tiny.pt');
      writeTinyCheckpoint(ckpt);
      await assert.rejects(loadModelForInference(ckpt, { device: 'cuda' }), (e: unknown) => e instanceof MisfmError && e.code === 'ENGINE' && /no CUDA/.test(e.message));
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
