import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { collectPairs, evaluateCommand, parseLabels, runEvaluate, volumeGrid } from '../../src/cli/commands/evaluate.js';
import { readImage, writeImage } from '../../src/io/image/index.js';
import type { Volume } from '../../src/io/volume.js';
import { binaryMetrics } from '../../src/metrics/binary.js';
import { evaluateCase, resolveSettings } from '../../src/metrics/evaluate.js';
import type { LabelArray } from '../../src/metrics/types.js';
import { MisfmError } from '../../src/util/errors.js';
import { sharedPath } from './helpers.js';

const LABELS_01 = sharedPath('data', '01_totalseg_abdomen_ct', 'labels_total_fast.nii.gz');
const LABELS_01_SM = sharedPath('data', '01_totalseg_abdomen_ct', 'ct_sm_labels_total.nii.gz');
const LIVER_SPINE = sharedPath('data', '05_dcmqi_ct_3slice', 'liver_spine_seg.nrrd');
const HEART = sharedPath('data', '05_dcmqi_ct_3slice', 'heart_seg.nrrd');

const tmp = mkdtempSync(path.join(os.tmpdir(), 'misfm-evalcli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Run the command with its output captured (not via process.stdout, which the test runner uses). */
async function runCli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [], err: string[] = [];
  const code = await runEvaluate(args, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join(''), err: err.join('') };
}

/** The label map moved by (dz,dy,dx) voxels, zero-filled, same grid. */
function shifted(v: Volume, dz: number, dy: number, dx: number): Volume {
  const [X, Y, Z] = v.size;
  const src = v.data, dst = new Uint8Array(src.length);
  for (let z = 0; z < Z; z++) for (let y = 0; y < Y; y++) for (let x = 0; x < X; x++) {
    const sz = z - dz, sy = y - dy, sx = x - dx;
    if (sz < 0 || sy < 0 || sx < 0 || sz >= Z || sy >= Y || sx >= X) continue;
    dst[(z * Y + y) * X + x] = src[(sz * Y + sy) * X + sx]!;
  }
  return { ...v, data: dst };
}

function binOf(a: LabelArray, values: number[]): Uint8Array {
  const m = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) m[i] = values.includes(a[i]!) ? 1 : 0;
  return m;
}

interface JsonReport {
  settings: { mode: string; surface: { empty: string; clip: boolean }; classes: { name: string; labels: number[] }[] };
  cases: { case: string; classes: Record<string, Record<string, number | null>> }[];
  summary: Record<string, Record<string, { mean: number | null; std: number | null; n: number }>>;
}

test('folders: pairs by file name, reports unmatched files, numbers equal the array-level metrics', async () => {
  const gt = await readImage(LABELS_01);
  const pred = shifted(gt, 1, 0, 2);
  const predDir = path.join(tmp, 'pred'), gtDir = path.join(tmp, 'gt');
  mkdirSync(predDir); mkdirSync(gtDir);
  await writeImage(path.join(predDir, 'case01.nii.gz'), pred);
  copyFileSync(path.join(predDir, 'case01.nii.gz'), path.join(predDir, 'only_pred.nii.gz'));
  copyFileSync(LABELS_01, path.join(gtDir, 'case01.nii.gz'));
  copyFileSync(LABELS_01, path.join(gtDir, 'only_gt.nii.gz'));
  const json = path.join(tmp, 'r.json'), csv = path.join(tmp, 'r.csv');

  const r = await runCli(['--pred', predDir, '--gt', gtDir, '--labels', '1,5,2+3', '--names', 'spleen,liver,kidneys',
    '--metrics', 'dice,assd,hd95,nsd,volume', '--nsd-tolerance', '3', '--json', json, '--csv', csv]);
  assert.equal(r.code, 0);
  assert.match(r.err, /no ground truth for 1 prediction.*only_pred\.nii\.gz/);
  assert.match(r.err, /no prediction for 1 ground truth.*only_gt\.nii\.gz/);
  assert.match(r.out, /kidneys/);

  const rep = JSON.parse(readFileSync(json, 'utf8')) as JsonReport;
  assert.deepEqual(rep.cases.map((c) => c.case), ['case01.nii.gz']);
  assert.equal(rep.settings.mode, 'reference');
  const { shape, spacing } = volumeGrid(gt);
  assert.deepEqual(spacing, [3, 3, 3]);
  const specs = [[1], [5], [2, 3]];
  ['spleen', 'liver', 'kidneys'].forEach((name, i) => {
    const want = binaryMetrics(binOf(pred.data, specs[i]!), binOf(gt.data, specs[i]!), shape, spacing,
      ['dice', 'assd', 'hd95', 'nsd', 'volume'], { nsdTolerance: 3 });
    const got = rep.cases[0]!.classes[name]!;
    for (const [m, v] of Object.entries(want)) assert.ok(Math.abs(got[m]! - v) <= 1e-12 * Math.abs(v), `${name} ${m}: ${got[m]} vs ${v}`);
  });
  // a shift of (1,0,2) voxels at 3 mm: overlap is partial, distances a few mm, volume is the GT's
  const liver = rep.cases[0]!.classes['liver']!;
  assert.ok(liver['dice']! > 0.8 && liver['dice']! < 0.99, `liver dice ${liver['dice']}`);
  assert.ok(liver['assd']! > 1 && liver['assd']! < 9, `liver assd ${liver['assd']}`);
  assert.equal(liver['volume'], 41692 * 27); // voxel count from shared/data/README.md
  assert.equal(rep.summary['average']!['dice']!.n, 1);

  const lines = readFileSync(csv, 'utf8').trimEnd().split('\n');
  assert.equal(lines[0], 'case,class,dice,assd,hd95,nsd,volume');
  assert.equal(lines.length, 1 + 4 + 4 + 4);
  assert.match(lines[2]!, /^case01\.nii\.gz,liver,/);
});

test('file pair: empty classes follow the mode (reference: 20 / 50, raw: NaN), default labels from GT', async () => {
  const pred = await readImage(HEART), gt = await readImage(LIVER_SPINE);
  const { shape, spacing } = volumeGrid(gt);
  const json = path.join(tmp, 'heart.json');

  let r = await runCli(['--pred', HEART, '--gt', LIVER_SPINE, '--metrics', 'dice,assd,hd95', '--json', json]);
  assert.equal(r.code, 0);
  let rep = JSON.parse(readFileSync(json, 'utf8')) as JsonReport;
  assert.deepEqual(rep.settings.classes.map((c) => c.labels), [[1], [2]]); // nonzero values of the GT
  const liver = rep.cases[0]!.classes['1']!;
  assert.equal(liver['assd'], 20);
  assert.equal(liver['hd95'], 50);
  assert.ok(liver['dice']! < 1e-9);

  r = await runCli(['--pred', HEART, '--gt', LIVER_SPINE, '--labels', '1,1+2+3', '--mode', 'raw', '--metrics', 'dice,assd,hd95', '--json', json]);
  assert.equal(r.code, 0);
  rep = JSON.parse(readFileSync(json, 'utf8')) as JsonReport;
  assert.equal(rep.settings.surface.clip, false);
  assert.equal(rep.cases[0]!.classes['1']!['assd'], null);
  assert.equal(rep.summary['1']!['assd']!.n, 0);
  // the merged class has surfaces on both sides: compare with the evaluator on the raw arrays
  const settings = resolveSettings({ labels: [[1, 2, 3]], metrics: ['dice', 'assd', 'hd95'], mode: 'raw' });
  const want = evaluateCase('x', pred.data, gt.data, shape, spacing, settings).classes[0]!;
  const got = rep.cases[0]!.classes['class_1_2_3']!;
  for (const m of ['dice', 'assd', 'hd95'] as const) assert.ok(Math.abs(got[m]! - want[m]) <= 1e-12 * Math.abs(want[m]), m);
  assert.ok(want.hd95 > 0);
});

test('mismatched geometry is an error naming both files', async () => {
  await assert.rejects(runCli(['--pred', LABELS_01_SM, '--gt', LABELS_01, '--labels', '1']),
    (e: unknown) => e instanceof MisfmError && e.code === 'GEOMETRY' && e.message.includes(LABELS_01_SM) && e.message.includes(LABELS_01) && /size/.test(e.message));
  const gt = await readImage(LABELS_01);
  const moved = path.join(tmp, 'moved.nii.gz');
  await writeImage(moved, { ...gt, origin: [gt.origin[0] + 1.5, gt.origin[1], gt.origin[2]] });
  await assert.rejects(runCli(['--pred', moved, '--gt', LABELS_01, '--labels', '1']),
    (e: unknown) => e instanceof MisfmError && e.code === 'GEOMETRY' && e.message.includes(moved) && /origin/.test(e.message));
});

test('argument and input errors', async () => {
  assert.equal(evaluateCommand.name, 'evaluate');
  assert.match(evaluateCommand.usage, /--nsd-tolerance/);
  const isErr = (code: string, re: RegExp) => (e: unknown): boolean => e instanceof MisfmError && e.code === code && re.test(e.message);
  await assert.rejects(runCli(['--pred', LIVER_SPINE]), isErr('ARGUMENT', /--pred and --gt are required/));
  await assert.rejects(runCli(['--pred', LIVER_SPINE, '--gt', LIVER_SPINE, '--labels', '1,x']), isErr('ARGUMENT', /cannot read 'x'/));
  await assert.rejects(runCli(['--pred', LIVER_SPINE, '--gt', LIVER_SPINE, '--mode', 'paper']), isErr('ARGUMENT', /--mode/));
  await assert.rejects(runCli(['--pred', LIVER_SPINE, '--gt', LIVER_SPINE, '--metrics', 'dice,hd100']), isErr('ARGUMENT', /unknown metric 'hd100'/));
  const missing = path.join(tmp, 'nope.nii.gz');
  await assert.rejects(runCli(['--pred', missing, '--gt', LIVER_SPINE]), isErr('DATA', /nope\.nii\.gz.*not found/));
  const empty = path.join(tmp, 'emptydir');
  mkdirSync(empty);
  assert.throws(() => collectPairs(empty, path.dirname(LIVER_SPINE)), isErr('DATA', /no prediction\/ground-truth pairs/));
  // a report into a missing folder fails before anything is left behind
  const bad = path.join(tmp, 'no-such-dir', 'r.csv');
  await assert.rejects(runCli(['--pred', LIVER_SPINE, '--gt', LIVER_SPINE, '--labels', '1', '--csv', bad]), isErr('ARGUMENT', /no-such-dir/));
  assert.equal(existsSync(bad), false);
  assert.deepEqual(parseLabels('1, 2+3 ,4'), [1, [2, 3], 4]);
});

test('ground truth stored in another voxel order of the same world grid is re-indexed exactly', async () => {
  const { reorient } = await import('../../src/transforms/orientation.js');
  const gt = await readImage(LABELS_01);
  const flipped = reorient(gt, 'PLI').volume; // every axis reversed or permuted: same voxels, other order
  assert.notDeepEqual(flipped.direction, gt.direction);
  const file = path.join(tmp, 'flipped.nii.gz');
  await writeImage(file, flipped);
  const r = await runCli(['--pred', LABELS_01, '--gt', file, '--labels', '1,5', '--metrics', 'dice,hd95']);
  assert.equal(r.code, 0);
  assert.match(r.out, /re-indexed onto the prediction's grid/);
  const json = path.join(tmp, 'flipped.json');
  await runCli(['--pred', LABELS_01, '--gt', file, '--labels', '1,5', '--json', json]);
  const rep = JSON.parse(readFileSync(json, 'utf8')) as { cases: { classes: Record<string, { dice: number; hd95: number }> }[] };
  for (const c of ['1', '5']) {
    assert.equal(rep.cases[0]!.classes[c]!.dice, 1, `class ${c}`);
    assert.equal(rep.cases[0]!.classes[c]!.hd95, 0, `class ${c}`);
  }
});
