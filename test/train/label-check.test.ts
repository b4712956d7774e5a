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
  // With data.labels, values it does not name become background: said once per value, not refused.
  const named = applyOverrides(presetConfig('small-finetune'), ['model.classNum=3', 'data.labels={"values":[5,7],"names":["liver","spleen"]}']);
  const notes: string[] = [];
  checkLabelValues(named, [kase('a', [0, 5, 7, 9]), kase('b', [0, 9, 11])], (l) => notes.push(l));
  assert.deepEqual(notes, [
    'note: label value 9 is not among the classes [5, 7] and is trained as background (2 case(s), e.g. /data/labels/a.nii.gz)',
    'note: label value 11 is not among the classes [5, 7] and is trained as background (1 case(s), e.g. /data/labels/b.nii.gz)',
  ]);
});
