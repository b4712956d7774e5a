/** Helpers for the prediction tests: a threshold "network", bundles, tiny misfm checkpoints, images on disk. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cat } from '../../src/engine/creation.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { Module } from '../../src/nn/module.js';
import type { SegmentationNetwork } from '../../src/models/types.js';
import { createModel } from '../../src/models/registry.js';
import { resolveModelConfig } from '../../src/models/config.js';
import { presetConfig } from '../../src/config/defaults.js';
import { saveTrainingCheckpoint } from '../../src/train/state.js';
import { writeImage } from '../../src/io/image/index.js';
import type { Mat3, Vec3, Volume } from '../../src/io/volume.js';
import type { InferencePreprocess, ModelBundle } from '../../src/infer/model.js';

export function tempDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `misfm-${tag}-`));
}

/** Two classes: logits [-x, x], so the label is 1 exactly where the normalised intensity is > 0. */
export class ThresholdNet extends Module implements SegmentationNetwork {
  readonly inChannels = 1;
  readonly classNum = 2;
  readonly inputSize = null;
  readonly sizeDivisor = [1, 1, 1];
  multiscalePred = false;
  forward(x: Tensor): Tensor {
    return cat([x.neg(), x], 1);
  }
}

/** A bundle around the threshold net (no checkpoint). */
export function thresholdBundle(pre: Partial<InferencePreprocess>, window: [number, number, number] = [8, 8, 8]): ModelBundle {
  return {
    model: new ThresholdNet(),
    modelConfig: resolveModelConfig({ name: 'unet3d', inChannels: 1, classNum: 2, featureChns: [2, 4, 8, 16, 32] }),
    preprocess: { intensity: { kind: 'ct-window', window: [-1000, 1000] }, reorient: false, bodyCrop: false, spacing: null, ...pre },
    inference: { ...presetConfig('small').inference, window, batchSize: 2 },
    classNames: ['background', 'bright'],
    labelValues: null,
    device: 'cpu',
    provenance: { checkpoint: 'none', kind: 'misfm', iteration: null, configHash: '0', preprocessSource: 'test' },
  };
}

/** A misfm training checkpoint of a tiny random UNet3D (3 classes, window 16^3, zscore intensity). */
export function writeTinyCheckpoint(file: string, extra: Record<string, unknown> = {}): void {
  const config = presetConfig('small-finetune') as unknown as Record<string, unknown>;
  const modelConfig = resolveModelConfig({ name: 'unet3d', inChannels: 1, classNum: 3, featureChns: [2, 4, 8, 16, 32], dropout: [0, 0, 0, 0, 0] });
  config['model'] = modelConfig;
  (config['inference'] as Record<string, unknown>)['window'] = [16, 16, 16];
  (config['inference'] as Record<string, unknown>)['batchSize'] = 2;
  Object.assign(config, extra);
  const model = createModel(modelConfig);
  try {
    saveTrainingCheckpoint(file, { model, iteration: 7, config, loader: null, best: null, history: [] });
  } finally {
    model.dispose();
  }
}

/** Write a volume whose voxel (i,j,k) holds f(i,j,k) (int16) and return it. */
export async function writeVolume(file: string, size: Vec3, f: (i: number, j: number, k: number) => number,
  geom: { spacing?: Vec3; origin?: Vec3; direction?: Mat3 } = {}): Promise<Volume> {
  const data = new Int16Array(size[0] * size[1] * size[2]);
  let t = 0;
  for (let k = 0; k < size[2]; k++) for (let j = 0; j < size[1]; j++) for (let i = 0; i < size[0]; i++) data[t++] = f(i, j, k);
  const v: Volume = { data, size, spacing: geom.spacing ?? [1, 1, 1], origin: geom.origin ?? [0, 0, 0], direction: geom.direction ?? [1, 0, 0, 0, 1, 0, 0, 0, 1] };
  await writeImage(file, v);
  return v;
}
