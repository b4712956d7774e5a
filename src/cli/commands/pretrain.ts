/** `misfm pretrain`: Volume Fusion self-supervised pretraining. */
import { parseArgs } from 'node:util';
import type { Command } from '../command.js';
import { RUN_OPTIONS, resolveRunConfig } from '../run-config.js';
import { pretrain } from '../../ssl/pretrain.js';
import { MisfmError } from '../../util/errors.js';
import { positiveInt } from '../args.js';
import { spacingOverride } from './train.js';

const USAGE = `Usage: misfm pretrain --data CACHE_OR_FOLDER... --out RUN_DIR [options]

Volume Fusion pretraining (MIS-FM): fuses crops of different scans with random block-wise
coefficients and trains the network to segment the fusion levels. A raw folder (NIfTI, NRRD,
MetaImage, DICOM series) is prepared into RUN_DIR/cache first.

Options:
  --data PATH          cache folder (with manifest.json), image folder or files (repeatable)
  --out DIR            run folder: config.json, metrics.jsonl, checkpoints/{latest,best}.pt
  --config FILE        JSON / YAML run config, or a PyMIC .cfg (imported)
  --preset NAME        paper (default) | small (CPU demo: smaller network and crops)
  --set KEY=VALUE      override any config key, e.g. --set training.lr=5e-4 (repeatable)
  --iterations N       iteration budget (training.iterations)
  --spacing S          plan (default: the dataset plan's target spacing), native or X,Y,Z mm
  --valid ID,ID        held-out scan ids for the pseudo-segmentation Dice (default: ~10% by seed)
  --valid-samples N    fused validation crops (default 8; 4 for crops up to 32x64x64)
  --resume             continue the run in --out exactly where its last checkpoint left it
  --threads N          libtorch threads
  -q, --quiet          no progress bar (JSON lines are always written)`;

export const pretrainCommand: Command = {
  name: 'pretrain',
  summary: 'Volume Fusion self-supervised pretraining on unlabelled scans',
  usage: USAGE,
  async run(argv) {
    const { values } = parseArgs({ args: argv, options: { ...RUN_OPTIONS, data: { type: 'string', multiple: true }, spacing: { type: 'string' }, valid: { type: 'string' }, 'valid-samples': { type: 'string' } }, strict: true });
    if (values.data === undefined || values.data.length === 0) throw new MisfmError('ARGUMENT', '--data is required (a cache or image folder)');
    const config = resolveRunConfig(values.spacing === undefined ? values : { ...values, set: [...(values.set ?? []), `data.spacing=${spacingOverride(values.spacing)}`] }, 'paper');
    const r = await pretrain({ config, data: values.data, runDir: config.output.dir, resume: values.resume ?? false, quiet: values.quiet ?? false,
      ...(values['valid-samples'] !== undefined ? { validSamples: positiveInt('valid-samples', values['valid-samples']) } : {}),
      ...(values.valid !== undefined ? { validCases: values.valid.split(',').map((s) => s.trim()).filter((s) => s !== '') } : {}),
    });
    process.stdout.write(
      `pretraining ${r.interrupted ? 'interrupted' : r.earlyStopped ? 'stopped early' : 'finished'} at iteration ${r.iterations}` +
      ` (${r.secondsPerIteration.toFixed(2)} s/it, data wait ${(r.dataWaitFraction * 100).toFixed(1)}%)\n` +
      `  training scans ${r.trainCases}, held-out scans ${r.validCases.length}\n` +
      `  last loss ${r.lastLoss.toFixed(4)}; best validation Dice ${r.best === null ? 'n/a' : `${r.best.score.toFixed(4)} at iteration ${r.best.iteration}`}\n` +
      `  checkpoints: ${r.checkpoints.latest}${r.checkpoints.best !== null ? `, ${r.checkpoints.best}` : ''}\n` +
      `  metrics: ${r.runDir}/metrics.jsonl (plot with: misfm plot ${r.runDir})\n`);
    return r.interrupted ? 130 : 0;
  },
};
