/** predict's warnings when an input is far from what the model saw (pure rules). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeCasePlan, predictionWarnings, type WarningInputs } from '../../src/infer/case-plan.js';

const base: WarningInputs = {
  inputSpacing: [1, 1, 2], modelSpacing: [1.5, 1.5, 1.5], checkpointKind: 'misfm',
  training: { spacing: [1.5, 1.5, 1.5], spacingRange: { min: [0.8, 0.8, 1], max: [2, 2, 3] }, modalities: { ct: 3, other: 0 } },
  inputModality: 'ct', workShape: [40, 200, 200], window: [32, 64, 64],
};

test('no warning when the input is like the training data; each rule fires on its own', () => {
  assert.deepEqual(predictionWarnings(base), []);
  assert.match(predictionWarnings({ ...base, inputSpacing: [0.7, 0.7, 2] }).join(), /more than 2x from the model's 1\.5,1\.5,1\.5 mm on axis x,y/);
  assert.deepEqual(predictionWarnings({ ...base, inputSpacing: [0.75, 0.75, 3] }), [], 'exactly 2x is not more than 2x');
  assert.match(predictionWarnings({ ...base, inputModality: 'other' }).join(), /looks like a non-CT image, but the model was trained on CT only/);
  assert.match(predictionWarnings({ ...base, training: { ...base.training!, modalities: { ct: 0, other: 2 } } }).join(), /looks like CT \(HU\), but the model was trained on non-CT images only/);
  assert.match(predictionWarnings({ ...base, workShape: [20, 200, 50] }).join(), /smaller than one window \(32x64x64\) along D,W/);
});

test('native-spacing prediction: against the training spacing, else the training range, else a note that none is recorded', () => {
  const native = { ...base, modelSpacing: null };
  assert.match(predictionWarnings({ ...native, inputSpacing: [0.5, 0.5, 2] }).join(), /trained at 1\.5,1\.5,1\.5 mm but predicts at the input's own spacing 0\.5,0\.5,2 mm, more than 2x apart on axis x,y/);
  const ranged = { ...native, training: { ...base.training!, spacing: null } };
  assert.deepEqual(predictionWarnings({ ...ranged, inputSpacing: [0.5, 0.5, 2] }), [], 'within 2x of the range (0.8 mm)');
  assert.match(predictionWarnings({ ...ranged, inputSpacing: [0.3, 0.5, 7] }).join(), /outside the training data's 0\.8,0\.8,1\.\.2,2,3 mm on axis x,z/);
  assert.match(predictionWarnings({ ...native, training: null, checkpointKind: 'pytorch' }).join(), /a pytorch checkpoint records no spacing: predicting at the input's own spacing 1,1,2 mm \(give --spacing/);
  assert.match(predictionWarnings({ ...native, training: null }).join(), /the checkpoint records no training spacing/);
});

test('the per-case line', () => {
  assert.equal(describeCasePlan({ inputSpacing: [0.81, 0.81, 1], inputSize: [512, 512, 3], modelSpacing: [2.25, 2.25, 2.25], workSize: [184, 184, 1], window: [32, 64, 64], windows: 25, warnings: [] }),
    '0.81,0.81,1 mm -> 2.25,2.25,2.25 mm, 512x512x3 -> 184x184x1 voxels, 25 windows of 32x64x64');
  assert.equal(describeCasePlan({ inputSpacing: [1, 1, 1], inputSize: [8, 8, 8], modelSpacing: null, workSize: [8, 8, 8], window: [8, 8, 8], windows: 1, warnings: [] }),
    '1,1,1 mm (native), 8x8x8 -> 8x8x8 voxels, 1 window of 8x8x8');
});
