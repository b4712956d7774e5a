import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { convertImage, readImage, assertSameGeometry } from '../../src/io/image/index.js';
import { convertCommand, runConvert } from '../../src/cli/commands/convert.js';
import { MisfmError } from '../../src/util/errors.js';
import { assertSameVoxels, dataPath, tempDir } from './image-helpers.js';

const CT02 = dataPath('02_totalseg_ct_dicom', 'uncompressed');

/** Run the command with its output captured. */
async function runCli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [], err: string[] = [];
  const code = await runConvert(argv, (s) => out.push(s), (s) => err.push(s));
  return { code, out: out.join(''), err: err.join('') };
}

test('convert: DICOM folder -> .nii.gz -> .nrrd keeps voxels and geometry', async () => {
  const dir = tempDir('conv');
  try {
    const nii = path.join(dir, 'out', 'ct.nii.gz'), nrrd = path.join(dir, 'ct.nrrd');
    const src = await convertImage(CT02, nii);
    await convertImage(nii, nrrd);
    const a = await readImage(nii), b = await readImage(nrrd);
    for (const [v, name] of [[a, nii], [b, nrrd]] as const) {
      assertSameVoxels(v.data, src.data, name);
      assertSameGeometry(src, v, ['DICOM series', name], { origin: 1e-4, spacing: 1e-7, direction: 1e-7 });
    }
    assert.deepEqual(b.origin, [-249.51171875, -437.51171875, -804.5]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('misfm convert: --list prints the series table; IN OUT converts; bad arguments are ARGUMENT errors', async () => {
  const list = await runCli(['--list', CT02]);
  assert.equal(list.code, 0);
  const lines = list.out.trim().split('\n');
  assert.equal(lines.length, 2, list.out);
  assert.match(lines[0]!, /^series \(id\)\s+mod\s+files\s+size\s+spacing mm\s+description$/);
  assert.match(lines[1]!, /^2\.25\.158939773944111998292836504485082615244\s+CT\s+20\s+512x512x20\s+0\.977x0\.977x2\s+CT Body 3\.0$/);
  const dir = tempDir('cli');
  try {
    const out = path.join(dir, 'labels.mha');
    const res = await runCli([dataPath('05_dcmqi_ct_3slice', 'liver_spine_seg.nrrd'), out, '--dtype', 'uint8']);
    assert.equal(res.code, 0);
    assert.match(res.out, /labels\.mha: 512x512x3 voxels, spacing 0\.8105x0\.8105x1 mm, orientation LPS, .*uint8/);
    const v = await readImage(out);
    assert.ok(v.data instanceof Uint8Array);
    await assert.rejects(convertCommand.run(['only-one']), (e: unknown) => e instanceof MisfmError && e.code === 'ARGUMENT');
    await assert.rejects(convertCommand.run(['a.nii', 'b.nii', '--dtype', 'complex']), (e: unknown) => e instanceof MisfmError && /--dtype complex/.test(e.message));
    await assert.rejects(convertCommand.run([path.join(dir, 'missing.nii'), out]), (e: unknown) => e instanceof MisfmError && e.code === 'IMAGE_IO');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('read timings of the real data (reported for the benchmark notes)', async (t) => {
  const ms = async (p: string): Promise<number> => {
    const t0 = performance.now();
    await readImage(p);
    return performance.now() - t0;
  };
  await ms(dataPath('01_totalseg_abdomen_ct', 'ct_sm.nii.gz')); // warm up the module import
  const r = {
    '01/ct.nii.gz': await ms(dataPath('01_totalseg_abdomen_ct', 'ct.nii.gz')),
    '03/ct.nii.gz': await ms(dataPath('03_totalseg_chest_cta', 'ct.nii.gz')),
    '02 DICOM 20 slices': await ms(CT02),
  };
  t.diagnostic(Object.entries(r).map(([k, v]) => `${k}: ${v.toFixed(0)} ms`).join(', '));
  assert.ok(Object.values(r).every((v) => v > 0));
});
