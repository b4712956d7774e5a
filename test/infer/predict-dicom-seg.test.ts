/**
 * `misfm predict` on a DICOM series writes a DICOM Segmentation by default (NIfTI on request),
 * the two agree voxel for voxel; NIfTI input keeps NIfTI output; --strict-geometry refuses a
 * tilted series that is otherwise resampled.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { runPredict } from '../../src/cli/commands/predict.js';
import { readImage } from '../../src/io/image/index.js';
import { readDicomSeg } from '../../src/io/dicom/index.js';
import { resampleToReference } from '../../src/transforms/resample.js';
import type { Vec3 } from '../../src/io/volume.js';
import { writeSynthSeries } from '../io/dicom-synth.js';
import { tempDir, writeTinyCheckpoint, writeVolume } from './helpers.js';

async function run(argv: string[]): Promise<{ out: string; err: string; code: number }> {
  let out = '', err = '';
  const code = await runPredict(argv, { out: (t) => { out += t; }, err: { write: (t: string) => { err += t; return true; } } });
  return { out, err, code };
}

test('predict on a DICOM series: DICOM-SEG by default, equal to the NIfTI output; NIfTI input stays NIfTI', async () => {
  const dir = tempDir('predict-seg');
  try {
    const ckpt = path.join(dir, 'model.pt');
    writeTinyCheckpoint(ckpt);
    const tilt = 10 * Math.PI / 180;
    const ct = path.join(dir, 'ct');
    writeSynthSeries(ct, {
      rows: 20, cols: 18, spacing: [1, 1], row: [1, 0, 0], col: [0, Math.cos(tilt), Math.sin(tilt)],
      positions: Array.from({ length: 10 }, (_, k) => [-9, -10, -8 + 2 * k] as Vec3), value: (w) => 30 * w[0] - 20 * w[1] + 10 * w[2],
    });
    const out = path.join(dir, 'out');
    const r = await run(['--model', ckpt, '--input', ct, '--output', out, '--threads', '1']);
    assert.equal(r.code, 0, r.out + r.err);
    assert.deepEqual(fs.readdirSync(out).filter((n) => !n.endsWith('.jsonl')).sort(), ['ct.json', 'ct.seg.dcm']);
    const seg = await readDicomSeg(path.join(out, 'ct.seg.dcm'));
    assert.deepEqual(seg.segments.map((s) => s.label), ['class_1', 'class_2']);
    const nii = path.join(dir, 'nii');
    const r2 = await run(['--model', ckpt, '--input', ct, '--output', nii, '--format', 'nii.gz', '--threads', '1']);
    assert.equal(r2.code, 0, r2.err);
    const lab = await readImage(path.join(nii, 'ct.nii.gz'));
    const image = await readImage(ct, { onWarning: () => {} });
    assert.deepEqual(lab.size, image.size, 'NIfTI labels on the resampled (regular) grid of the series');
    const segOnGrid = resampleToReference(seg.labels, lab, { interpolation: 'nearest', outside: 0 });
    let diff = 0, fg = 0;
    for (let i = 0; i < lab.data.length; i++) { if (segOnGrid.data[i] !== lab.data[i]) diff++; if (lab.data[i] !== 0) fg++; }
    assert.ok(fg > 0, 'the tiny model labels something');
    assert.equal(diff, 0, 'DICOM-SEG and NIfTI outputs agree voxel for voxel');
    if (spawnSync('dciodvfy', ['-'], { stdio: 'ignore' }).error === undefined) {
      const v = spawnSync('dciodvfy', ['-new', path.join(out, 'ct.seg.dcm')], { encoding: 'utf8' });
      const errors = `${v.stdout}${v.stderr}`.split('\n').filter((l) => /^Error/.test(l));
      assert.deepEqual(errors, [], `${v.stdout}${v.stderr}`);
    }
    // Strict geometry refuses the tilted series.
    const strict = await run(['--model', ckpt, '--input', ct, '--output', path.join(dir, 'strict'), '--strict-geometry']);
    assert.equal(strict.code, 1);
    assert.match(strict.err, /FAILED: .*not stacked along the slice normal.*strict geometry/);
    // NIfTI input: NIfTI by default; DICOM-SEG asked for is refused with the reason.
    const img = path.join(dir, 'a.nii.gz');
    await writeVolume(img, [16, 16, 16], (i, j, k) => i + j - k);
    const ra = await run(['--model', ckpt, '--input', img, '--output', path.join(dir, 'a-out')]);
    assert.equal(ra.code, 0, ra.err);
    assert.ok(fs.existsSync(path.join(dir, 'a-out', 'a.nii.gz')));
    const rb = await run(['--model', ckpt, '--input', img, '--output', path.join(dir, 'b-out'), '--format', 'dicom-seg']);
    assert.equal(rb.code, 1);
    assert.match(rb.err, /DICOM-SEG output needs a DICOM series as input/);
    await assert.rejects(run(['--model', ckpt, '--input', img, '--output', dir, '--format', 'dicom']), /--format must be .* or dicom-seg/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
