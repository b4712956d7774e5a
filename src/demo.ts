/**
 * The default job (`misfm demo`, the README's first command): the whole MIS-FM story on the
 * bundled real CT sample, sized for a 2-core CPU: Volume Fusion pretraining on the unlabelled scans,
 * fine-tuning from those weights on the labelled abdomen CT, sliding-window prediction and
 * evaluation. Those stages are a pipeline check: their budget is too small to learn anything.
 * The last stage shows what the pipeline gives with a real budget: the bundled model (trained
 * with the same commands for about 1.5 h, models/pctnet-small-abdomen8) segments a held-out
 * DICOM series it never saw, scored against that series' labels. Every stage writes to its own
 * folder under `out`.
 */
import path from 'node:path';
import { existsSync, mkdirSync } from 'node:fs';
import { packageRoot } from './engine/native.js';
import { presetConfig, applyOverrides, type RunConfig } from './config/index.js';
import { pretrain } from './ssl/pretrain.js';
import { finetune } from './train/finetune.js';
import { loadModelForInference } from './infer/model.js';
import { predictCase } from './infer/predict.js';
import { readImage } from './io/image/index.js';
import { evaluateCases } from './metrics/evaluate.js';
import { formatSummary, writeReportJson, writeReportCsv } from './metrics/report.js';
import { plotRun } from './cli/commands/plot.js';
import { MisfmError } from './util/errors.js';
import { alignToGrid } from './io/image/align.js';

/** Organs of the bundled labels used by the demo (TotalSegmentator v2 values). */
export const DEMO_CLASSES = { values: [1, 2, 3, 5, 6], names: ['spleen', 'kidney_right', 'kidney_left', 'liver', 'stomach'] };

export interface DemoOptions {
  out: string;
  pretrainIterations: number;
  finetuneIterations: number;
  quiet?: boolean;
  log?: (line: string) => void;
}

export interface DemoResult {
  pretrainRun: string;
  finetuneRun: string;
  prediction: string;
  reportJson: string;
  table: string;
  /** The bundled model on the held-out series. */
  heldout: { model: string; series: string; prediction: string; reportJson: string; table: string; seconds: number };
  seconds: number;
}

/** The model bundled with the package (trained by experiments/bundled-model.sh). */
export const BUNDLED_MODEL = path.join('models', 'pctnet-small-abdomen8', 'model.pt');

/**
 * Segment the bundled held-out DICOM series with the bundled model and score it against the
 * series' labels (stored in another voxel order: they are aligned to the prediction's grid).
 */
export async function scoreBundledModel(outDir: string, log: (l: string) => void): Promise<DemoResult['heldout']> {
  const t0 = Date.now();
  const root = packageRoot();
  const model = path.join(root, BUNDLED_MODEL);
  const series = path.join(root, 'data', 'sample', 'heldout', 'ct_dicom');
  const labelsFile = path.join(root, 'data', 'sample', 'heldout', 'labels.nii.gz');
  for (const f of [model, series, labelsFile]) if (!existsSync(f)) throw new MisfmError('DATA', 'part of the bundled model or held-out sample is missing', { file: f });
  const bundle = await loadModelForInference(model);
  const values = (bundle.labelValues ?? []).slice(1);
  const names = (bundle.classNames ?? []).slice(1);
  if (values.length === 0 || names.length !== values.length) {
    bundle.model.dispose();
    throw new MisfmError('DATA', 'the bundled model records no class values and names', { file: model });
  }
  mkdirSync(outDir, { recursive: true });
  const prediction = path.join(outDir, 'heldout_ct.nii.gz');
  const pr = await predictCase(bundle, series, prediction);
  bundle.model.dispose();
  log(`      ${prediction} (${(pr.timings.total / 1000).toFixed(1)} s, ${pr.windowsComputed} windows)`);
  const { reportJson, table } = await scoreLabelMap(prediction, labelsFile, { values, names }, outDir);
  return { model, series, prediction, reportJson, table, seconds: (Date.now() - t0) / 1000 };
}

/**
 * Dice/ASSD/HD95 of a predicted label map against a label file, written as evaluation.json/.csv
 * in `outDir`. The labels may be stored in another voxel order: they are re-indexed onto the
 * prediction's grid (the held-out series' labels are).
 */
async function scoreLabelMap(prediction: string, labelsFile: string, classes: { values: number[]; names: string[] }, outDir: string): Promise<{ reportJson: string; table: string }> {
  const [pv, raw] = await Promise.all([readImage(prediction), readImage(labelsFile)]);
  const gv = alignToGrid(raw, pv, ['labels', 'prediction']);
  const [sx, sy, sz] = pv.spacing;
  const name = path.basename(prediction).replace(/\.nii(\.gz)?$/, '');
  const report = evaluateCases([{ name, pred: pv.data as Uint8Array, gt: gv.data as Uint8Array, shape: [pv.size[2], pv.size[1], pv.size[0]], spacing: [sz, sy, sx] }],
    { labels: classes.values, names: classes.names, metrics: ['dice', 'assd', 'hd95'] });
  const reportJson = path.join(outDir, 'evaluation.json');
  writeReportJson(reportJson, report);
  writeReportCsv(path.join(outDir, 'evaluation.csv'), report);
  return { reportJson, table: formatSummary(report) };
}

/** The demo's pretraining config: the small preset with the given budget, validated twice. */
export function demoPretrainConfig(iterations: number, runDir: string): RunConfig {
  const vEvery = Math.max(1, Math.floor(iterations / 2));
  return applyOverrides(presetConfig('small'), [
    `training.iterations=${iterations}`, `training.validEvery=${vEvery}`, `training.saveEvery=${vEvery}`,
    `training.scheduler.stepSize=${Math.max(vEvery, iterations)}`, `output.dir=${JSON.stringify(runDir)}`,
  ]);
}

/**
 * The demo's fine-tuning config: the small fine-tuning preset on the demo organs, initialised from
 * the pretraining checkpoint. `finetune` adopts that checkpoint's intensity normalisation and
 * spacing (the preset's z-score, or the abdomen CT's own plan, would feed the pretrained network
 * inputs it never saw).
 */
export function demoFinetuneConfig(iterations: number, runDir: string, initCheckpoint: string): RunConfig {
  return applyOverrides(presetConfig('small-finetune'), [
    `data.labels=${JSON.stringify(DEMO_CLASSES)}`, `model.classNum=${DEMO_CLASSES.values.length + 1}`,
    `training.iterations=${iterations}`, `training.validEvery=${iterations}`, `training.saveEvery=${iterations}`,
    `training.initCheckpoint=${JSON.stringify(initCheckpoint)}`, 'data.foregroundOversample=0.66',
    `output.dir=${JSON.stringify(runDir)}`,
  ]);
}

export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const t0 = Date.now();
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const sample = path.join(packageRoot(), 'data', 'sample');
  const images = path.join(sample, 'images');
  const abdomen = path.join(images, 'abdomen_ct.nii.gz');
  const labels = path.join(sample, 'labels');
  if (!existsSync(abdomen)) throw new MisfmError('DATA', 'the bundled sample is missing (data/sample/images/abdomen_ct.nii.gz)', { file: sample });
  const out = path.resolve(o.out);
  mkdirSync(out, { recursive: true });
  const q = o.quiet ?? false;

  log(`\n[1/5] Volume Fusion pretraining on ${images} (${o.pretrainIterations} iterations, small PCT-Net)`);
  const pretrainRun = path.join(out, 'pretrain');
  const pcfg = demoPretrainConfig(o.pretrainIterations, pretrainRun);
  const p = await pretrain({ config: pcfg, data: [images], runDir: pretrainRun, quiet: q, log });
  log(`      pseudo-segmentation Dice ${p.best?.score.toFixed(4) ?? 'n/a'}; loss ${p.lastLoss.toFixed(4)}; ${p.secondsPerIteration.toFixed(1)} s/iteration`);

  log(`\n[2/5] fine-tuning on the labelled abdomen CT (${DEMO_CLASSES.names.join(', ')}; ${o.finetuneIterations} iterations, from the pretrained weights)`);
  const finetuneRun = path.join(out, 'finetune');
  const fcfg = demoFinetuneConfig(o.finetuneIterations, finetuneRun, p.checkpoints.best ?? p.checkpoints.latest);
  const f = await finetune({ config: fcfg, data: [abdomen], labelsDir: labels, runDir: finetuneRun, quiet: q, log });

  log('\n[3/5] sliding-window prediction');
  const bundle = await loadModelForInference(f.checkpoints.best ?? f.checkpoints.latest);
  const predDir = path.join(out, 'predictions');
  mkdirSync(predDir, { recursive: true });
  const prediction = path.join(predDir, 'abdomen_ct.nii.gz');
  const pr = await predictCase(bundle, abdomen, prediction);
  bundle.model.dispose();
  log(`      ${prediction} (${(pr.timings.total / 1000).toFixed(1)} s, ${pr.windowsComputed} windows)`);

  log('\n[4/5] evaluation against the TotalSegmentator labels');
  const { reportJson, table } = await scoreLabelMap(prediction, path.join(labels, 'abdomen_ct.nii.gz'), DEMO_CLASSES, out);
  plotRun(pretrainRun);
  plotRun(finetuneRun);

  log(`\n[5/5] the bundled model (${BUNDLED_MODEL}) on the held-out DICOM series data/sample/heldout/ct_dicom`);
  const heldout = await scoreBundledModel(path.join(out, 'heldout'), log);
  return { pretrainRun, finetuneRun, prediction, reportJson, table, heldout, seconds: (Date.now() - t0) / 1000 };
}
