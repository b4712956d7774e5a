/** `misfm pretrain`: self-supervised pretraining with the method of --method / ssl.method (Volume Fusion by default). */
import { parseArgs } from 'node:util';
import type { Command } from '../command.js';
import { RUN_OPTIONS, resolveRunConfig } from '../run-config.js';
import { pretrain } from '../../ssl/pretrain.js';
import { MisfmError } from '../../util/errors.js';
import { runWithNproc } from './launch.js';
import { joinFromEnvironment } from '../../distributed/context.js';
import { positiveInt } from '../args.js';
import { pretextMethod, pretextMethods } from '../../ssl/methods.js';
import { PRETRAIN_METHODS } from '../../config/types.js';
import { spacingOverride } from './train.js';

const USAGE = `Usage: misfm pretrain --data CACHE_OR_FOLDER... --out RUN_DIR [options]

Self-supervised pretraining on unlabelled scans. The default method is Volume Fusion (MIS-FM):
crops of different scans are fused with random block-wise coefficients and the network segments
the fusion levels. A raw folder (NIfTI, NRRD, MetaImage, DICOM series) is prepared into
RUN_DIR/cache first.

Methods (--method, config key ssl.method; any network of model.name, e.g. --set model.name=unet3d):
${pretextMethods().map((m) => `  ${m.name.padEnd(11)}${m.title}\n             (${m.reference})`).join('\n')}
--method voco also selects VoCo's optimiser: AdamW lr 1e-4, amsgrad, weight decay 0.01, linear
warmup (5000 iterations, at most 2 % of the budget) then cosine, per iteration; keys set
explicitly (training.lr, training.scheduler.*, ...) win.

Options:
  --method NAME        pretext task: ${PRETRAIN_METHODS.join(' | ')} (default volf; recorded in config.json)
  --data PATH          cache folder (with manifest.json), image folder or files (repeatable)
  --out DIR            run folder: config.json, metrics.jsonl, checkpoints/{latest,best}.pt
  --config FILE        JSON / YAML run config, or a PyMIC .cfg (imported)
  --preset NAME        paper (default) | small (CPU demo: smaller network and crops)
  --set KEY=VALUE      override any config key, e.g. --set training.lr=5e-4 (repeatable)
  --iterations N       iteration budget (training.iterations)
  --spacing S          plan (default: the dataset plan's target spacing), native or X,Y,Z mm
  --valid ID,ID        held-out scan ids for the validation (default: ~10% by seed)
  --valid-samples N    validation crops (default 8; 4 for crops up to 32x64x64): pseudo-segmentation
                       Dice for volf, the VoCo loss (no dropout, no EMA step) for voco, L1 of the
                       restored crop (and of the corrupted input) otherwise
  --resume             continue the run in --out exactly where its last checkpoint left it
  --threads N          libtorch threads
  --precision P        fp32 (default) | bf16 | auto: convolutions/matmuls in bfloat16 with fp32 norms,
                       softmax, losses, weights and optimizer state; auto = bf16 only where the CPU
                       has avx512_bf16/amx_bf16 or on CUDA (training.precision; see misfm doctor)
  --nproc N            run on N processes of this node (c10d data parallel; see misfm launch)
  -q, --quiet          no progress bar (JSON lines are always written)`;

export const pretrainCommand: Command = {
  name: 'pretrain',
  summary: 'self-supervised pretraining on unlabelled scans (Volume Fusion, Patch Swapping, Model Genesis, MIM, VoCo)',
  usage: USAGE,
  async run(argv) {
    const { values } = parseArgs({ args: argv, options: { ...RUN_OPTIONS, data: { type: 'string', multiple: true }, spacing: { type: 'string' }, valid: { type: 'string' }, 'valid-samples': { type: 'string' }, method: { type: 'string' } }, strict: true });
    const launched = await runWithNproc('pretrain', argv, values.nproc);
    if (launched !== null) return launched;
    if (values.data === undefined || values.data.length === 0) throw new MisfmError('ARGUMENT', '--data is required (a cache or image folder)');
    if (values.method !== undefined) pretextMethod(values.method);
    const set = [...(values.method !== undefined ? [`ssl.method=${values.method}`] : []), ...(values.set ?? []), ...(values.spacing !== undefined ? [`data.spacing=${spacingOverride(values.spacing)}`] : [])];
    const config = resolveRunConfig({ ...values, set }, 'paper');
    const distributed = await joinFromEnvironment();
    const r = await pretrain({ distributed, config, data: values.data, runDir: config.output.dir, resume: values.resume ?? false, quiet: values.quiet ?? false,
      ...(values['valid-samples'] !== undefined ? { validSamples: positiveInt('valid-samples', values['valid-samples']) } : {}),
      ...(values.valid !== undefined ? { validCases: values.valid.split(',').map((s) => s.trim()).filter((s) => s !== '') } : {}),
    });
    distributed?.group.destroy();
    if (distributed !== null && distributed.rank !== 0) return r.interrupted ? 130 : 0;
    const volf = config.ssl.method === 'volf';
    process.stdout.write(
      `${config.ssl.method} pretraining ${r.interrupted ? 'interrupted' : r.earlyStopped ? 'stopped early' : 'finished'} at iteration ${r.iterations}` +
      ` (${r.secondsPerIteration.toFixed(2)} s/it, data wait ${(r.dataWaitFraction * 100).toFixed(1)}%)\n` +
      `  training scans ${r.trainCases}, held-out scans ${r.validCases.length}\n` +
      `  last loss ${r.lastLoss.toFixed(4)}; best validation ${volf ? 'Dice' : config.ssl.method === 'voco' ? 'VoCo loss' : 'L1'} ${r.best === null ? 'n/a' : `${(volf ? r.best.score : -r.best.score).toFixed(4)} at iteration ${r.best.iteration}`}\n` +
      `  checkpoints: ${r.checkpoints.latest}${r.checkpoints.best !== null ? `, ${r.checkpoints.best}` : ''}\n` +
      `  metrics: ${r.runDir}/metrics.jsonl (plot with: misfm plot ${r.runDir})\n`);
    return r.interrupted ? 130 : 0;
  },
};
