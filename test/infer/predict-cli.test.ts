/** `misfm predict` on folders, CSV and single files: bad cases are reported and skipped, shards are disjoint. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runPredict } from '../../src/cli/commands/predict.js';
import { listCases, parseShard, shardCases } from '../../src/infer/cases.js';
import { readImage } from '../../src/io/image/index.js';
import { dataDir } from '../helpers.js';
import { MisfmError } from '../../src/util/errors.js';
import { tempDir, writeTinyCheckpoint, writeVolume } from './helpers.js';

interface Captured { out: string; err: string; code: number }

async function run(argv: string[]): Promise<Captured> {
  let out = '', err = '';
  const code = await runPredict(argv, { out: (t) => { out += t; }, err: { write: (t: string) => { err += t; return true; } } });
  return { out, err, code };
}

const listed = (dir: string): string[] => (fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => n.endsWith('.nii.gz')).sort() : []);

async function setup(): Promise<{ dir: string; ckpt: string; images: string }> {
  const dir = tempDir('predict-cli');
  const ckpt = path.join(dir, 'model.pt');
  writeTinyCheckpoint(ckpt);
  const images = path.join(dir, 'images');
  fs.mkdirSync(images);
  await writeVolume(path.join(images, 'a.nii.gz'), [20, 18, 9], (i, j, k) => i * 3 - j + k);
  await writeVolume(path.join(images, 'b.nii.gz'), [17, 21, 12], (i, j, k) => (i * j) % 50 - k, { spacing: [0.7, 0.7, 2] });
  await writeVolume(path.join(images, 'c.nrrd'), [16, 16, 16], (i, j, k) => (i + j + k) % 7);
  fs.writeFileSync(path.join(images, 'bad.nii.gz'), Buffer.from('this is not a NIfTI file, just text pretending to be one'));
  fs.writeFileSync(path.join(images, 'notes.txt'), 'ignored');
  return { dir, ckpt, images };
}

test('a folder with one corrupt file: the others are written, the bad one is reported, exit code 1', async () => {
  const { dir, ckpt, images } = await setup();
  try {
    const out = path.join(dir, 'out');
    const r = await run(['--model', ckpt, '--input', images, '--output', out, '--threads', '2']);
    assert.equal(r.code, 1, r.out + r.err);
    assert.deepEqual(listed(out), ['a.nii.gz', 'b.nii.gz', 'c.nii.gz']);
    for (const n of ['a', 'b', 'c']) assert.ok(fs.existsSync(path.join(out, `${n}.json`)), `${n}.json`);
    assert.match(r.err, /\[3\/4\] bad: FAILED: .*bad\.nii\.gz/);
    assert.match(r.out, /predicted 3 of 4 case\(s\), 1 failed/);
    assert.match(r.out, /failed cases:\n {2}bad \(/);
    assert.match(r.err, /predict\s+4\/4 \(100\.0%\).*failed 1/, 'progress line');
    const a = await readImage(path.join(out, 'a.nii.gz'));
    assert.deepEqual(a.size, [20, 18, 9]);
    const log = fs.readFileSync(path.join(out, 'predict.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(log[0]!['event'], 'start');
    const cases = log.filter((e) => e['event'] === 'case');
    assert.deepEqual(cases.map((e) => [e['case'], e['status']]), [['a', 'ok'], ['b', 'ok'], ['bad', 'failed'], ['c', 'ok']]);
    assert.match(String(cases[2]!['error']), /bad\.nii\.gz/);
    assert.deepEqual(log[log.length - 1], { ...log[log.length - 1], event: 'end', ok: 3, failed: 1 });
    // --skip-existing: only the bad case is attempted again.
    const again = await run(['--model', ckpt, '--input', images, '--output', out, '--skip-existing']);
    assert.equal(again.code, 1);
    assert.match(again.out, /predicted 0 of 4 case\(s\), 3 skipped, 1 failed/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('--shard i/n splits the sorted case list disjointly', async () => {
  const { dir, ckpt, images } = await setup();
  try {
    const names = listCases(images).map((c) => c.name);
    assert.deepEqual(names, ['a', 'b', 'bad', 'c'].sort((x, y) => (path.join(images, x) < path.join(images, y) ? -1 : 1)));
    const o0 = path.join(dir, 's0'), o1 = path.join(dir, 's1');
    const r0 = await run(['--model', ckpt, '--input', images, '--output', o0, '--shard', '0/2']);
    const r1 = await run(['--model', ckpt, '--input', images, '--output', o1, '--shard', '1/2']);
    const s0 = shardCases(names, parseShard('0/2')), s1 = shardCases(names, parseShard('1/2'));
    assert.deepEqual([...s0, ...s1].sort(), [...names].sort());
    assert.equal(s0.filter((n) => s1.includes(n)).length, 0);
    const written = (o: string): string[] => listed(o).map((n) => n.replace('.nii.gz', ''));
    assert.deepEqual(written(o0), s0.filter((n) => n !== 'bad'));
    assert.deepEqual(written(o1), s1.filter((n) => n !== 'bad'));
    assert.equal(r0.code, s0.includes('bad') ? 1 : 0);
    assert.equal(r1.code, s1.includes('bad') ? 1 : 0);
    assert.match(r0.out, /shard 0\/2 of 4/);
    assert.throws(() => parseShard('2/2'), (e: unknown) => e instanceof MisfmError && /0 <= i < n/.test(e.message));
    await assert.rejects(run(['--model', ckpt, '--input', images, '--output', o0, '--shard', '1-2']), /--shard must be i\/n/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('single file to a file, CSV input, and argument errors', async () => {
  const { dir, ckpt, images } = await setup();
  try {
    const single = path.join(dir, 'single', 'a_seg.nrrd');
    const r = await run(['--model', ckpt, '--input', path.join(images, 'a.nii.gz'), '--output', single, '--keep-largest', 'per-class', '--tta']);
    assert.equal(r.code, 0, r.err);
    assert.ok(fs.existsSync(single) && fs.existsSync(path.join(dir, 'single', 'a_seg.json')));
    assert.ok(!fs.existsSync(path.join(dir, 'single', 'predict.jsonl')), 'no log by default for a single output file');
    // Before the windows run: one line with spacings, sizes, windows and a time estimate; a warning
    // because this checkpoint records no training spacing.
    assert.match(r.out, /\[1\/1\] a: 1,1,1 mm \(native\), 20x18x9 -> 20x18x9 voxels, \d+ windows? of 16x16x16; first (window|\d+ windows) \d+\.\d s, about .+ for all \d+\n/);
    assert.match(r.err, /\[1\/1\] a: warning: the checkpoint records no training spacing: predicting at the input's own spacing 1,1,1 mm/);
    // --spacing overrides the recorded preprocessing; the labels still come back on the input's grid.
    const spaced = path.join(dir, 'spaced', 'a_seg.nii.gz');
    const rs = await run(['--model', ckpt, '--input', path.join(images, 'a.nii.gz'), '--output', spaced, '--spacing', '2,2,2']);
    assert.equal(rs.code, 0, rs.err);
    assert.match(rs.out, /a: 1,1,1 mm -> 2,2,2 mm, 20x18x9 -> 10x9x5 voxels, 1 window of 16x16x16;/);
    assert.doesNotMatch(rs.err, /records no training spacing/);
    const side = JSON.parse(fs.readFileSync(path.join(dir, 'spaced', 'a_seg.json'), 'utf8')) as { preprocess: { spacing: number[] }; model: { preprocessSource: string }; geometry: { size: number[] } };
    assert.deepEqual(side.preprocess.spacing, [2, 2, 2]);
    assert.match(side.model.preprocessSource, /explicit overrides/);
    const single0 = JSON.parse(fs.readFileSync(path.join(dir, 'single', 'a_seg.json'), 'utf8')) as { geometry: { size: number[] } };
    assert.deepEqual(side.geometry.size, single0.geometry.size);
    await assert.rejects(run(['--model', ckpt, '--input', path.join(images, 'a.nii.gz'), '--output', spaced, '--spacing', '2,0,2']), /--spacing must be three positive numbers/);
    const csv = path.join(dir, 'list.csv');
    fs.writeFileSync(csv, 'id,image\n1,images/c.nrrd\n2,"images/b.nii.gz"\n');
    const out = path.join(dir, 'csvout');
    const rc = await run(['--model', ckpt, '--input', csv, '--output', out, '--format', 'mha', '--probabilities', '--prob-format', 'uint8']);
    assert.equal(rc.code, 0, rc.err);
    assert.deepEqual(fs.readdirSync(out).filter((n) => n.endsWith('.mha')).sort(), ['b.mha', 'b_prob1.mha', 'b_prob2.mha', 'c.mha', 'c_prob1.mha', 'c_prob2.mha']);
    // A DICOM series folder (no image files in it) is one case named after the folder
    // (predict.test.ts runs predictCase on it).
    const dicom = path.join(dataDir, '05_dcmqi_ct_3slice', 'dicom');
    assert.deepEqual(listCases(dicom), [{ name: 'dicom', input: dicom }]);
    // A folder of links to image files (how a cohort is often staged) lists the linked images.
    const linked = path.join(dir, 'linked');
    fs.mkdirSync(linked);
    fs.symlinkSync(path.join(images, 'a.nii.gz'), path.join(linked, 'a.nii.gz'));
    fs.symlinkSync(path.join(images, 'c.nrrd'), path.join(linked, 'c.nrrd'));
    assert.deepEqual(listCases(linked).map((c) => c.name), ['a', 'c']);
    await assert.rejects(run(['--input', csv, '--output', out]), /--model, --input and --output are required/);
    await assert.rejects(run(['--model', ckpt, '--input', images, '--output', path.join(dir, 'x.nii.gz')]), /is a file name but the input holds 4 cases/);
    await assert.rejects(run(['--model', ckpt, '--input', path.join(dir, 'missing'), '--output', out]), (e: unknown) => e instanceof MisfmError && /missing: input not found/.test(e.message));
    fs.writeFileSync(csv, 'id,path\n1,a\n');
    await assert.rejects(run(['--model', ckpt, '--input', csv, '--output', out]), /no 'image' column/);
    await assert.rejects(run(['--model', ckpt, '--input', images, '--output', out, '--overlap', '1.5']), /--overlap must be/);
    await assert.rejects(run(['--model', ckpt, '--input', images, '--output', out, '--stride', '4,4']), /--stride must be three/);
    await assert.rejects(run(['--model', path.join(dir, 'nope.pt'), '--input', images, '--output', out]), /nope\.pt: no such checkpoint/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
