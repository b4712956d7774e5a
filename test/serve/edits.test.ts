/** The pieces under the review server: edit history, brush footprints, path confinement, case listing. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LabelHistory } from '../../src/serve/labels.js';
import { strokeVoxels } from '../../src/serve/brush.js';
import { PathError, resolveInside } from '../../src/serve/paths.js';
import { listServedCases, segPathFor } from '../../src/serve/cases.js';
import { tempDir } from '../infer/helpers.js';

test('LabelHistory: edits are diffs; undo and redo restore exact states; a new edit clears redo', () => {
  const h = new LabelHistory(new Uint8Array(10));
  assert.equal(h.commit('auto', [0, 1, 1, 0, 2, 0, 0, 0, 0, 3]), 4);
  const s1 = h.data.slice();
  assert.equal(h.patch('brush', [0, 1, 2], 5), 3);
  assert.deepEqual(Array.from(h.data), [5, 5, 5, 0, 2, 0, 0, 0, 0, 3]);
  assert.equal(h.patch('brush', [0, 1], 5), 0, 'no change, no edit');
  assert.equal(h.undoDepth, 2);
  assert.equal(h.undo()?.kind, 'brush');
  assert.deepEqual(h.data, s1);
  assert.equal(h.undo()?.kind, 'auto');
  assert.ok(h.data.every((v) => v === 0));
  assert.equal(h.undo(), null);
  h.redo();
  assert.deepEqual(h.data, s1);
  h.patch('eraser', [9], 0);
  assert.equal(h.canRedo, false, 'a new edit drops the redo stack');
  assert.equal(h.version, 6);
  assert.deepEqual([...h.counts().entries()].sort((a, b) => a[0] - b[0]), [[0, 7], [1, 2], [2, 1]]);
  assert.throws(() => h.patch('brush', [0], 300), /label value 300 does not fit the label map/);
  assert.throws(() => h.commit('auto', [1, 2]), /label map has 2 voxels, expected 10/);
  const limited = new LabelHistory(new Uint16Array(3), 2);
  for (let i = 1; i <= 3; i++) limited.patch('b', [0], 300 + i);
  assert.equal(limited.undoDepth, 2);
  limited.undo(); limited.undo();
  assert.equal(limited.data[0], 301, 'the oldest edit beyond the limit cannot be undone');
});

test('strokeVoxels: discs in one plane, balls, clipped at the border, unique and sorted', () => {
  const size: [number, number, number] = [10, 10, 10];
  assert.equal(strokeVoxels(size, [[5, 5, 5]], 1, 'z').length, 5);
  assert.equal(strokeVoxels(size, [[5, 5, 5]], 1, 'ball').length, 7);
  assert.equal(strokeVoxels(size, [[5, 5, 5]], 0, 'ball').length, 1);
  const disc = strokeVoxels(size, [[5, 5, 5]], 2, 'x');
  assert.equal(disc.length, 13);
  assert.ok(Array.from(disc).every((i) => i % 10 === 5), 'an x-disc keeps x fixed');
  const corner = strokeVoxels(size, [[0, 0, 0]], 1, 'ball');
  assert.deepEqual(Array.from(corner), [0, 1, 10, 100]);
  const line = strokeVoxels(size, [[2, 5, 5], [3, 5, 5]], 1, 'z');
  assert.equal(line.length, 8);
  assert.deepEqual(Array.from(line), [...line].sort((a, b) => a - b));
  assert.throws(() => strokeVoxels(size, [[1, 1, 1]], 100, 'ball'), /brush radius must be 0\.\.64/);
});

test('resolveInside and listServedCases stay inside the root', () => {
  const dir = tempDir('serve-paths');
  try {
    const root = path.join(dir, 'root');
    fs.mkdirSync(path.join(root, 'dcm'), { recursive: true });
    fs.mkdirSync(path.join(root, '.hidden'));
    fs.writeFileSync(path.join(root, 'a.nii.gz'), 'x');
    fs.writeFileSync(path.join(root, 'a.seg.nii.gz'), 'x');
    fs.writeFileSync(path.join(root, '.hidden', 'c.nii.gz'), 'x');
    const dcm = Buffer.alloc(200); dcm.write('DICM', 128, 'latin1');
    fs.writeFileSync(path.join(root, 'dcm', 'IM0001'), dcm);
    fs.writeFileSync(path.join(dir, 'out.nii.gz'), 'x');
    fs.symlinkSync(path.join(dir, 'out.nii.gz'), path.join(root, 'link.nii.gz'));
    fs.symlinkSync(path.join(root, 'a.nii.gz'), path.join(root, 'inner.nii.gz'));
    const real = fs.realpathSync(root);
    assert.equal(resolveInside(real, 'a.nii.gz'), path.join(real, 'a.nii.gz'));
    assert.equal(resolveInside(real, 'inner.nii.gz'), path.join(real, 'a.nii.gz'), 'a link inside the root is fine');
    for (const [rel, status] of [['../out.nii.gz', 403], ['/etc/passwd', 403], ['link.nii.gz', 403], ['a\\b', 403], ['nope', 404], ['', 403]] as const) {
      assert.throws(() => resolveInside(real, rel), (e: unknown) => e instanceof PathError && e.status === status, rel);
    }
    assert.deepEqual(listServedCases(real).map((c) => `${c.id}:${c.kind}:${c.saved}`), ['a.nii.gz:image:true', 'dcm:dicom:false', 'inner.nii.gz:image:false']);
    assert.deepEqual(segPathFor('/d/x.nrrd', 'image'), { labels: '/d/x.seg.nii.gz', record: '/d/x.seg.json' });
    assert.deepEqual(segPathFor('/d/series', 'dicom'), { labels: '/d/series.seg.nii.gz', record: '/d/series.seg.json' });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
