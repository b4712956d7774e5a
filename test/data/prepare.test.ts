import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { readImage } from '../../src/io/image/index.js';
import { reorient } from '../../src/transforms/orientation.js';
import { bodyBox } from '../../src/transforms/body-crop.js';
import { cropToBox } from '../../src/transforms/box.js';
import { resampleToSpacing } from '../../src/transforms/resample.js';
import { prepare, REPORT_NAME, LOG_NAME } from '../../src/data/prepare.js';
import { CacheVolume } from '../../src/data/reader.js';
import { readForeground } from '../../src/data/foreground.js';
import { JOURNAL_NAME, MANIFEST_NAME, loadManifest, saveManifest, type CaseRecord } from '../../src/data/manifest.js';
import { discoverCases } from '../../src/data/sources.js';
import { runPrepare } from '../../src/cli/commands/prepare.js';
import { writeNifti1 } from '../io/image-helpers.js';
import { assertSameValues, dataPath, tempDir } from './helpers.js';
import { repoRoot as REPO_ROOT } from '../helpers.js';

const CT_SM = dataPath('01_totalseg_abdomen_ct', 'ct_sm.nii.gz');
const CT_SM_LAB = dataPath('01_totalseg_abdomen_ct', 'ct_sm_labels_total.nii.gz');
const MR = dataPath('06_totalseg_abdomen_mr', 'mr.nii.gz');
const MR_LAB = dataPath('06_totalseg_abdomen_mr', 'labels_total_mr.nii.gz');
const DCM05 = dataPath('05_dcmqi_ct_3slice', 'dicom');

/** A folder of good and bad inputs, with labels for the two NIfTI volumes. */
function makeInputs(root: string): { inputs: string; labels: string } {
  const inputs = path.join(root, 'in'), labels = path.join(root, 'labels');
  for (const d of ['good', 'bad', 'dicom05']) fs.mkdirSync(path.join(inputs, d), { recursive: true });
  fs.mkdirSync(labels);
  fs.copyFileSync(CT_SM, path.join(inputs, 'good', 'ct_sm.nii.gz'));
  fs.copyFileSync(MR, path.join(inputs, 'good', 'mr.nii.gz'));
  fs.copyFileSync(CT_SM_LAB, path.join(labels, 'ct_sm.nii.gz'));
  fs.copyFileSync(MR_LAB, path.join(labels, 'mr.nii.gz'));
  for (const f of fs.readdirSync(DCM05)) fs.copyFileSync(path.join(DCM05, f), path.join(inputs, 'dicom05', f));
  const gz = fs.readFileSync(CT_SM);
  fs.writeFileSync(path.join(inputs, 'bad', 'truncated.nii.gz'), gz.subarray(0, gz.length >> 1));
  fs.writeFileSync(path.join(inputs, 'bad', 'text.nii.gz'), 'this is a text file pretending to be an image\n');
  writeNifti1(path.join(inputs, 'bad', 'flat2d.nii.gz'), [16, 16], 4, 16, new Uint8Array(16 * 16 * 2), true);
  fs.writeFileSync(path.join(inputs, 'README.txt'), 'not an image');
  return { inputs, labels };
}

const byId = (cases: CaseRecord[], id: string): CaseRecord => {
  const c = cases.find((r) => r.id === id);
  assert.ok(c !== undefined, `case ${id} in manifest (have ${cases.map((r) => r.id).join(', ')})`);
  return c;
};

test('prepare: good and corrupt inputs in worker threads; bad cases reported with reasons; resume skips, changes re-run', async () => {
  const root = tempDir('prep');
  try {
    const { inputs, labels } = makeInputs(root);
    const out = path.join(root, 'cache');
    const seen: string[] = [];
    const r1 = await prepare([inputs], out, { labels, workers: 2, progress: false, onCase: (r) => seen.push(r.id) });
    const rep = r1.report;
    assert.equal(rep.discovered, 6);
    assert.equal(rep.processed, 6);
    assert.equal(rep.ok, 3, JSON.stringify(rep.failures));
    assert.equal(rep.failed, 3);
    assert.equal(rep.ignoredFiles, 1, 'README.txt');
    assert.equal(rep.workers, 2);
    assert.deepEqual(seen.sort(), ['ct_sm', 'dicom05', 'flat2d', 'mr', 'text', 'truncated']);
    const reasons = Object.fromEntries(rep.failures.map((f) => [f.id, f.reason]));
    assert.match(reasons['truncated']!, /truncated/i);
    assert.match(reasons['text']!, /not gzip-compressed/);
    assert.match(reasons['flat2d']!, /2D image.*3D volume/);
    for (const f of rep.failures) assert.ok(f.reason.includes(f.source), `reason names the file: ${f.reason}`);

    // The manifest on disk is complete (journal folded in) and matches the returned one.
    assert.ok(!fs.existsSync(path.join(out, JOURNAL_NAME)));
    const m = loadManifest(out)!;
    assert.equal(m.cases.length, 6);
    const report = JSON.parse(fs.readFileSync(path.join(out, REPORT_NAME), 'utf8')) as { failures: unknown[] };
    assert.equal(report.failures.length, 3);
    const logLines = fs.readFileSync(path.join(out, LOG_NAME), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event: string });
    assert.deepEqual(logLines.map((l) => l.event), ['start', 'case', 'case', 'case', 'case', 'case', 'case', 'plan', 'end']);

    // ct_sm: CT in HU (int16), statistics from the README, label classes and counts, cached voxels exact.
    const ct = byId(m.cases, 'ct_sm');
    assert.equal(ct.status, 'ok');
    assert.equal(ct.modality, 'ct');
    assert.equal(ct.image!.dtype, 'int16');
    assert.deepEqual(ct.image!.shape, [30, 101, 122]);
    assert.equal(ct.stats!.min, -1100);
    assert.equal(ct.stats!.max, 1207);
    assert.ok(ct.stats!.p00_5 < -950 && ct.stats!.p99_5 > 150 && ct.stats!.p99_5 < 600, JSON.stringify(ct.stats));
    const classes = ct.label!.stats.classes;
    assert.equal(Object.keys(classes).length, 42);
    assert.equal(classes['1'], 9452);
    assert.equal(classes['5'], 38634);
    assert.equal(classes['13'], 1);
    assert.equal(classes['0'], 259435);
    assert.ok(Math.abs(ct.label!.stats.foregroundFraction - (122 * 101 * 30 - 259435) / (122 * 101 * 30)) < 1e-12);
    const want = reorient(await readImage(CT_SM), 'LPS').volume;
    const cv = CacheVolume.open(path.join(out, ct.image!.file));
    assertSameValues(cv.readAll(), want.data, 'cached ct_sm voxels');
    assert.deepEqual(cv.header.direction, want.direction);
    assert.deepEqual(cv.header.origin, want.origin);
    cv.close();
    const wantLab = reorient(await readImage(CT_SM_LAB), 'LPS').volume;
    const lv = CacheVolume.open(path.join(out, ct.label!.file));
    assertSameValues(lv.readAll(), wantLab.data, 'cached ct_sm labels');
    const fg = readForeground(path.join(out, ct.label!.foregroundFile!));
    assert.equal(fg.classes.length, 41);
    const labAll = lv.readAll();
    for (const c of fg.classes) {
      assert.equal(c.count, classes[String(c.value)]);
      assert.equal(c.indices.length, Math.min(c.count, Math.max(10000, Math.ceil(c.count * 0.01))));
      for (const i of c.indices) assert.equal(labAll[i], c.value);
    }
    lv.close();

    const mr = byId(m.cases, 'mr');
    assert.equal(mr.modality, 'other');
    assert.equal(mr.stats!.min, -47);
    assert.equal(mr.stats!.max, 833);
    assert.equal(Object.keys(mr.label!.stats.classes).length, 24);
    const dcm = byId(m.cases, 'dicom05');
    assert.equal(dcm.modality, 'ct');
    assert.deepEqual(dcm.image!.shape, [3, 512, 512]);
    assert.equal(dcm.stats!.min, -3024);
    assert.equal(dcm.stats!.max, 1381);

    // Second run: everything up to date.
    const r2 = await prepare([inputs], out, { labels, workers: 0, progress: false });
    assert.equal(r2.report.processed, 0);
    assert.equal(r2.report.skipped, 6);
    assert.equal(r2.report.failures.length, 3, 'old failures are still reported');

    // A touched file and a repaired file are prepared again; nothing else is.
    const later = new Date(Date.now() + 5000);
    fs.utimesSync(path.join(inputs, 'good', 'mr.nii.gz'), later, later);
    fs.copyFileSync(CT_SM, path.join(inputs, 'bad', 'truncated.nii.gz'));
    const again: string[] = [];
    const r3 = await prepare([inputs], out, { labels, workers: 0, progress: false, onCase: (r) => again.push(r.id) });
    assert.deepEqual(again.sort(), ['mr', 'truncated']);
    assert.equal(r3.report.ok, 2);
    assert.equal(r3.report.skipped, 4);
    assert.equal(byId(r3.manifest.cases, 'truncated').status, 'ok');
    assert.ok(fs.existsSync(path.join(out, 'truncated.img.mvol')));

    // Failed cases are retried only when asked.
    const r4 = await prepare([inputs], out, { labels, workers: 0, progress: false, retryFailed: true });
    assert.equal(r4.report.processed, 2);
    assert.equal(r4.report.failed, 2);
    // A failed case leaves no cache files behind.
    assert.ok(!fs.readdirSync(out).some((f) => f.startsWith('text.') || f.startsWith('flat2d.')));
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('prepare: body crop, resampling and a custom module step run in a worker and match the transforms applied directly', async () => {
  const root = tempDir('pp');
  try {
    const mod = path.join(root, 'step.mjs');
    // A user step: shift intensities by +7 and drop label class 5.
    fs.writeFileSync(mod, `export function preprocess(image, label, ctx) {
      const d = Float32Array.from(image.data, (v) => v + 7);
      const l = label === undefined ? undefined : { ...label, data: Uint8Array.from(label.data, (v) => (v === 5 ? 0 : v)) };
      if (ctx.modality !== 'ct') throw new Error('expected ct');
      return { image: { ...image, data: d }, label: l };
    }\n`);
    const out = path.join(root, 'cache');
    const spacing: [number, number, number] = [4.5, 4.5, 6];
    const csv = path.join(root, 'list.csv');
    fs.writeFileSync(csv, `${CT_SM},${CT_SM_LAB}\n`);
    const r = await prepare([], out, { csv, workers: 1, progress: false, preprocess: { bodyCrop: true, spacing, module: mod } });
    assert.equal(r.report.ok, 1, JSON.stringify(r.report.failures));
    const rec = r.manifest.cases[0]!;
    // The same steps applied here with the transforms: reorient, body box, resample, +7, int16.
    let img = reorient(await readImage(CT_SM), 'LPS').volume;
    let lab = reorient(await readImage(CT_SM_LAB), 'LPS').volume;
    const box = bodyBox(img);
    assert.ok(box.end[0] - box.start[0] < img.size[0], 'the body crop removes some air');
    img = resampleToSpacing(cropToBox(img, box), spacing, { interpolation: 'linear', backend: 'js' });
    lab = resampleToSpacing(cropToBox(lab, box), spacing, { interpolation: 'nearest', backend: 'js' });
    assert.deepEqual(rec.image!.shape, [img.size[2], img.size[1], img.size[0]]);
    assert.deepEqual(rec.geometry!.spacing, spacing);
    assert.deepEqual(rec.geometry!.sourceSize, [122, 101, 30]);
    const cv = CacheVolume.open(path.join(out, rec.image!.file));
    assert.equal(cv.dtype, 'int16');
    assertSameValues(cv.readAll(), Int16Array.from(img.data, (v) => Math.round(v + 7)), 'preprocessed voxels');
    assert.deepEqual(cv.header.origin, img.origin);
    cv.close();
    const lv = CacheVolume.open(path.join(out, rec.label!.file));
    assertSameValues(lv.readAll(), Uint8Array.from(lab.data, (v) => (v === 5 ? 0 : v)), 'preprocessed labels');
    lv.close();
    assert.equal(rec.label!.stats.classes['5'], undefined);
    // Changing a setting changes every fingerprint: the case is prepared again.
    const r2 = await prepare([], out, { csv, workers: 0, progress: false, preprocess: { bodyCrop: true, spacing: [4.5, 4.5, 3], module: mod } });
    assert.equal(r2.report.processed, 1);
    // So does editing the module; an unchanged one does not.
    const same = await prepare([], out, { csv, workers: 0, progress: false, preprocess: { bodyCrop: true, spacing: [4.5, 4.5, 3], module: mod } });
    assert.equal(same.report.processed, 0);
    fs.appendFileSync(mod, '// edited\n');
    const r3 = await prepare([], out, { csv, workers: 0, progress: false, preprocess: { bodyCrop: true, spacing: [4.5, 4.5, 3], module: mod } });
    assert.equal(r3.report.processed, 1);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('prepare: a worker that dies fails only its case; a fresh worker takes the rest', async () => {
  const root = tempDir('crash');
  try {
    const inputs = path.join(root, 'in');
    fs.mkdirSync(inputs);
    for (const n of ['a', 'b', 'c']) fs.copyFileSync(CT_SM, path.join(inputs, `${n}.nii.gz`));
    const mod = path.join(root, 'crash.mjs');
    fs.writeFileSync(mod, `export function preprocess(image, label, ctx) { if (ctx.id === 'b') process.exit(3); return { image, label }; }\n`);
    const r = await prepare([inputs], path.join(root, 'cache'), { workers: 1, progress: false, preprocess: { module: mod } });
    assert.equal(r.report.ok, 2);
    assert.deepEqual(r.report.failures.map((f) => [f.id, f.reason]), [['b', 'worker exited with code 3']]);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('misfm prepare CLI: exit 0 with failures listed; exit 1 with a clear message when every case fails', async () => {
  const root = tempDir('cli');
  try {
    const good = path.join(root, 'good'), bad = path.join(root, 'bad');
    fs.mkdirSync(good);
    fs.mkdirSync(bad);
    fs.copyFileSync(CT_SM, path.join(good, 'a.nii.gz'));
    fs.writeFileSync(path.join(good, 'b.nii.gz'), 'garbage');
    fs.writeFileSync(path.join(bad, 'c.nii.gz'), 'garbage');
    let out = '', err = '';
    const code = await runPrepare([good, '--out', path.join(root, 'c1'), '--workers', '0'], (s) => { out += s; }, (s) => { err += s; }, false);
    assert.equal(code, 0);
    assert.match(out, /2 case\(s\): 2 prepared \(1 ok, 1 failed\), 0 up to date/);
    assert.match(err, /1 case\(s\) failed/);
    assert.ok(err.includes(path.join(good, 'b.nii.gz')), err);
    out = err = '';
    const code2 = await runPrepare([bad, '--out', path.join(root, 'c2'), '--workers', '0'], (s) => { out += s; }, (s) => { err += s; }, false);
    assert.equal(code2, 1);
    assert.match(err, /all 1 case\(s\) failed; nothing usable was cached/);
    await assert.rejects(runPrepare([good], () => undefined, () => undefined, false), /--out CACHE is required/);
    await assert.rejects(runPrepare([good, '--out', path.join(root, 'c3'), '--spacing', '1,x,2'], () => undefined, () => undefined, false), /--spacing 1,x,2/);
    await assert.rejects(runPrepare([path.join(root, 'nope'), '--out', path.join(root, 'c4')], () => undefined, () => undefined, false),
      (e: unknown) => e instanceof Error && e.message.includes(path.join(root, 'nope')) && /input not found/.test(e.message));
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('prepare killed with SIGKILL mid-run: the next run keeps every finished case and does only the rest', async () => {
  const root = tempDir('kill');
  try {
    const inputs = path.join(root, 'in');
    fs.mkdirSync(inputs);
    for (const n of ['a', 'b', 'c', 'd', 'e']) fs.copyFileSync(CT_SM, path.join(inputs, `${n}.nii.gz`));
    const out = path.join(root, 'cache');
    const script = `import { prepare } from ${JSON.stringify(pathToFileURL(path.join(REPO_ROOT, 'dist/src/data/prepare.js')).href)};
      await prepare([${JSON.stringify(inputs)}], ${JSON.stringify(out)}, { workers: 0, progress: false, flushMs: 1e9,
        onCase: (r) => process.stdout.write(r.id + '\\n') });`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    const done = await new Promise<string[]>((resolve, reject) => {
      child.stdout.on('data', (b: Buffer) => {
        text += b.toString();
        const ids = text.split('\n').filter((l) => l !== '');
        if (ids.length >= 2) { child.kill('SIGKILL'); resolve(ids); }
      });
      child.on('exit', (code) => { if (text.split('\n').filter((l) => l !== '').length < 2) reject(new Error(`child exited (${code}) early: ${text}`)); });
    });
    await new Promise((r) => child.once('close', r));
    // Killed before any manifest write (flushMs is huge): only the journal has the finished cases.
    assert.ok(!fs.existsSync(path.join(out, MANIFEST_NAME)));
    assert.ok(fs.existsSync(path.join(out, JOURNAL_NAME)));
    const redone: string[] = [];
    const r = await prepare([inputs], out, { workers: 0, progress: false, onCase: (c) => redone.push(c.id) });
    assert.ok(r.report.skipped >= 2, `skipped ${r.report.skipped}`);
    for (const id of done.slice(0, 2)) assert.ok(!redone.includes(id), `${id} finished before the kill and is not redone`);
    assert.equal(r.report.skipped + r.report.processed, 5);
    assert.equal(r.manifest.cases.filter((c) => c.status === 'ok').length, 5);
    for (const c of r.manifest.cases) {
      const cv = CacheVolume.open(path.join(out, c.image!.file));
      assert.equal(cv.shape[0], 30);
      cv.close();
    }
    // The temp file of the case in flight at the kill was removed by the next run.
    assert.deepEqual(fs.readdirSync(out).filter((f) => f.includes('.tmp-')), []);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('a kill mid-run loses at most the case in flight: the journal is applied on load, a torn last line ignored', () => {
  const dir = tempDir('journal');
  try {
    const rec = (id: string, status: 'ok' | 'failed'): CaseRecord => ({ id, status, source: { image: `/x/${id}.nii.gz` }, fingerprint: `fp-${id}` });
    const m = { format: 'misfm-cache' as const, version: 1, createdAt: '', updatedAt: '', preprocess: {}, cases: [rec('a', 'ok'), rec('b', 'failed')] };
    saveManifest(dir, m);
    // Records appended after the last manifest write, then a line cut short by the kill.
    const lines = [JSON.stringify({ case: rec('b', 'ok') }), JSON.stringify({ case: rec('c', 'ok') }), '{"case":{"id":"d","sta'];
    fs.writeFileSync(path.join(dir, JOURNAL_NAME), `\n${lines.join('\n\n')}`);
    const back = loadManifest(dir)!;
    assert.deepEqual(back.cases.map((c) => [c.id, c.status]), [['a', 'ok'], ['b', 'ok'], ['c', 'ok']]);
    fs.writeFileSync(path.join(dir, MANIFEST_NAME), '{"format": "misfm-cache", "cases": [');
    assert.throws(() => loadManifest(dir), (e: unknown) => e instanceof Error && e.message.includes(MANIFEST_NAME) && /not valid JSON/.test(e.message));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('discovery follows symbolic links to files and to DICOM series folders, and survives a link cycle', async () => {
  const root = tempDir('links');
  try {
    const staged = path.join(root, 'staged');
    fs.mkdirSync(path.join(staged, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(root, 'real.nii.gz'), '');
    fs.symlinkSync(path.join(root, 'real.nii.gz'), path.join(staged, 'linked.nii.gz'));
    fs.symlinkSync(DCM05, path.join(staged, 'series05'));
    fs.symlinkSync(staged, path.join(staged, 'sub', 'loop'));
    fs.symlinkSync(path.join(root, 'gone.nii.gz'), path.join(staged, 'broken.nii.gz'));
    const d = await discoverCases([staged]);
    assert.deepEqual(d.cases.map((c) => c.id).sort(), ['linked', 'series05']);
    const dcm = d.cases.find((c) => c.id === 'series05')!;
    assert.equal(dcm.modality, 'CT');
    assert.equal(dcm.source.image, path.join(staged, 'series05'));
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('discovery: nnU-Net dataset folders, CSV lists, DICOM series folders, labels folder, unique ids', async () => {
  const root = tempDir('disc');
  try {
    const ds = path.join(root, 'Dataset001_X');
    fs.mkdirSync(path.join(ds, 'imagesTr'), { recursive: true });
    fs.mkdirSync(path.join(ds, 'labelsTr'));
    for (const f of ['a_0000.nii.gz', 'a_0001.nii.gz', 'b_0000.nii.gz']) fs.writeFileSync(path.join(ds, 'imagesTr', f), '');
    fs.writeFileSync(path.join(ds, 'labelsTr', 'a.nii.gz'), '');
    fs.writeFileSync(path.join(ds, 'dataset.json'), JSON.stringify({ labels: { background: 0, liver: 1 }, file_ending: '.nii.gz' }));
    const d1 = await discoverCases([ds]);
    assert.deepEqual(d1.labelNames, { 0: 'background', 1: 'liver' });
    assert.deepEqual(d1.cases.map((c) => [c.id, path.basename(c.source.image), c.source.label && path.basename(c.source.label)]),
      [['a', 'a_0000.nii.gz', 'a.nii.gz'], ['b', 'b_0000.nii.gz', undefined]]);
    assert.match(d1.cases[0]!.notes.join(), /ignored _0001/);
    assert.match(d1.cases[1]!.notes.join(), /no label/);

    const csv = path.join(root, 'list.csv');
    fs.writeFileSync(csv, 'image,label\nimgs/x.nii.gz,labs/x.nii.gz\n"imgs/y, z.nii.gz",\n');
    const d2 = await discoverCases([], { csv });
    assert.deepEqual(d2.cases.map((c) => [c.id, c.source.image, c.source.label]),
      [['x', path.join(root, 'imgs/x.nii.gz'), path.join(root, 'labs/x.nii.gz')], ['y_z', path.join(root, 'imgs/y, z.nii.gz'), undefined]]);

    // Same stem in two folders, a labels folder matched with or without _0000, a DICOM folder.
    const tree = path.join(root, 'tree');
    for (const d of ['p1', 'p2', 'labs']) fs.mkdirSync(path.join(tree, d), { recursive: true });
    fs.writeFileSync(path.join(tree, 'p1', 'ct_0000.nii.gz'), '');
    fs.writeFileSync(path.join(tree, 'p2', 'ct_0000.nii.gz'), '');
    fs.writeFileSync(path.join(tree, 'labs', 'ct.nii.gz'), '');
    const d3 = await discoverCases([tree, dataPath('02_totalseg_ct_dicom', 'uncompressed')], { labels: path.join(tree, 'labs') });
    assert.equal(d3.cases.length, 3, 'the labels folder is not walked as images');
    const ids = d3.cases.map((c) => c.id);
    assert.equal(new Set(ids).size, 3);
    assert.ok(ids[0]!.startsWith('ct_0000-') && ids[1]!.startsWith('ct_0000-'), ids.join());
    assert.equal(d3.cases[0]!.source.label, path.join(tree, 'labs', 'ct.nii.gz'));
    const dcm = d3.cases[2]!;
    assert.equal(dcm.id, 'uncompressed');
    assert.equal(dcm.modality, 'CT');
    assert.equal(dcm.source.series, undefined);
    await assert.rejects(discoverCases([path.join(root, 'missing')]), /missing: input not found/);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('prepare: a scan found under a new path with the same content keeps its case (moved data, copied cache); a different scan with the same name does not', async () => {
  const root = tempDir('moved');
  try {
    const a = path.join(root, 'a');
    fs.mkdirSync(path.join(a, 'images'), { recursive: true });
    fs.mkdirSync(path.join(a, 'labels'));
    fs.copyFileSync(CT_SM, path.join(a, 'images', 'ct.nii.gz'));
    fs.copyFileSync(CT_SM_LAB, path.join(a, 'labels', 'ct.nii.gz'));
    const out = path.join(root, 'cache');
    const r1 = await prepare([path.join(a, 'images')], out, { labels: path.join(a, 'labels'), workers: 1, progress: false });
    assert.equal(r1.report.processed, 1);
    // Move the data (mtime kept) and prepare the same cache from the new place.
    const b = path.join(root, 'b');
    fs.renameSync(a, b);
    const r2 = await prepare([path.join(b, 'images')], out, { labels: path.join(b, 'labels'), workers: 1, progress: false });
    assert.equal(r2.report.processed, 0, 'nothing prepared again');
    assert.equal(r2.report.moved, 1);
    assert.equal(r2.report.skipped, 1);
    const m = loadManifest(out)!;
    assert.deepEqual(m.cases.map((r) => r.id), ['ct'], 'one case, not ct and ct-2');
    assert.equal(m.cases[0]!.source.image, path.join(b, 'images', 'ct.nii.gz'));
    assert.equal(m.cases[0]!.source.label, path.join(b, 'labels', 'ct.nii.gz'));
    // A copied cache prepared from links to the same files: still one case.
    const copy = path.join(root, 'cache-copy');
    fs.cpSync(out, copy, { recursive: true });
    const links = path.join(root, 'links');
    fs.mkdirSync(path.join(links, 'images'), { recursive: true });
    fs.mkdirSync(path.join(links, 'labels'));
    fs.symlinkSync(path.join(b, 'images', 'ct.nii.gz'), path.join(links, 'images', 'ct.nii.gz'));
    fs.symlinkSync(path.join(b, 'labels', 'ct.nii.gz'), path.join(links, 'labels', 'ct.nii.gz'));
    const r3 = await prepare([path.join(links, 'images')], copy, { labels: path.join(links, 'labels'), workers: 1, progress: false });
    assert.equal(r3.report.processed, 0);
    assert.deepEqual(loadManifest(copy)!.cases.map((r) => r.id), ['ct']);
    // Another scan under the same file name, next to the first: a second case.
    const c = path.join(root, 'c');
    fs.mkdirSync(c);
    fs.copyFileSync(MR, path.join(c, 'ct.nii.gz'));
    const r4 = await prepare([c], out, { workers: 1, progress: false });
    assert.equal(r4.report.moved, 0);
    assert.deepEqual(loadManifest(out)!.cases.map((r) => r.id).sort(), ['ct', 'ct-2']);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
