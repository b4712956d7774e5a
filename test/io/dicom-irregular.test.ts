/**
 * Uneven and tilted DICOM series (issue 17): read by resampling onto a regular grid along the
 * slice normal, checked voxel by voxel against the known intensity field of synthetic series,
 * with a landmark whose world position must survive, and labels that must overlay in world
 * coordinates. --strict-geometry keeps the refusal.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readImage, listDicomSeries, writeImage, DicomError } from '../../src/io/image/index.js';
import { voxelToWorld, type Vec3, type Volume } from '../../src/io/volume.js';
import { resampleToReference } from '../../src/transforms/resample.js';
import { OBLIQUE, tempDir } from './image-helpers.js';
import { writeSynthSeries, type SynthSeries } from './dicom-synth.js';

const dot = (a: readonly number[], b: readonly number[]): number => a[0]! * b[0]! + a[1]! * b[1]! + a[2]! * b[2]!;
const sub = (a: readonly number[], b: readonly number[]): Vec3 => [a[0]! - b[0]!, a[1]! - b[1]!, a[2]! - b[2]!];
const cross = (a: Vec3, b: Vec3): Vec3 => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];

/** The landmark: a ball of +800 HU around LANDMARK on a linear ramp. */
const LANDMARK: Vec3 = [1, -2, 0.5];
const RADIUS = 4;
const ramp = (w: Vec3): number => 200 + 20 * w[0] - 15 * w[1] + 25 * w[2];
const field = (w: Vec3): number => ramp(w) + (Math.hypot(...sub(w, LANDMARK)) < RADIUS ? 800 : 0);

const TILT = 15 * Math.PI / 180;
/** A tilted-gantry series: columns tilted by 15°, table positions straight along z (as scanners store them). */
function tilted(): SynthSeries {
  return {
    rows: 20, cols: 24, spacing: [0.9, 1.1], row: [1, 0, 0], col: [0, Math.cos(TILT), Math.sin(TILT)],
    positions: Array.from({ length: 14 }, (_, s) => [-10, -12, -16 + 2.5 * s] as Vec3), value: field,
  };
}
/** Oblique, two reconstruction thicknesses: 8 slices 2 mm apart, then 5 slices 4 mm apart. */
function twoThickness(): SynthSeries {
  const row: Vec3 = [OBLIQUE[0], OBLIQUE[3], OBLIQUE[6]], col: Vec3 = [OBLIQUE[1], OBLIQUE[4], OBLIQUE[7]];
  const n = cross(row, col);
  const t = [0, 2, 4, 6, 8, 10, 12, 14, 18, 22, 26, 30];
  const p0: Vec3 = [-9, -11, -14];
  return { rows: 22, cols: 20, spacing: [1, 1], row, col, positions: t.map((d) => [0, 1, 2].map((a) => p0[a]! + d * n[a]!) as Vec3), value: field };
}

/**
 * Check every voxel of `vol` against the synthetic field. A voxel whose projections along the
 * normal onto its two bracketing source slices fall inside their field of view must hold the
 * field's value (±1: integer storage and output), except within reach of the ball's surface;
 * any other voxel must hold the fill value (the series' minimum).
 */
function checkVoxels(vol: Volume, s: SynthSeries, what: string): { checked: number; filled: number } {
  const n = cross(s.row, s.col);
  const z = s.positions.map((p) => dot(p, n));
  const gaps = z.slice(1).map((v, i) => v - z[i]!);
  const reach = Math.hypot(s.spacing[0], s.spacing[1], Math.max(...gaps)) + 0.01;
  let min = Infinity;
  for (const v of vol.data) min = Math.min(min, v);
  let checked = 0, filled = 0;
  const [nx, ny, nz] = vol.size;
  for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) {
    const w = voxelToWorld(vol, [i, j, k]);
    const zw = dot(w, n);
    const hits = z.map((zs, si) => ({ zs, si })).filter(({ zs }, si) => Math.abs(zs - zw) < 1e-6 ||
      (si < z.length - 1 && zs < zw && zw < z[si + 1]!) || (si > 0 && z[si - 1]! < zw && zw < zs));
    assert.ok(hits.length > 0, `${what}: voxel ${[i, j, k]} lies outside the stack`);
    const inside = hits.every(({ si }) => {
      const d = sub(w, s.positions[si]!);
      const u = dot(d, s.row) / s.spacing[0], v = dot(d, s.col) / s.spacing[1];
      return u > -1e-6 && v > -1e-6 && u < s.cols - 1 + 1e-6 && v < s.rows - 1 + 1e-6;
    });
    const got = vol.data[i + nx * (j + ny * k)]!;
    if (!inside) {
      assert.equal(got, min, `${what}: voxel ${[i, j, k]} is outside the slices' field of view but holds ${got}`);
      filled++;
      continue;
    }
    if (Math.abs(Math.hypot(...sub(w, LANDMARK)) - RADIUS) < reach) continue;
    const want = field(w);
    if (Math.abs(got - want) > 1 + 1e-9) assert.fail(`${what}: voxel ${[i, j, k]} at world ${w.map((x) => x.toFixed(3))} holds ${got}, the field there is ${want.toFixed(2)}`);
    checked++;
  }
  return { checked, filled };
}

/** Centroid (world) of the voxels lifted by the landmark ball. */
function landmarkCentroid(vol: Volume): { c: Vec3; count: number } {
  const acc = [0, 0, 0];
  let count = 0;
  const [nx, ny, nz] = vol.size;
  for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) {
    const w = voxelToWorld(vol, [i, j, k]);
    if (vol.data[i + nx * (j + ny * k)]! - ramp(w) > 400) { for (let a = 0; a < 3; a++) acc[a]! += w[a]!; count++; }
  }
  return { c: acc.map((x) => x / count) as Vec3, count };
}

test('a tilted-gantry series is resampled along the slice normal: geometry, every voxel, landmark, warning', async () => {
  const dir = tempDir('dcmtilt');
  try {
    const s = tilted();
    writeSynthSeries(dir, s);
    const [info] = await listDicomSeries(dir);
    assert.equal(info!.problem, undefined);
    assert.ok(info!.irregular !== undefined && !info!.irregular.unevenGaps, JSON.stringify(info!.irregular));
    assert.ok(Math.abs(info!.irregular!.tiltDegrees - 15) < 1e-3, `tilt ${info!.irregular!.tiltDegrees}`);
    const warnings: string[] = [];
    const vol = await readImage(dir, { onWarning: (m) => warnings.push(m) });
    const n = cross(s.row, s.col);
    // Regular grid: direction [row col normal], origin at the first slice, step = gap along the normal.
    assert.deepEqual(vol.size, [24, 20, 14]);
    const step = 2.5 * Math.cos(TILT);
    [0.9, 1.1, step].forEach((v, a) => assert.ok(Math.abs(vol.spacing[a]! - v) < 1e-6, `spacing ${vol.spacing}`));
    [...s.row, ...s.col, ...n].forEach((v, idx) => {
      const [axis, comp] = [Math.floor(idx / 3), idx % 3];
      assert.ok(Math.abs(vol.direction[comp * 3 + axis]! - v) < 1e-6, `direction ${vol.direction}`);
    });
    assert.deepEqual(vol.origin, s.positions[0]);
    assert.ok(vol.data instanceof Int16Array);
    const { checked, filled } = checkVoxels(vol, s, 'tilted');
    assert.ok(checked > 4000 && filled > 300, `checked ${checked}, filled ${filled}`);
    const lm = landmarkCentroid(vol);
    assert.ok(lm.count > 100 && Math.hypot(...sub(lm.c, LANDMARK)) < 0.35, `landmark at ${lm.c} (${lm.count} voxels), placed at ${LANDMARK}`);
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, /a gantry tilt of 15\.0°: resampled onto a regular grid along the slice normal, 14 slices every 2\.415 mm \(the smallest regular gap\), tilt removed by shearing/);
    assert.ok(warnings[0]!.includes(dir));
    // Strict geometry keeps the refusal, naming the problem.
    await assert.rejects(readImage(dir, { strictGeometry: true }), (e: unknown) =>
      e instanceof DicomError && e.message.includes(dir) && /not stacked along the slice normal \(gantry tilt/.test(e.message) && /strict geometry/.test(e.message));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a two-thickness oblique series is resampled at its smallest gap (or the asked one), every voxel checked', async () => {
  const dir = tempDir('dcmuneven');
  try {
    const s = twoThickness();
    writeSynthSeries(dir, s);
    const [info] = await listDicomSeries(dir);
    assert.ok(info!.irregular?.unevenGaps === true && info!.irregular.tiltDegrees === 0, JSON.stringify(info!.irregular));
    assert.ok(Math.abs(info!.irregular!.smallestGap - 2) < 1e-6);
    const warnings: string[] = [];
    const vol = await readImage(dir, { onWarning: (m) => warnings.push(m) });
    assert.deepEqual(vol.size, [20, 22, 16]);
    assert.ok(Math.abs(vol.spacing[2] - 2) < 1e-9);
    const r = checkVoxels(vol, s, 'two-thickness');
    assert.equal(r.filled, 0);
    assert.ok(r.checked > 5000, `checked ${r.checked}`);
    assert.match(warnings.join('\n'), /uneven slice gaps \(smallest 2 mm\): resampled onto a regular grid along the slice normal, 16 slices every 2 mm/);
    const lm = landmarkCentroid(vol);
    assert.ok(Math.hypot(...sub(lm.c, LANDMARK)) < 0.35, `landmark at ${lm.c}`);
    // An explicit slice step.
    const fine = await readImage(dir, { sliceSpacing: 0.75, onWarning: () => {} });
    assert.deepEqual(fine.size, [20, 22, 41]);
    checkVoxels(fine, s, 'two-thickness at 0.75 mm');
    await assert.rejects(readImage(dir, { strictGeometry: true }), (e: unknown) =>
      e instanceof DicomError && /inconsistent slice spacing: the usual gap is 2 mm but there are 4 other gaps/.test(e.message));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('labels drawn in world coordinates overlay the resampled tilted series', async () => {
  const dir = tempDir('dcmtiltlab');
  try {
    const s = tilted();
    writeSynthSeries(path.join(dir, 'ct'), s);
    const vol = await readImage(path.join(dir, 'ct'), { onWarning: () => {} });
    // The ball as a label map on an unrelated axial 0.5 mm grid, through a NIfTI file.
    const size: Vec3 = [40, 40, 40], origin: Vec3 = [LANDMARK[0] - 10, LANDMARK[1] - 10, LANDMARK[2] - 10];
    const lab = new Uint8Array(size[0] * size[1] * size[2]);
    const grid = { size, spacing: [0.5, 0.5, 0.5] as Vec3, origin, direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] as Volume['direction'] };
    for (let k = 0; k < 40; k++) for (let j = 0; j < 40; j++) for (let i = 0; i < 40; i++) {
      if (Math.hypot(...sub(voxelToWorld(grid, [i, j, k]), LANDMARK)) < RADIUS) lab[i + 40 * (j + 40 * k)] = 1;
    }
    await writeImage(path.join(dir, 'ball.nii.gz'), { data: lab, ...grid });
    const onCt = resampleToReference(await readImage(path.join(dir, 'ball.nii.gz')), vol, { interpolation: 'nearest', outside: 0 });
    // Away from the ball's surface (more than half a label voxel's diagonal), the label on the CT grid is
    // exactly the ball at each CT voxel's world position, and so is the CT's bright landmark (beyond
    // the interpolation reach): image and labels agree in world coordinates.
    const reach = Math.hypot(0.9, 1.1, 2.5 * Math.cos(TILT)) + 0.01;
    let inLabel = 0, compared = 0;
    const [nx, ny] = vol.size;
    for (let i = 0; i < vol.data.length; i++) {
      const w = voxelToWorld(vol, [i % nx, Math.floor(i / nx) % ny, Math.floor(i / (nx * ny))]);
      const d = Math.hypot(...sub(w, LANDMARK));
      if (Math.abs(d - RADIUS) < 0.45) continue;
      assert.equal(onCt.data[i], d < RADIUS ? 1 : 0, `label at CT voxel ${i} (world ${w.map((x) => x.toFixed(2))}, ${d.toFixed(2)} mm from the landmark)`);
      if (Math.abs(d - RADIUS) > reach) {
        assert.equal(vol.data[i]! - ramp(w) > 400, d < RADIUS, `CT landmark at voxel ${i}`);
        compared++;
      }
      if (d < RADIUS) inLabel++;
    }
    assert.ok(inLabel > 50 && compared > 3000, `${inLabel} labelled voxels, ${compared} compared with the image`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
