/**
 * `misfm segment`: automatic classes, clicks given inline, in a file and in world coordinates,
 * a base label map, and bad prompts (unknown class, point outside the image, malformed points file,
 * checkpoint of another network) failing with one line and writing nothing.
 */
import { native } from '../../src/engine/native.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { runSegment } from '../../src/cli/commands/segment.js';
import { readImage } from '../../src/io/image/index.js';
import { voxelToWorld } from '../../src/io/volume.js';
import { fixturesDir, repoRoot } from '../helpers.js';
import { tempDir, writeVolume } from './helpers.js';
import { vistaDir } from '../models/vista3d-helpers.js';

const CKPT = path.join(vistaDir, 'state_dict.pt');
const quiet = { write: (): boolean => true };
const SMALL = ['--roi', '16,24,32'];

async function setup(): Promise<{ dir: string; img: string }> {
  const dir = tempDir('segment');
  const img = path.join(dir, 'ct.nii.gz');
  await writeVolume(img, [20, 30, 36], (i, j, k) => ((i * 37 + j * 11 + k * 7) % 200) * 8 - 800, { spacing: [1.5, 1.5, 1.5], origin: [5, -7, 100] });
  return { dir, img };
}

test('automatic classes then clicks: label map on the input grid with class-table values and a sidecar naming them', async () => {
  const { dir, img } = await setup();
  try {
    const out = path.join(dir, 'seg.nii.gz');
    const r = await runSegment(['--model', CKPT, '--input', img, '--output', out, '--classes', 'liver,spleen', '--point', 'liver:+10,15,20', '--point', 'liver:-11,16,21', ...SMALL], quiet);
    const seg = await readImage(out);
    const src = await readImage(img);
    assert.deepEqual([seg.size, seg.spacing, seg.origin], [src.size, src.spacing, src.origin]);
    assert.ok([...new Set(seg.data)].every((v) => [0, 1, 3].includes(v)));
    const side = JSON.parse(fs.readFileSync(r.sidecar, 'utf8')) as { classes: Record<string, string>; clicks: unknown[] };
    for (const [v, n] of Object.entries(side.classes)) assert.equal(n, { 1: 'liver', 3: 'spleen' }[v]);
    assert.equal(side.clicks.length, 2);
    // The same clicks from a file in world coordinates give the same map, starting from the automatic result as --base.
    const pf = path.join(dir, 'points.json');
    const w1 = voxelToWorld(src, [10, 15, 20]), w2 = voxelToWorld(src, [11, 16, 21]);
    fs.writeFileSync(pf, JSON.stringify({ points: [{ class: 'liver', point: w1 }, { class: 1, positive: false, point: w2 }] }));
    const autoOut = path.join(dir, 'auto.nii.gz');
    await runSegment(['--model', CKPT, '--input', img, '--output', autoOut, '--classes', 'liver,spleen', ...SMALL], quiet);
    const out2 = path.join(dir, 'seg2.nii.gz');
    await runSegment(['--model', CKPT, '--input', img, '--output', out2, '--points', pf, '--world', '--base', autoOut, ...SMALL], quiet);
    assert.deepEqual(Array.from((await readImage(out2)).data), Array.from(seg.data));
  } finally { fs.rmSync(dir, { recursive: true, force: true }); }
});

test('bad prompts: one clear line, nothing written', async () => {
  const { dir, img } = await setup();
  try {
    const out = path.join(dir, 'bad.nii.gz');
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(bad, '{"points": [{"class": "liver", "point": [1, 2]}]}');
    const notJson = path.join(dir, 'nj.json');
    fs.writeFileSync(notJson, '[{"class": "liver", ');
    const cases: [string[], RegExp][] = [
      [['--classes', 'livr'], /unknown class 'livr' \(did you mean 'liver'\?\)/],
      [['--point', 'pancreaz:+1,2,3'], /--point 'pancreaz:\+1,2,3': unknown class 'pancreaz'/],
      [['--point', 'liver:+20,2,3'], /--point 'liver:\+20,2,3': \(20,2,3\) is outside the image \(size 20x30x36\)/],
      [['--point', 'liver:+1,2,3', '--world'], /is outside the image/],
      [['--point', 'liver+1,2,3'], /is not CLASS:\+X,Y,Z/],
      [['--points', bad], /point 1 of .*bad\.json: "point" must be three numbers/],
      [['--points', notJson], /cannot read the points file/],
      [['--classes', 'liver', '--model', path.join(fixturesDir, 'pctnet_small', 'state_dict.pt')], /is not a VISTA3D checkpoint \(the weights are a pctnet network\)/],
      [['--classes', 'liver', '--device', 'gpu'], /device must be 'cpu', 'cuda' or 'cuda:N', got 'gpu'/],
      ...(native().info().cudaAvailable ? [] : [[['--classes', 'liver', '--device', 'cuda'], /device 'cuda' requested but this build of the engine has no CUDA/]] as [string[], RegExp][]),
    ];
    for (const [extra, re] of cases) {
      const argv = ['--model', CKPT, '--input', img, '--output', out, ...SMALL, ...extra];
      await assert.rejects(runSegment(argv, quiet), (e: Error) => re.test(e.message) && !e.message.includes('\n'), `${extra.join(' ')}`);
      assert.deepEqual(fs.readdirSync(dir).sort(), ['bad.json', 'ct.nii.gz', 'nj.json'], `nothing written for ${extra.join(' ')}`);
    }
    // Through the real CLI: exit code 2 and one line on stderr.
    const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'misfm.js'), 'segment', '--model', CKPT, '--input', img, '--output', out, '--classes', 'nope'], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /misfm segment: error: unknown class 'nope'/);
  } finally { fs.rmSync(dir, { recursive: true, force: true }); }
});
