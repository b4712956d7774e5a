import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkLabelValues } from '../../src/train/label-check.js';
import { applyOverrides, presetConfig } from '../../src/config/index.js';
import type { CachedCase } from '../../src/data/manifest.js';
import { MisfmError } from '../../src/util/errors.js';

const kase = (id: string, values: number[]): CachedCase => ({
  id, imageFile: `/cache/${id}.img`, labelFile: `/cache/${id}.lab`, sourceLabel: `/data/labels/${id}.nii.gz`, modality: 'ct',
  image: {} as CachedCase['image'],
  label: { stats: { classes: Object.fromEntries(values.map((v) => [String(v), 10])), foregroundFraction: 0.1 } } as unknown as CachedCase['label'],
});

test('label values the network has no class for are refused naming the source label file; unnamed values are reported', () => {
  const three = applyOverrides(presetConfig('small-finetune'), ['model.classNum=3']);
  const lines = [] as string[];
  checkLabelValues(three, [kase('a', [0, 1, 2]), kase('b', [0, 2])], (l) => lines.push(l));
  assert.deepEqual(lines, []);
  assert.throws(() => checkLabelValues(three, [kase('a', [0, 1]), kase('b', [0, 1, 3, 5])], () => {}), (e: unknown) =>
    e instanceof MisfmError && e.code === 'DATA' && e.file === '/data/labels/b.nii.gz' &&
    /label map of case b holds value\(s\) 3, 5, but the network has 3 classes \(label values 0\.\.2\)/.test(e.message));
  // With data.labels, values it does not name become background: said in one line, not refused.
  const named = applyOverrides(presetConfig('small-finetune'), ['model.classNum=3', 'data.labels={"values":[5,7],"names":["liver","spleen"]}']);
  const notes: string[] = [];
  checkLabelValues(named, [kase('a', [0, 5, 7, 9]), kase('b', [0, 9, 11])], (l) => notes.push(l));
  assert.deepEqual(notes, [
    'note: label values 9, 11 are not among the classes [5, 7] and are trained as background (2 case(s), e.g. /data/labels/a.nii.gz)',
  ]);
  const many: string[] = [];
  checkLabelValues(named, [kase('a', [0, 5, ...Array.from({ length: 20 }, (_, i) => 20 + i)])], (l) => many.push(l));
  assert.equal(many.length, 1);
  assert.match(many[0]!, /label values 20, 21, .*, 31, \.\.\. \(20 values\) are not among/);
});
