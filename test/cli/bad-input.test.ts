/**
 * The bad-input corpus: malformed and mistaken inputs across every entry point, each generated
 * small in a temp folder. Every case checks the exit status, that the message names the file at
 * fault, that no stack trace is printed, and that nothing is left half-written (no atomic-write
 * temp files, no partial outputs).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { repoRoot } from '../helpers.js';
import { tempDir, writeTinyCheckpoint, writeVolume } from '../infer/helpers.js';
import { writeNifti1 } from '../io/image-helpers.js';
import { saveTorchCheckpoint, PyDict } from '../../src/io/checkpoint/index.js';
import { presetConfig } from '../../src/config/defaults.js';
import { readImage, writeImage } from '../../src/io/image/index.js';

const tmp = tempDir('badinput');
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const kinds: string[] = [];

interface Run { status: number | null; out: string; err: string }
function misfm(args: string[]): Run {
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin/misfm.js'), ...args],
    { encoding: 'utf8', cwd: tmp, env: { ...process.env, MISFM_NUM_THREADS: '1' }, timeout: 180_000 });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

/** Every file under `dir` (recursively). */
function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

/**
 * The common checks: exit status, the file named on stderr, one error line without a stack, no
 * temp files of atomic writes left anywhere in the test folder, and `absent` paths not created.
 */
function expectRefused(kind: string, r: Run, o: { status: number; file: string; re: RegExp; absent?: string[] }): void {
  kinds.push(kind);
  assert.equal(r.status, o.status, `${kind}: exit status (stderr: ${r.err})`);
  assert.ok(r.err.includes(o.file), `${kind}: the message names ${o.file}: ${r.err}`);
  assert.match(r.err, o.re, kind);
  assert.doesNotMatch(r.err, /\n\s+at [^\n]*[:(]/, `${kind}: no stack trace`);
  assert.doesNotMatch(r.err, /TypeError|RangeError|ReferenceError|aten::/, `${kind}: no internal error text`);
  assert.deepEqual(filesUnder(tmp).filter((f) => /\.tmp-\d+-/.test(path.basename(f))), [], `${kind}: no half-written temp files`);
  for (const a of o.absent ?? []) assert.equal(fs.existsSync(a), false, `${kind}: ${a} must not exist`);
}

const p = (...s: string[]): string => path.join(tmp, ...s);
const cube = (i: number, j: number): boolean => i > 6 && i < 14 && j > 6 && j < 14;

// ---- convert -------------------------------------------------------------------------------

test('convert: truncated, 4D, renamed and out-of-range inputs; unsupported output ending', async () => {
  const good = p('good.nii.gz');
  await writeVolume(good, [20, 20, 10], (i, j) => (cube(i, j) ? 300 : -800));
  const trunc = p('trunc.nii');
  writeNifti1(trunc, [8, 8, 8], 4, 16, new Uint8Array(8 * 8 * 4 * 2)); // half the voxel data
  expectRefused('convert: NIfTI truncated in the voxel data', misfm(['convert', trunc, p('o1.nrrd')]), { status: 2, file: trunc, re: /truncated NIfTI file/, absent: [p('o1.nrrd')] });
  const four = p('four.nii');
  writeNifti1(four, [4, 4, 4, 3], 4, 16, new Uint8Array(4 * 4 * 4 * 3 * 2));
  expectRefused('convert: 4D NIfTI (several volumes)', misfm(['convert', four, p('o2.nii.gz')]), { status: 2, file: four, re: /4D image .* single 3D volume/, absent: [p('o2.nii.gz')] });
  const text = p('notes.nii.gz');
  fs.writeFileSync(text, 'this is a text file renamed to .nii.gz\n');
  expectRefused('convert: a text file named .nii.gz', misfm(['convert', text, p('o3.nii')]), { status: 2, file: text, re: /not gzip-compressed/, absent: [p('o3.nii')] });
  expectRefused('convert: unsupported output ending', misfm(['convert', good, p('o4.png')]), { status: 2, file: p('o4.png'), re: /\.png|unsupported/i, absent: [p('o4.png')] });
  expectRefused('convert: --dtype that cannot hold the values', misfm(['convert', good, p('o5.nii.gz'), '--dtype', 'uint8']), { status: 2, file: p('o5.nii.gz'), re: /-800 does not fit uint8/, absent: [p('o5.nii.gz')] });
});

test('convert: a NIfTI with a degenerate affine (sform code 1, all-zero matrix, zero pixdim) is read with a warning naming what was used', async () => {
  const voxels = new Int16Array(6 * 5 * 4).map((_, i) => i - 50);
  const base = p('degenerate-src.nii');
  writeNifti1(base, [6, 5, 4], 4, 16, new Uint8Array(voxels.buffer));
  const h = fs.readFileSync(base);
  for (let k = 0; k < 3; k++) h.writeFloatLE(0, 80 + 4 * k);      // pixdim[1..3] = 0
  for (let k = 0; k < 12; k++) h.writeFloatLE(0, 280 + 4 * k);     // srow_x/y/z = 0
  h.writeInt16LE(1, 254);                                          // sform_code 1
  h.writeInt16LE(0, 252);                                          // qform_code 0
  for (const [name, bytes] of [['degenerate.nii', h], ['degenerate.nii.gz', zlib.gzipSync(h)]] as const) {
    const file = p(name), out = p(`${name}.nrrd`);
    fs.writeFileSync(file, bytes);
    const r = misfm(['convert', file, out]);
    kinds.push(`convert: degenerate affine (${name})`);
    assert.equal(r.status, 0, r.err);
    assert.match(r.err, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: sform \\(code 1\\) has an all-zero matrix; read with an identity geometry`));
    assert.doesNotMatch(r.err, /\n\s+at /);
    const v = await readImage(out);
    assert.deepEqual(v.spacing, [1, 1, 1]);
    assert.deepEqual(v.origin, [0, 0, 0]);
    assert.deepEqual(Array.from(v.data), Array.from(voxels), 'voxels unchanged');
  }
  // The qform is used when there is one, and a zero pixdim takes the sform's spacing.
  const q = Buffer.from(h);
  q.writeInt16LE(1, 252);
  q.writeFloatLE(1, 80); q.writeFloatLE(2, 84); q.writeFloatLE(3, 88);
  q.writeFloatLE(10, 268); q.writeFloatLE(20, 272); q.writeFloatLE(30, 276); // qoffset x,y,z (RAS)
  fs.writeFileSync(p('qform.nii'), q);
  const vq = await readImage(p('qform.nii'));
  assert.deepEqual([vq.spacing, vq.origin], [[1, 2, 3], [-10, -20, 30]], 'qform origin (LPS) and pixdim spacing');
  const s = Buffer.from(h);
  [2, 0, 0, 5, 0, 3, 0, 6, 0, 0, 4, 7].forEach((x, k) => s.writeFloatLE(x, 280 + 4 * k));
  fs.writeFileSync(p('sform-zeropix.nii'), s);
  const vs = await readImage(p('sform-zeropix.nii'));
  assert.deepEqual([vs.spacing, vs.origin], [[2, 3, 4], [-5, -6, 7]], 'spacing from the sform, not 1 mm');
});

// ---- inspect -------------------------------------------------------------------------------

test('inspect: an unknown network gets a bounded grouped summary; damaged and foreign files are named', async () => {
  const many = new Map<string, { dtype: 'float32'; shape: number[]; data: Uint8Array }>();
  const t = (shape: number[]): { dtype: 'float32'; shape: number[]; data: Uint8Array } => ({ dtype: 'float32', shape, data: new Uint8Array(4 * shape.reduce((a, b) => a * b, 1)) });
  for (let l = 0; l < 40; l++) for (const n of ['norm.weight', 'norm.bias', 'qkv.weight', 'proj.weight', 'fc1.weight', 'fc2.weight']) many.set(`blocks.${l}.${n}`, t([4, 4]));
  many.set('head.weight', t([2, 4]));
  const unknown = p('unknown-net.pt');
  saveTorchCheckpoint(unknown, new PyDict(many, true));
  const r = misfm(['inspect', unknown]);
  kinds.push('inspect: checkpoint of an unknown network (241 keys)');
  assert.equal(r.status, 0, r.err);
  const lines = r.out.trimEnd().split('\n');
  assert.ok(lines.length <= 40, `bounded: ${lines.length} lines`);
  assert.ok(lines.every((l) => l.length <= 400), 'no line lists every key');
  assert.match(r.out, /architecture: {2}unknown/);
  assert.match(r.out, /misfm recognises a network by the names of its tensors .*pctnet \(embeddings\.0\.proj\.weight/);
  // depth 2 would give 41 groups: the deepest level that fits is 1
  assert.match(r.out, /keys by module \(2 groups at depth 1\):\n {2}blocks +240 tensors +3,840 params {3}e\.g\. blocks\.0\.norm\.weight, blocks\.0\.norm\.bias, \.\.\.\n {2}head +1 tensors +8 params/);
  assert.doesNotMatch(r.out, /other entries/, 'a bare state dict has no entries besides its tensors');
  // 100 top-level modules: the first 24 groups are shown and the rest counted.
  const flat = new Map<string, { dtype: 'float32'; shape: number[]; data: Uint8Array }>();
  for (let l = 0; l < 100; l++) { flat.set(`layer${l}.weight`, t([3])); flat.set(`layer${l}.bias`, t([1])); }
  saveTorchCheckpoint(p('flat-net.pt'), new PyDict(flat, true));
  const f = misfm(['inspect', p('flat-net.pt')]);
  kinds.push('inspect: checkpoint of an unknown network with 100 top-level modules');
  assert.equal(f.status, 0, f.err);
  assert.ok(f.out.trimEnd().split('\n').length <= 40);
  assert.match(f.out, /keys by module \(100 groups at depth 1, first 24 shown\)/);
  assert.match(f.out, /\n {2}layer23 +2 tensors +4 params/);
  assert.doesNotMatch(f.out, /layer24 /);
  assert.match(f.out, /\.\.\. 76 more groups: 152 tensors, 304 params/);
  // A known network under a wrapper prefix: the hint says so.
  const wrapped = new Map([...many].slice(0, 0));
  for (const k of ['embeddings.0.proj.weight', 'pyramid_ct.down3.conv.2.weight']) wrapped.set(`net.${k}`, t([2, 2]));
  saveTorchCheckpoint(p('wrapped.pt'), new PyDict(wrapped, true));
  assert.match(misfm(['inspect', p('wrapped.pt')]).out, /every key starts with 'net\.': without that prefix this is a pctnet state dict/);

  const ok = p('tiny.pt');
  writeTinyCheckpoint(ok);
  const cut = p('cut.pt');
  fs.writeFileSync(cut, fs.readFileSync(ok).subarray(0, 3000));
  expectRefused('inspect: truncated checkpoint', misfm(['inspect', cut]), { status: 2, file: cut, re: /not a readable zip archive.*truncated/ });
  const img = p('image-as-ckpt.nii.gz');
  await writeVolume(img, [4, 4, 4], () => 1);
  expectRefused('inspect: an image given as checkpoint', misfm(['inspect', img]), { status: 2, file: img, re: /not a checkpoint: the content looks like a gzip file/ });
});

// ---- evaluate ------------------------------------------------------------------------------

test('evaluate: a probability map is refused with its range and the hint (or thresholded); a size mismatch is named as such', async () => {
  const gt = p('gt.nii.gz');
  await writeVolume(gt, [20, 20, 10], (i, j) => (cube(i, j) ? 1 : 0));
  const prob = p('prob.nii.gz');
  const data = new Float32Array(20 * 20 * 10);
  for (let k = 0, t = 0; k < 10; k++) for (let j = 0; j < 20; j++) for (let i = 0; i < 20; i++, t++) data[t] = cube(i, j) ? 0.85 : 0.05 * ((i + j) % 3);
  await writeImage(prob, { data, size: [20, 20, 10], spacing: [1, 1, 1], origin: [0, 0, 0], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] });
  const json = p('eval.json');
  expectRefused('evaluate: a probability map as the prediction', misfm(['evaluate', '--pred', prob, '--gt', gt, '--json', json]),
    { status: 2, file: prob, re: /not a label map: it holds non-integer values \(range 0\.\.0\.85.*threshold it \(evaluate --threshold 0\.5\)/, absent: [json] });
  const th = misfm(['evaluate', '--pred', prob, '--gt', gt, '--threshold', '0.5', '--json', json]);
  assert.equal(th.status, 0, th.err);
  const rep = JSON.parse(fs.readFileSync(json, 'utf8')) as { settings: { predictionThreshold: number }; cases: { classes: Record<string, { dice: number }> }[] };
  assert.equal(rep.cases[0]!.classes['1']!.dice, 1, 'the thresholded map is the ground truth');
  assert.equal(rep.settings.predictionThreshold, 0.5, 'the report records the threshold');

  const wide = p('wide.nii.gz');
  await writeVolume(wide, [20, 22, 10], (i, j) => (cube(i, j) ? 1 : 0));
  const r = misfm(['evaluate', '--pred', wide, '--gt', gt]);
  expectRefused('evaluate: prediction of another size (same spacing and origin)', r,
    { status: 2, file: wide, re: /size 20x22x10 vs 20x20x10.*only the extent differs/ });
  assert.doesNotMatch(r.err, /same voxel centres|alignToGrid/);
});

// ---- prepare, train, pretrain --------------------------------------------------------------

test('prepare and train: labels on another grid; label values the config does not name; a corrupt --init', async () => {
  fs.mkdirSync(p('img')); fs.mkdirSync(p('lab-grid')); fs.mkdirSync(p('lab-values')); fs.mkdirSync(p('lab-ok'));
  for (const n of ['a', 'b']) {
    await writeVolume(p('img', `${n}.nii.gz`), [20, 20, 10], (i, j) => (cube(i, j) ? 300 : -800));
    await writeVolume(p('lab-ok', `${n}.nii.gz`), [20, 20, 10], (i, j) => (cube(i, j) ? 1 : 0));
    await writeVolume(p('lab-grid', `${n}.nii.gz`), [20, 20, 10], (i, j) => (cube(i, j) ? 1 : 0), { spacing: [1, 1, 2] });
    await writeVolume(p('lab-values', `${n}.nii.gz`), [20, 20, 10], (i, j) => (cube(i, j) ? 7 : 0));
  }
  const cache = p('cache-grid');
  const pr = misfm(['prepare', p('img'), '--labels', p('lab-grid'), '--out', cache, '--quiet']);
  expectRefused('prepare: label map on another grid than the image', pr, { status: 1, file: p('lab-grid', 'a.nii.gz'), re: /do not share a voxel grid: spacing/ });
  const report = JSON.parse(fs.readFileSync(path.join(cache, 'report.json'), 'utf8')) as { failures: { reason: string }[] };
  assert.equal(report.failures.length, 2);
  assert.deepEqual(filesUnder(cache).filter((f) => f.endsWith('.bin') || f.includes('.vol')), [], 'no cache file for a failed case');

  const small = ['--preset', 'small-finetune', '--iterations', '2', '-q'];
  const run1 = p('run-grid');
  expectRefused('train: labels on another grid than the images', misfm(['train', '--data', p('img'), '--labels', p('lab-grid'), '--out', run1, ...small]),
    { status: 2, file: p('lab-grid', 'a.nii.gz'), re: /do not share a voxel grid/, absent: [path.join(run1, 'checkpoints', 'latest.pt')] });
  const run2 = p('run-values');
  expectRefused('train: label values the config does not name', misfm(['train', '--data', p('img'), '--labels', p('lab-values'), '--out', run2, ...small]),
    { status: 2, file: p('lab-values'), re: /lab-values\/[ab]\.nii\.gz: label map of case [ab] holds value\(s\) 7, but the network has 2 classes .*--classes/, absent: [path.join(run2, 'checkpoints'), path.join(run2, 'metrics.jsonl')] });
  const bad = p('bad-init.pt');
  fs.writeFileSync(bad, Buffer.from('PK\x03\x04 not really a zip'));
  const run3 = p('run-init');
  expectRefused('train: --init with a corrupt checkpoint', misfm(['train', '--data', p('img'), '--labels', p('lab-ok'), '--out', run3, '--init', bad, ...small]),
    { status: 2, file: bad, re: /not a readable zip archive/, absent: [path.join(run3, 'checkpoints', 'latest.pt')] });
});

test('pretrain: no images, --resume without a checkpoint, a broken config file', () => {
  fs.mkdirSync(p('empty-data'));
  fs.writeFileSync(p('empty-data', 'readme.txt'), 'no images here\n');
  const run = p('pre-run');
  expectRefused('pretrain: a data folder without images', misfm(['pretrain', '--data', p('empty-data'), '--out', run, '--preset', 'small', '-q']),
    { status: 2, file: p('empty-data'), re: /no images found/, absent: [path.join(run, 'checkpoints', 'latest.pt')] });
  const fresh = p('pre-fresh');
  expectRefused('pretrain: --resume of a run without a checkpoint', misfm(['pretrain', '--data', p('empty-data'), '--out', fresh, '--resume', '-q']),
    { status: 2, file: fresh, re: /--resume: no checkpoint to resume from/, absent: [path.join(fresh, 'checkpoints', 'latest.pt')] });
  const cfg = p('broken.yaml');
  fs.writeFileSync(cfg, 'training:\n  lr: [unclosed\n');
  expectRefused('pretrain: a config file that does not parse', misfm(['pretrain', '--data', p('empty-data'), '--out', p('pre-cfg'), '--config', cfg, '-q']),
    { status: 2, file: cfg, re: /invalid YAML/ });
  const cfg2 = p('typo.json');
  fs.writeFileSync(cfg2, JSON.stringify({ training: { learningRate: 0.1 } }));
  expectRefused('pretrain: a config key that does not exist', misfm(['pretrain', '--data', p('empty-data'), '--out', p('pre-cfg2'), '--config', cfg2, '-q']),
    { status: 2, file: cfg2, re: /training\.learningRate: unknown key/ });
});

// ---- predict -------------------------------------------------------------------------------

test('predict: a checkpoint of another network, an input of another modality, a 2D image', async () => {
  const img = p('ct.nii.gz');
  await writeVolume(img, [20, 20, 10], (i, j) => (cube(i, j) ? 300 : -800));
  const foreign = p('foreign.safetensors');
  const { writeSafetensors } = await import('../../src/io/checkpoint/index.js');
  writeSafetensors(foreign, new Map([['encoder.layer1.weight', { dtype: 'float32', shape: [2, 2], data: new Uint8Array(16) }]]));
  const out1 = p('pred1.nii.gz');
  expectRefused('predict: a checkpoint of another network', misfm(['predict', '--model', foreign, '--model-config', 'pctnet-small', '--intensity', 'ct-window', '--input', img, '--output', out1]),
    { status: 2, file: foreign, re: /weights do not fit the pctnet config.*the checkpoint is not a pctnet \(no network misfm knows/, absent: [out1, p('pred1.json')] });

  const ct = p('ct-model.pt');
  writeTinyCheckpoint(ct, { data: { ...presetConfig('small-finetune').data, intensity: { kind: 'ct-window', window: [-1000, 1000] } } });
  const mr = p('mr.nii.gz');
  await writeVolume(mr, [20, 20, 10], (i, j, k) => 200 + ((i * 37 + j * 11 + k * 5) % 900));
  const out2 = p('pred2.nii.gz');
  expectRefused('predict: an input of another modality (MR into a CT model)', misfm(['predict', '--model', ct, '--input', mr, '--output', out2]),
    { status: 1, file: mr, re: /does not look like a CT in Hounsfield units .*give --intensity explicitly/, absent: [out2, p('pred2.json')] });
  const ok = misfm(['predict', '--model', ct, '--input', img, '--output', p('pred-ct.nii.gz')]);
  assert.equal(ok.status, 0, `a CT passes the check: ${ok.err}`);

  const flat = p('flat.nii');
  writeNifti1(flat, [16, 16], 4, 16, new Uint8Array(16 * 16 * 2));
  const out3 = p('pred3.nii.gz');
  expectRefused('predict: a 2D image', misfm(['predict', '--model', ct, '--input', flat, '--output', out3]),
    { status: 1, file: flat, re: /2D image .* needs a 3D volume/, absent: [out3] });
});

// ---- plot ----------------------------------------------------------------------------------

test('plot: a training log with a corrupt line in the middle', () => {
  const run = p('plot-run');
  fs.mkdirSync(run);
  const log = path.join(run, 'metrics.jsonl');
  fs.writeFileSync(log, '{"event":"train","iteration":1,"loss":1}\n{"event":"tr\n{"event":"train","iteration":2,"loss":0.9}\n');
  expectRefused('plot: corrupt line inside metrics.jsonl', misfm(['plot', run]), { status: 2, file: log, re: /line 2 is not valid JSON/, absent: [path.join(run, 'curves.png')] });
});

test('the corpus covers at least 20 kinds of bad input across the commands', () => {
  for (const k of kinds) process.stdout.write(`# kind: ${k}\n`);
  assert.ok(kinds.length >= 20, `${kinds.length} kinds`);
  for (const c of ['convert', 'prepare', 'pretrain', 'train', 'predict', 'evaluate', 'inspect']) assert.ok(kinds.some((k) => k.startsWith(`${c}:`)), c);
});
