/**
 * `misfm train` for VISTA3D on a tiny synthetic RAS cache: the stages through the shared trainer
 * (run folder, metrics log, checkpoints), an overfit case whose loss falls, stage 3 leaving the
 * frozen parts bit for bit, exact resume mid-patch (between click rounds), few-shot transfer of
 * the automatic branch to a held-out class, and the CLI's refusal of a bad --stage.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { applyOverrides, presetConfig } from '../../src/config/index.js';
import { trainVista3d, vista3dCaseLabels, vista3dLabelMap, zyxToXyz } from '../../src/train/vista3d/task.js';
import { readyCases } from '../../src/data/manifest.js';
import { loadCheckpointFile } from '../../src/io/checkpoint/index.js';
import { readMetricsLog, recordsOf } from '../../src/train/metrics-log.js';
import { MisfmError, ConfigError } from '../../src/util/errors.js';
import { buildCache, tempDir, vol } from '../data/helpers.js';
import { repoRoot, dataDir } from '../helpers.js';

const tmp = tempDir('vista3d-task');
after(() => rmSync(tmp, { recursive: true, force: true }));

const dhw: [number, number, number] = [20, 24, 24];
/** Liver (1) as a bright box and spleen (3) as a darker one, in every case; ids a, b. */
function cache(dir: string, orientation = 'RAS'): string {
  buildCache(dir, ['a', 'b'].map((id, i) => {
    const n = dhw[0] * dhw[1] * dhw[2];
    const img = new Int16Array(n).fill(-800), lab = new Uint8Array(n);
    for (let j = 0; j < n; j++) img[j] = -800 + ((j * 7919) % 97);
    const box = (z0: number, y0: number, x0: number, s: number, v: number, hu: number): void => {
      for (let z = z0; z < z0 + s; z++) for (let y = y0; y < y0 + s; y++) for (let x = x0; x < x0 + s; x++) { const j = (z * dhw[1] + y) * dhw[2] + x; img[j] = hu; lab[j] = v; }
    };
    box(3 + i, 4, 4, 8, 1, 300);
    box(10, 13 - i, 12, 6, 3, -100);
    return { id, image: vol(img, dhw), label: vol(lab, dhw) };
  }));
  const mf = path.join(dir, 'manifest.json');
  writeFileSync(mf, JSON.stringify({ ...JSON.parse(readFileSync(mf, 'utf8')), preprocess: { reorient: orientation, bodyCrop: false, spacing: [3, 3, 3] } }));
  return dir;
}

const TINY = ['model={"name":"vista3d","initFilters":4,"featureSize":8,"blocksDown":[1,1,1],"mlpDim":16}', 'data.patchSize=[16,16,16]',
  'inference.window=[16,16,16]', 'data.numWorkers=1', 'training.threads=1', 'training.lr=3e-3'];
const config = (extra: string[]) => applyOverrides(presetConfig('vista3d-small'), [...TINY, ...extra]);
const losses = (run: string): number[] => recordsOf(readMetricsLog(run), 'train').map((e) => e['loss'] as number);

const data = cache(path.join(tmp, 'cache'));
const quiet = { quiet: true, log: () => undefined } as const;

test('the recipe config: four stages, stage validated, labels mapped by name with hold-outs removed', () => {
  const c = config([]);
  assert.equal(c.vista3d?.stage, 1);
  assert.deepEqual(c.vista3d?.stages.map((s) => [s.prompts, s.iterNum, s.train]), [['points', 5, 'all'], ['points', 5, 'all'], ['classes', 1, 'auto'], ['classes', 1, 'auto']]);
  assert.throws(() => config(['vista3d.stage=5']), (e: unknown) => e instanceof ConfigError && /vista3d\.stage/.test(e.message));
  assert.throws(() => applyOverrides(presetConfig('small-finetune'), ['vista3d.stage=2']), /only applies to model.name 'vista3d'/);
  const m = vista3dLabelMap(config([`vista3d.labelTable=${JSON.stringify(`${path.join(dataDir, 'totalseg_classmap.json')}#total`)}`, 'vista3d.holdOut=[3]']));
  assert.equal(m.get(5), 1, 'TotalSegmentator 5 liver -> VISTA3D 1');
  assert.equal(m.get(1), undefined, 'spleen (VISTA3D 3) is held out');
  assert.equal(m.get(2), 5, 'kidney_right -> right kidney');
  // (D,H,W) -> (x,y,z): voxel (z,y,x) = (1,2,3) of a 2x3x4 volume lands at x*H*D + y*D + z.
  const a = new Float32Array(24); a[(1 * 3 + 2) * 4 + 3] = 1;
  assert.equal(zyxToXyz(a, [2, 3, 4], new Float32Array(24)).indexOf(1), (3 * 3 + 2) * 2 + 1);
});

test('stage 1 through the trainer: click rounds as iterations, run folder, validation; the loss falls on an overfit case', async () => {
  const run = path.join(tmp, 's1');
  const r = await trainVista3d({ config: config(['training.iterations=30', 'training.validEvery=30', 'training.saveEvery=10', `output.dir=${JSON.stringify(run)}`]), data: [data], runDir: run, validCases: ['b'], ...quiet });
  assert.equal(r.iterations, 30);
  assert.deepEqual(r.labelSet, [1, 3]);
  assert.ok(existsSync(r.checkpoints.latest) && existsSync(path.join(run, 'config.json')));
  assert.equal((JSON.parse(readFileSync(path.join(run, 'config.json'), 'utf8')) as { vista3d: { stage: number } }).vista3d.stage, 1);
  const l = losses(run);
  assert.equal(l.length, 30);
  const mean = (x: number[]): number => x.reduce((s, v) => s + v, 0) / x.length;
  assert.ok(mean(l.slice(-5)) < 0.8 * mean(l.slice(0, 5)), `loss ${mean(l.slice(0, 5))} -> ${mean(l.slice(-5))}`);
  const valid = recordsOf(readMetricsLog(run), 'valid')[0]!;
  assert.ok(typeof valid['dice_liver'] === 'number' && typeof valid['dice_spleen'] === 'number', JSON.stringify(valid));
});

test('resume mid-patch repeats the uninterrupted losses exactly', async () => {
  const opts = ['training.iterations=8', 'training.validEvery=100', 'training.saveEvery=100', 'vista3d.validate=false'];
  const a = path.join(tmp, 'ra'), b = path.join(tmp, 'rb');
  await trainVista3d({ config: config([...opts, `output.dir=${JSON.stringify(a)}`]), data: [data], runDir: a, ...quiet });
  // Stopped after 3 rounds: inside the first patch's 5 click rounds (unless it ended early).
  await trainVista3d({ config: config([...opts, `output.dir=${JSON.stringify(b)}`]), data: [data], runDir: b, stopAt: 3, ...quiet });
  const ck = await loadCheckpointFile(path.join(b, 'checkpoints', 'latest.pt'));
  const loader = JSON.parse(String((ck.raw as Map<string, Map<string, unknown>>).get('misfm')!.get('loader'))) as { patch: { round: number } | null };
  await trainVista3d({ config: config([...opts, `output.dir=${JSON.stringify(b)}`]), data: [data], runDir: b, resume: true, ...quiet });
  assert.deepEqual(losses(b), losses(a));
  assert.ok(loader.patch === null || loader.patch.round > 0, 'the saved position carries the click round');
});

test('stage 3 from the stage-1 checkpoint trains only up_layers_auto and the class head; few-shot transfer to a held-out class', async () => {
  const s1 = path.join(tmp, 's1', 'checkpoints', 'latest.pt');
  const run = path.join(tmp, 's3');
  await trainVista3d({ config: config(['vista3d.stage=3', 'training.iterations=4', 'training.validEvery=4', 'vista3d.holdOut=[3]', `training.initCheckpoint=${JSON.stringify(s1)}`, `output.dir=${JSON.stringify(run)}`]), data: [data], runDir: run, ...quiet });
  const before = (await loadCheckpointFile(s1)).stateDict, after3 = (await loadCheckpointFile(path.join(run, 'checkpoints', 'latest.pt'))).stateDict;
  let changed = 0, frozen = 0;
  for (const [k, t] of before) {
    const same = Buffer.compare(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength), Buffer.from(after3.get(k)!.data.buffer, after3.get(k)!.data.byteOffset, after3.get(k)!.data.byteLength)) === 0;
    if (k.startsWith('image_encoder.up_layers_auto.') || k.startsWith('class_head.')) { if (!same) changed++; } else { frozen++; assert.ok(same, `${k} is frozen in stage 3`); }
  }
  assert.ok(frozen > 50 && changed > 10, `${frozen} frozen, ${changed} changed`);
  // Transfer: stage 4 on the held-out spleen alone from one case, from the stage-3 weights.
  const t = path.join(tmp, 'transfer');
  const r = await trainVista3d({ config: config(['vista3d.stage=4', 'training.iterations=12', 'training.validEvery=12', 'vista3d.classes=[3]', `training.initCheckpoint=${JSON.stringify(path.join(run, 'checkpoints', 'latest.pt'))}`, `output.dir=${JSON.stringify(t)}`]), data: [data], runDir: t, validCases: ['b'], ...quiet });
  assert.deepEqual(r.labelSet, [3]);
  const l = losses(t);
  assert.ok(l[l.length - 1]! < l[0]!, `transfer loss ${l[0]} -> ${l[l.length - 1]}`);
  const v = recordsOf(readMetricsLog(t), 'valid')[0]!;
  assert.deepEqual(Object.keys(v).filter((k) => k.startsWith('dice_')), ['dice_spleen']);
});

test('misfm train --nproc 2 (VISTA3D stage 3 from the stage-1 checkpoint): two ranks, frozen parts bit for bit, validation reduced over ranks', { timeout: 240_000 }, () => {
  const s1 = path.join(tmp, 's1', 'checkpoints', 'latest.pt');
  const run = path.join(tmp, 'ddp');
  const sets = [...TINY, 'vista3d.stage=3', 'training.validEvery=4', 'training.saveEvery=4', `training.initCheckpoint=${JSON.stringify(s1)}`].flatMap((x) => ['--set', x]);
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin/misfm.js'), 'train', '--preset', 'vista3d-small', '--nproc', '2', '--data', data, '--out', run, '--iterations', '4', '--valid', 'b', '--quiet', ...sets],
    { encoding: 'utf8', env: { ...process.env, MISFM_NUM_THREADS: '1', MISFM_DIST_TIMEOUT_MS: '60000' } });
  assert.equal(r.status, 0, r.stderr);
  const log = readMetricsLog(run);
  assert.equal(recordsOf(log, 'distributed')[0]?.['worldSize'], 2);
  assert.equal(recordsOf(log, 'train').length, 4);
  const valid = recordsOf(log, 'valid')[0]!;
  assert.ok(typeof valid['dice_liver'] === 'number' && typeof valid['dice_spleen'] === 'number', JSON.stringify(valid));
  return Promise.all([loadCheckpointFile(s1), loadCheckpointFile(path.join(run, 'checkpoints', 'latest.pt'))]).then(([a, b]) => {
    let changed = 0;
    for (const [k, t] of a.stateDict) {
      const u = b.stateDict.get(k)!;
      const same = Buffer.compare(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength), Buffer.from(u.data.buffer, u.data.byteOffset, u.data.byteLength)) === 0;
      if (k.startsWith('image_encoder.up_layers_auto.') || k.startsWith('class_head.')) { if (!same) changed++; } else assert.ok(same, `${k} is frozen in stage 3, also across ranks`);
    }
    assert.ok(changed > 10, `${changed} trained tensors changed`);
  });
});

test('datasets with their own labels: per-case maps, per-dataset label sets, and a dataset naming no case refused', async () => {
  // Case b's labels come from another "dataset": its value 1 is the aorta (6), its value 3 is not annotated.
  const ds = 'vista3d.datasets=[{"cases":["b*"],"labelMap":{"1":6}}]';
  const cases = readyCases(data, { needLabels: true });
  const cl = vista3dCaseLabels(config([ds]), cases, ['a', 'b']);
  assert.deepEqual([cl.get('a')!.dataset, cl.get('a')!.labelSet], [-1, [1, 3]]);
  assert.deepEqual([cl.get('b')!.dataset, cl.get('b')!.labelSet, cl.get('b')!.map.get(1), cl.get('b')!.map.get(3)], [0, [6], 6, undefined]);
  // A dataset's label set comes from its training cases only.
  assert.deepEqual(vista3dCaseLabels(config([ds]), cases, ['a']).get('b')!.labelSet, []);
  // Training on b alone clicks on the aorta of b's map (a point stage needs it in the crop), never the default's liver and spleen.
  const run = path.join(tmp, 'ds');
  const r = await trainVista3d({ config: config([ds, 'training.iterations=3', 'training.validEvery=3', `output.dir=${JSON.stringify(run)}`]), data: [data], runDir: run, validCases: ['a'], ...quiet });
  assert.deepEqual(r.labelSet, [6]);
  assert.ok(losses(run).every(Number.isFinite));
  // Without validation no case is held out for it: both datasets train, each with its own classes.
  const all = path.join(tmp, 'ds-all');
  const ra = await trainVista3d({ config: config([ds, 'vista3d.stage=3', 'vista3d.validate=false', 'training.iterations=2', `output.dir=${JSON.stringify(all)}`]), data: [data], runDir: all, ...quiet });
  assert.deepEqual([ra.trainCases, ra.validCases, ra.labelSet], [['a', 'b'], [], [1, 3, 6]]);
  assert.throws(() => vista3dCaseLabels(config(['vista3d.datasets=[{"cases":["c"],"labelMap":{"1":6}}]']), cases, ['a', 'b']),
    (e: unknown) => e instanceof MisfmError && /datasets\[0\] \(cases c\) names no case of the cache; its cases are a, b/.test(e.message));
  for (const [bad, re] of [
    ['[{"cases":["b"]}]', /datasets\[0\]: needs a labelTable or a labelMap/],
    ['[{"cases":[],"labelMap":{"1":6}}]', /datasets\[0\]\.cases/],
    ['[{"cases":["b"],"labelMap":{"1":6},"table":"x"}]', /datasets\[0\]\.table: unknown key/],
    ['{"cases":["b"]}', /datasets: must be a list/],
  ] as const) assert.throws(() => config([`vista3d.datasets=${bad}`]), (e: unknown) => e instanceof ConfigError && re.test(e.message), bad);
});

test('a cache not prepared in RAS and a label set with no class are refused with one clear line', async () => {
  const lps = cache(path.join(tmp, 'lps'), 'LPS');
  await assert.rejects(trainVista3d({ config: config(['training.iterations=1', `output.dir=${JSON.stringify(path.join(tmp, 'x'))}`]), data: [lps], runDir: path.join(tmp, 'x'), ...quiet }),
    (e: unknown) => e instanceof MisfmError && /--orientation RAS/.test(e.message) && /manifest\.json/.test(e.message));
  await assert.rejects(trainVista3d({ config: config(['training.iterations=1', 'vista3d.classes=[6]', `output.dir=${JSON.stringify(path.join(tmp, 'y'))}`]), data: [data], runDir: path.join(tmp, 'y'), ...quiet }),
    (e: unknown) => e instanceof MisfmError && /no training label maps onto a VISTA3D class/.test(e.message));
});

test('misfm train: a bad --stage, or --stage without VISTA3D, is one error line and writes nothing', () => {
  const run = (args: string[]) => spawnSync(process.execPath, [path.join(repoRoot, 'bin/misfm.js'), 'train', ...args], { encoding: 'utf8', env: { ...process.env, MISFM_NUM_THREADS: '1' } });
  for (const [args, re] of [
    [['--preset', 'vista3d-small', '--stage', '5'], /--stage must be 1, 2, 3 or 4/],
    [['--preset', 'vista3d-small', '--stage', 'two'], /--stage must be 1, 2, 3 or 4/],
    [['--preset', 'small-finetune', '--stage', '2'], /VISTA3D options, but model\.name is 'pctnet'/],
    [['--preset', 'vista3d-small', '--hold-out', 'livr'], /--hold-out: unknown class 'livr'/],
  ] as const) {
    const out = path.join(tmp, `bad-${args.join('')}`);
    const r = run(['--data', data, '--out', out, ...args]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.equal(existsSync(out), false, 'nothing written');
  }
});
