/** `misfm train`: supervised fine-tuning (from pretrained weights or from scratch). */
import { parseArgs } from 'node:util';
import type { Command } from '../command.js';
import { RUN_OPTIONS, explicitDataKeys, resolveRunConfig } from '../run-config.js';
import { finetune } from '../../train/finetune.js';
import { MisfmError } from '../../util/errors.js';
import { runWithNproc } from './launch.js';
import { joinFromEnvironment } from '../../distributed/context.js';
import { trainVista3d } from '../../train/vista3d/task.js';
import { classValue } from '../../infer/vista3d/classes.js';

const USAGE = `Usage: misfm train --data IMAGES --labels LABELS --out RUN_DIR [--init CKPT] [options]

Fine-tunes a segmentation network on labelled scans. The dataset is a folder of images with a
folder of label maps of the same names (--labels), a CSV of image,label rows (--csv), an nnU-Net
dataset folder (imagesTr/labelsTr), or a cache made by misfm prepare.

Options:
  --data PATH          image folder / files, nnU-Net dataset folder, or a cache (repeatable)
  --labels DIR         label maps named like the images
  --csv FILE           image,label rows instead of folders
  --out DIR            run folder: config.json, metrics.jsonl, checkpoints/{latest,best}.pt
  --init CKPT          start from these weights: a misfm run checkpoint, an official MIS-FM / PyMIC
                       .pt ({'model_state_dict': ...}) or safetensors. Heads with another class
                       count are re-initialised; the load report is printed. From a misfm
                       checkpoint the run also takes its intensity normalisation and spacing
                       unless data.intensity / data.spacing are set explicitly.
  --spacing S          plan (default: the dataset plan's spacing, or --init's), native or X,Y,Z mm
                       (the same as --set data.spacing=...)
  --classes V1,V2,...  label values to learn (others are background), mapped to classes 1..n
  --names N1,N2,...    class names, one per --classes value
  --valid ID,...       validation case ids (default: ~20% of the cases, chosen by the seed)
  --config FILE        JSON / YAML run config, or a PyMIC .cfg
  --preset NAME        paper-finetune (default) | small-finetune (CPU demo) | vista3d-small (VISTA3D,
                       spec section 12)
  --set KEY=VALUE      override any config key (repeatable)
  --iterations N       iteration budget
  --resume             continue the run in --out exactly
  --threads N          libtorch threads
  --precision P        fp32 (default) | bf16 | auto: convolutions/matmuls in bfloat16 with fp32 norms,
                       softmax, losses, weights and optimizer state; auto = bf16 only where the CPU
                       has avx512_bf16/amx_bf16 or on CUDA (training.precision; see misfm doctor)
  --nproc N            run on N processes of this node (c10d data parallel; see misfm launch)
  -q, --quiet          no progress bar

VISTA3D (--preset vista3d-small, or model.name vista3d; the recipe is the config section vista3d):
  --stage N            1: interactive branch (point prompts, 5 click rounds); 2: its fine-tuning
                       with class-balanced crops; 3: automatic branch (class prompts) with the
                       encoder and point branch frozen; 4: its fine-tuning with class-balanced crops.
                       Start each stage from the previous one's checkpoint with --init.
  --label-table F[#K]  JSON {value: name} of the dataset's labels, mapped onto the VISTA3D class
                       table by name (e.g. totalseg_classmap.json#total); default: the values are
                       class-table indices
  --hold-out C,...     classes (names or indices) left out of training entirely (zero-shot tests)
  --train-classes C,.. train only these classes (few-shot transfer: --stage 4 with --init)
  The cache must be prepared with --orientation RAS (raw data is prepared so).`;

function parseList(s: string | undefined, what: string, num: boolean): (string | number)[] | undefined {
  if (s === undefined) return undefined;
  const parts = s.split(',').map((p) => p.trim()).filter((p) => p !== '');
  if (num && parts.some((p) => !/^\d+$/.test(p))) throw new MisfmError('ARGUMENT', `${what} must be comma-separated label values, got '${s}'`);
  return num ? parts.map(Number) : parts;
}

/** --spacing plan|native|X,Y,Z as a data.spacing override value (JSON). */
export function spacingOverride(text: string): string {
  if (text === 'plan' || text === 'native') return JSON.stringify(text);
  const v = text.split(',').map((p) => Number(p.trim()));
  if (v.length !== 3 || v.some((x) => !(x > 0) || !Number.isFinite(x))) throw new MisfmError('ARGUMENT', `--spacing must be plan, native or three positive numbers X,Y,Z in mm, got '${text}'`);
  return JSON.stringify(v);
}

/** A list of VISTA3D classes (names of the class table or indices) as a JSON array; errors name the flag. */
function classList(flag: string, text: string): string {
  const items = text.split(',').map((p) => p.trim());
  if (items.some((p) => p === '')) throw new MisfmError('ARGUMENT', `--${flag} must be a comma-separated list of VISTA3D class names or indices, got '${text}'`);
  try { return JSON.stringify(items.map((p) => classValue(p))); } catch (err) {
    throw new MisfmError('ARGUMENT', `--${flag}: ${(err as Error).message}`);
  }
}

/** The config overrides of the VISTA3D flags (none when none is given). */
function vista3dOverrides(v: { stage?: string | undefined; 'label-table'?: string | undefined; 'hold-out'?: string | undefined; 'train-classes'?: string | undefined }): string[] {
  const out: string[] = [];
  if (v.stage !== undefined) {
    if (!/^[1-4]$/.test(v.stage.trim())) throw new MisfmError('ARGUMENT', `--stage must be 1, 2, 3 or 4 (VISTA3D's four training stages), got '${v.stage}'`);
    out.push(`vista3d.stage=${v.stage.trim()}`);
  }
  if (v['label-table'] !== undefined) out.push(`vista3d.labelTable=${JSON.stringify(v['label-table'])}`);
  if (v['hold-out'] !== undefined) out.push(`vista3d.holdOut=${classList('hold-out', v['hold-out'])}`);
  if (v['train-classes'] !== undefined) out.push(`vista3d.classes=${classList('train-classes', v['train-classes'])}`);
  return out;
}

export const trainCommand: Command = {
  name: 'train',
  summary: 'fine-tune a segmentation network on labelled scans',
  usage: USAGE,
  async run(argv) {
    const { values } = parseArgs({
      args: argv, strict: true,
      options: {
        ...RUN_OPTIONS, data: { type: 'string', multiple: true }, labels: { type: 'string' }, csv: { type: 'string' },
        init: { type: 'string' }, spacing: { type: 'string' }, classes: { type: 'string' }, names: { type: 'string' }, valid: { type: 'string' },
        stage: { type: 'string' }, 'label-table': { type: 'string' }, 'hold-out': { type: 'string' }, 'train-classes': { type: 'string' },
      },
    });
    const launched = await runWithNproc('train', argv, values.nproc);
    if (launched !== null) return launched;
    if (values.data === undefined || values.data.length === 0) throw new MisfmError('ARGUMENT', '--data is required');
    const classes = parseList(values.classes, '--classes', true) as number[] | undefined;
    const names = parseList(values.names, '--names', false) as string[] | undefined;
    if (names !== undefined && classes === undefined) throw new MisfmError('ARGUMENT', '--names needs --classes');
    const set = [...(values.set ?? []), 'task="finetune"'];
    if (classes !== undefined) {
      const n = names ?? classes.map((c) => `class_${c}`);
      if (n.length !== classes.length) throw new MisfmError('ARGUMENT', `--names has ${n.length} names for ${classes.length} --classes values`);
      set.push(`data.labels=${JSON.stringify({ values: classes, names: n })}`, `model.classNum=${classes.length + 1}`);
    }
    if (values.spacing !== undefined) set.push(`data.spacing=${spacingOverride(values.spacing)}`);
    if (values.init !== undefined) set.push(`training.initCheckpoint=${JSON.stringify(values.init)}`);
    const v3 = vista3dOverrides(values);
    let config = resolveRunConfig({ ...values, set }, 'paper-finetune');
    if (v3.length > 0 && config.model.name !== 'vista3d') throw new MisfmError('ARGUMENT', `--stage, --label-table, --hold-out and --train-classes are VISTA3D options, but model.name is '${config.model.name}' (use --preset vista3d-small)`);
    if (config.model.name === 'vista3d') {
      set.push(...v3);
      config = resolveRunConfig({ ...values, set }, 'paper-finetune');
      if (classes !== undefined) throw new MisfmError('ARGUMENT', '--classes/--names do not apply to VISTA3D: its labels map onto the class table (--label-table); choose classes with --train-classes');
      const distributed = await joinFromEnvironment();
      const r = await trainVista3d({ distributed,
        config, data: values.data, explicit: explicitDataKeys({ ...values, set }), runDir: config.output.dir, resume: values.resume ?? false, quiet: values.quiet ?? false,
        ...(values.labels !== undefined ? { labelsDir: values.labels } : {}),
        ...(values.csv !== undefined ? { csv: values.csv } : {}),
        ...(values.valid !== undefined ? { validCases: values.valid.split(',').map((s) => s.trim()) } : {}),
      });
      distributed?.group.destroy();
      if (distributed !== null && distributed.rank !== 0) return r.interrupted ? 130 : 0;
      process.stdout.write(
        `VISTA3D stage ${r.stage} ${r.interrupted ? 'interrupted' : 'finished'} at iteration ${r.iterations} (${r.secondsPerIteration.toFixed(2)} s/it)\n` +
        `  training cases ${r.trainCases.length}, validation cases ${r.validCases.join(', ') || 'none'}; ${r.labelSet.length} classes\n` +
        `  best validation Dice ${r.best === null ? 'n/a' : `${r.best.score.toFixed(4)} at iteration ${r.best.iteration}`}\n` +
        `  checkpoints: ${r.checkpoints.latest}${r.checkpoints.best !== null ? `, ${r.checkpoints.best}` : ''}\n`);
      return r.interrupted ? 130 : 0;
    }
    const distributed = await joinFromEnvironment();
    const r = await finetune({ distributed,
      config, data: values.data, explicit: explicitDataKeys({ ...values, set }), runDir: config.output.dir, resume: values.resume ?? false, quiet: values.quiet ?? false,
      ...(values.labels !== undefined ? { labelsDir: values.labels } : {}),
      ...(values.csv !== undefined ? { csv: values.csv } : {}),
      ...(values.valid !== undefined ? { validCases: values.valid.split(',').map((s) => s.trim()) } : {}),
    });
    distributed?.group.destroy();
    if (distributed !== null && distributed.rank !== 0) return r.interrupted ? 130 : 0;
    process.stdout.write(
      `training ${r.interrupted ? 'interrupted' : r.earlyStopped ? 'stopped early' : 'finished'} at iteration ${r.iterations}` +
      ` (${r.secondsPerIteration.toFixed(2)} s/it, data wait ${(r.dataWaitFraction * 100).toFixed(1)}%)\n` +
      `  training cases ${r.trainCases.length}, validation cases ${r.validCases.join(', ')}\n` +
      `  best mean foreground Dice ${r.best === null ? 'n/a' : `${r.best.score.toFixed(4)} at iteration ${r.best.iteration}`}\n` +
      `  checkpoints: ${r.checkpoints.latest}${r.checkpoints.best !== null ? `, ${r.checkpoints.best}` : ''}\n`);
    return r.interrupted ? 130 : 0;
  },
};
