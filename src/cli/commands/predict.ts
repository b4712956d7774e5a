/**
 * `misfm predict`: label maps for one image or many, by sliding-window inference with a trained
 * model. Bad cases are reported and skipped; the exit code is 1 when any case failed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import type { Command } from '../command.js';
import { MisfmError } from '../../util/errors.js';
import { keepLargestMode, positiveInt } from '../args.js';
import { PRECISION_USAGE, parsePrecision, resolvePrecision } from '../../engine/precision.js';
import { Progress, formatDuration, type ProgressStream } from '../../util/progress.js';
import { JsonlLogger } from '../../util/jsonl.js';
import { formatOf } from '../../io/image/index.js';
import { setNumThreads } from '../../engine/creation.js';
import { loadModelForInference, type InferenceIntensity, type LoadModelOptions, type ModelBundle } from '../../infer/model.js';
import { predictCase, probabilityChannels, type PredictOptions } from '../../infer/predict.js';
import { describeCasePlan, type CasePlan } from '../../infer/case-plan.js';
import { listCases, outputPathFor, parseShard, shardCases } from '../../infer/cases.js';
import type { DuplicateMode } from '../../infer/plan.js';
import type { Triple3 } from '../../infer/windows.js';

const USAGE = `Usage: misfm predict --model CKPT --input IN --output OUT [options]

Segment images with a trained model (sliding-window inference, Gaussian-weighted average of
window logits). The label map of each case is written with exactly the input's size, spacing,
origin and direction, with a JSON sidecar (<name>.json: class names, provenance, timings).

Input (IN): an image file (.nii.gz, .nii, .nrrd, .mha, ...), a folder of image files (each is a
case), a CSV file with an 'image' column (paths relative to the CSV), or a DICOM series folder
(a folder without image files). Cases are processed in order of their path.
Output (OUT): a file for a single input when it has an image ending, else a folder receiving
<name>.<format> per case.

Options:
  --model CKPT           misfm training checkpoint (model, preprocessing and inference settings
                         come from its config), or an official MIS-FM/PyMIC .pt or a safetensors
                         file together with --model-config and --intensity
  --model-config C       preset name (pctnet-paper, pctnet-small, unet3d-volf, fmunet) or a JSON
                         model config file, for checkpoints that record none
  --spacing X,Y,Z        resample to this spacing (mm) before the network and back afterwards; overrides
                         the spacing recorded in the checkpoint (needed for checkpoints written before
                         misfm recorded it, or for foreign checkpoints trained at a fixed spacing);
                         'native' predicts at each input's own spacing

Before each case's windows run, one line says what it will do (input spacing -> model spacing,
sizes, windows, a time estimate from the first window), with a warning when the input is far from
the training data (spacing more than 2x apart, another modality, smaller than one window).
  --intensity I          ct-window[:LO,HI] (default window -1000,1000), zscore or none;
                         overrides the recorded normalisation (required for foreign checkpoints)
  --device D             cpu (default) or cuda
  --window D,H,W         window size (default: the network input size / the recorded window)
  --overlap F            fractional window overlap, 0 <= F < 1 (default: recorded, else 0.5)
  --stride D,H,W         explicit window stride (instead of --overlap)
  --sw-batch N           windows per network call (alias --batch; default: recorded, else 1); the
                         slab-bounded accumulation is unchanged, only the network sees N windows
  --tta                  test-time augmentation: average the logits of flips along D, H and W
  --keep-largest M       union | per-class: keep the largest connected component
  --connectivity C       6, 18 or 26 (default 26) for --keep-largest
  --probabilities        also write softmax probabilities of every foreground class
  --prob-classes L       classes to write probabilities for, as label values or names (e.g. 5,spleen;
                         implies --probabilities); files are <out>_prob<value>
  --prob-format F        float32 (default) or uint8 (probability x 255)
  --duplicates M         weighted (default: the reference's weighting, each window computed once),
                         reference (exact reference loop, duplicated windows computed again), once
  --format F             output format for folder output: nii.gz, nii, nrrd, mha, or dicom-seg (a DICOM
                         Segmentation <name>.seg.dcm referencing the source series); default dicom-seg
                         for a DICOM series input, nii.gz otherwise. A single --output ending in .dcm
                         writes DICOM-SEG too
  --strict-geometry      refuse DICOM series with uneven slice gaps or gantry tilt (default: resample
                         them onto a regular grid along the slice normal, with a warning)
  --shard I/N            process every N-th case starting at case I (0-based), for parallel runs
  --skip-existing        skip cases whose output file exists
  --threads N            libtorch threads (default: all cores or MISFM_NUM_THREADS)
${PRECISION_USAGE}  --log FILE             JSON-lines log (default: OUT/predict.jsonl for folder output)
`;

interface PredictArgs {
  model: string; input: string; output: string; format: string | null; shard: { index: number; count: number } | null;
  skipExisting: boolean; log: string | null; threads: number | null;
  load: LoadModelOptions; predict: PredictOptions;
}

function triple(name: string, text: string): Triple3 {
  const v = text.split(',').map((s) => Number(s.trim()));
  if (v.length !== 3 || v.some((x) => !Number.isSafeInteger(x) || x < 1)) throw new MisfmError('ARGUMENT', `--${name} must be three positive integers D,H,W, got '${text}'`);
  return [v[0]!, v[1]!, v[2]!];
}

/** Parse --intensity. */
export function parseIntensity(text: string): InferenceIntensity {
  const [kind, rest] = text.split(':', 2) as [string, string | undefined];
  if (kind === 'zscore' || kind === 'none') {
    if (rest !== undefined) throw new MisfmError('ARGUMENT', `--intensity ${kind} takes no parameters, got '${text}'`);
    return { kind };
  }
  if (kind === 'ct-window') {
    const w = (rest ?? '-1000,1000').split(',').map(Number);
    if (w.length !== 2 || !w.every(Number.isFinite) || !(w[0]! < w[1]!)) throw new MisfmError('ARGUMENT', `--intensity ct-window:LO,HI needs LO < HI, got '${text}'`);
    return { kind: 'ct-window', window: [w[0]!, w[1]!] };
  }
  throw new MisfmError('ARGUMENT', `--intensity must be ct-window[:LO,HI], zscore or none, got '${text}'`);
}

function parseCli(argv: string[]): PredictArgs {
  const { values: v, positionals } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' }, input: { type: 'string' }, output: { type: 'string' }, 'model-config': { type: 'string' },
      intensity: { type: 'string' }, device: { type: 'string' }, window: { type: 'string' }, overlap: { type: 'string' },
      stride: { type: 'string' }, batch: { type: 'string' }, 'sw-batch': { type: 'string' }, precision: { type: 'string' }, tta: { type: 'boolean' }, 'keep-largest': { type: 'string' },
      connectivity: { type: 'string' }, probabilities: { type: 'boolean' }, 'prob-classes': { type: 'string' },
      'prob-format': { type: 'string' }, duplicates: { type: 'string' }, format: { type: 'string' }, shard: { type: 'string' },
      'skip-existing': { type: 'boolean' }, threads: { type: 'string' }, log: { type: 'string' }, spacing: { type: 'string' },
      'strict-geometry': { type: 'boolean' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length > 0) throw new MisfmError('ARGUMENT', `unexpected argument '${positionals[0]}'\n${USAGE}`);
  if (v.model === undefined || v.input === undefined || v.output === undefined) throw new MisfmError('ARGUMENT', `--model, --input and --output are required\n${USAGE}`);
  if (v.overlap !== undefined && v.stride !== undefined) throw new MisfmError('ARGUMENT', '--overlap and --stride are alternatives; give one');
  const load: LoadModelOptions = { device: v.device ?? 'cpu' };
  if (v['model-config'] !== undefined) load.modelConfig = v['model-config'];
  if (v.intensity !== undefined) load.preprocess = { intensity: parseIntensity(v.intensity) };
  if (v.spacing === 'native') {
    load.preprocess = { ...load.preprocess, spacing: null };
  } else if (v.spacing !== undefined) {
    const sp = v.spacing.split(',').map(Number);
    if (sp.length !== 3 || !sp.every((x) => Number.isFinite(x) && x > 0)) throw new MisfmError('ARGUMENT', `--spacing must be three positive numbers X,Y,Z in mm, got '${v.spacing}'`);
    load.preprocess = { ...load.preprocess, spacing: sp as [number, number, number] };
  }
  const p: PredictOptions = {};
  if (v.window !== undefined) p.window = triple('window', v.window);
  if (v.stride !== undefined) p.stride = triple('stride', v.stride);
  if (v.overlap !== undefined) {
    const o = Number(v.overlap);
    if (!(o >= 0 && o < 1)) throw new MisfmError('ARGUMENT', `--overlap must be >= 0 and < 1, got '${v.overlap}'`);
    p.overlap = o;
  }
  if (v.batch !== undefined && v['sw-batch'] !== undefined) throw new MisfmError('ARGUMENT', '--batch and --sw-batch are the same option; give one');
  if (v.batch !== undefined) p.batchSize = positiveInt('batch', v.batch);
  if (v['sw-batch'] !== undefined) p.batchSize = positiveInt('sw-batch', v['sw-batch']);
  if (v.precision !== undefined) p.precision = resolvePrecision(parsePrecision(v.precision), load.device ?? 'cpu').precision;
  if (v.tta === true) p.ttaFlips = [0, 1, 2];
  if (v['keep-largest'] !== undefined) p.keepLargest = keepLargestMode(v['keep-largest']);
  if (v.connectivity !== undefined) {
    const c = Number(v.connectivity);
    if (c !== 6 && c !== 18 && c !== 26) throw new MisfmError('ARGUMENT', `--connectivity must be 6, 18 or 26, got '${v.connectivity}'`);
    p.connectivity = c;
  }
  if (v['prob-classes'] !== undefined) {
    const cs = v['prob-classes'].split(',').map((s) => s.trim());
    if (cs.some((c) => c === '')) throw new MisfmError('ARGUMENT', `--prob-classes must be label values or class names like 5,liver, got '${v['prob-classes']}'`);
    p.probabilities = cs; // checked against the model's classes once it is loaded
  } else if (v.probabilities === true) {
    p.probabilities = 'all';
  }
  if (v['prob-format'] !== undefined) {
    if (v['prob-format'] !== 'float32' && v['prob-format'] !== 'uint8') throw new MisfmError('ARGUMENT', `--prob-format must be float32 or uint8, got '${v['prob-format']}'`);
    p.probabilityFormat = v['prob-format'];
  }
  if (v.duplicates !== undefined) {
    if (!['weighted', 'reference', 'once'].includes(v.duplicates)) throw new MisfmError('ARGUMENT', `--duplicates must be weighted, reference or once, got '${v.duplicates}'`);
    p.duplicates = v.duplicates as DuplicateMode;
  }
  if (v['strict-geometry'] === true) p.read = { ...p.read, strictGeometry: true };
  const format = v.format === undefined ? null : v.format === 'dicom-seg' ? 'seg.dcm' : v.format.replace(/^\./, '');
  const f = format === null ? undefined : formatOf(`x.${format}`);
  if (format !== null && (f === undefined || (f.format === 'dicom' && format !== 'seg.dcm'))) {
    throw new MisfmError('ARGUMENT', `--format must be an image format such as nii.gz, nii, nrrd or mha, or dicom-seg, got '${v.format}'`);
  }
  return {
    model: v.model, input: v.input, output: v.output, format, load, predict: p,
    shard: v.shard === undefined ? null : parseShard(v.shard),
    skipExisting: v['skip-existing'] === true,
    log: v.log ?? null,
    threads: v.threads === undefined ? null : positiveInt('threads', v.threads),
  };
}

/** DICOM-SEG for a DICOM series (a folder or .dcm file), NIfTI otherwise. */
function defaultFormat(input: string): string {
  return fs.statSync(input, { throwIfNoEntry: false })?.isDirectory() === true || formatOf(input)?.format === 'dicom' ? 'seg.dcm' : 'nii.gz';
}

/** Where the command prints (tests capture it). */
export interface PredictIO {
  out: (text: string) => void;
  err: ProgressStream;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The command body; returns the exit code (0 all written, 1 some case failed). */
export async function runPredict(argv: string[], io: PredictIO): Promise<number> {
  const args = parseCli(argv);
  if (args.threads !== null) setNumThreads(args.threads);
  const all = listCases(args.input);
  const cases = args.shard === null ? all : shardCases(all, args.shard);
  const single = all.length === 1 && formatOf(args.output) !== undefined;
  if (all.length > 1 && formatOf(args.output) !== undefined) {
    throw new MisfmError('ARGUMENT', `--output ${args.output} is a file name but the input holds ${all.length} cases; give a folder`);
  }
  if (!single) fs.mkdirSync(args.output, { recursive: true });
  const logFile = args.log ?? (single ? null : path.join(args.output, 'predict.jsonl'));
  const log = logFile === null ? null : new JsonlLogger(logFile);
  const t0 = performance.now();
  try {
    const bundle: ModelBundle = await loadModelForInference(args.model, args.load);
    // A bad class name fails here, once, not as one failed case per input.
    if (args.predict.probabilities !== undefined) probabilityChannels(bundle, args.predict.probabilities);
    log?.log({
      event: 'start', model: bundle.provenance.checkpoint, network: bundle.modelConfig.name, configHash: bundle.provenance.configHash,
      input: path.resolve(args.input), output: path.resolve(args.output), cases: cases.length, totalCases: all.length,
      shard: args.shard === null ? null : `${args.shard.index}/${args.shard.count}`, device: bundle.device,
    });
    io.out(`misfm predict: ${cases.length} case(s)${args.shard === null ? '' : ` (shard ${args.shard.index}/${args.shard.count} of ${all.length})`}, ` +
      `${bundle.modelConfig.name} from ${bundle.provenance.checkpoint} on ${bundle.device}\n`);
    const progress = new Progress({ total: cases.length, label: 'predict', unit: 'vol', stream: io.err });
    const failed: { name: string; input: string; error: string }[] = [];
    let ok = 0, skipped = 0;
    for (const [i, c] of cases.entries()) {
      const out = outputPathFor(c, args.output, args.format ?? defaultFormat(c.input), single);
      const tag = `[${i + 1}/${cases.length}] ${c.name}`;
      if (args.skipExisting && fs.existsSync(out)) {
        skipped++;
        io.out(`${tag}: skipped (output exists)\n`);
        log?.log({ event: 'case', case: c.name, input: c.input, output: out, status: 'skipped' });
        progress.tick(1, { failed: failed.length });
        continue;
      }
      try {
        // Before the network runs: what it will do, warnings, and (at the first window) a time estimate.
        let planned: CasePlan | undefined, tWindows = 0, told = false;
        const r = await predictCase(bundle, c.input, out, {
          ...args.predict,
          onPlan: (p) => {
            planned = p;
            for (const w of p.warnings) io.err.write(`${tag}: warning: ${w}\n`);
            log?.log({ event: 'plan', case: c.name, ...p });
            tWindows = performance.now();
          },
          onWindows: (done, total) => {
            if (told || planned === undefined) return;
            told = true;
            const s = (performance.now() - tWindows) / 1000;
            io.out(`${tag}: ${describeCasePlan(planned)}; first ${done === 1 ? 'window' : `${done} windows`} ${s.toFixed(1)} s, about ${formatDuration((s / done) * total)} for all ${total}\n`);
          },
        });
        ok++;
        io.out(`${tag}: ${path.basename(out)} in ${(r.timings.total / 1000).toFixed(1)} s, ${r.windowsComputed} windows, labels ${r.labelsFound.join(',')}\n`);
        log?.log({
          event: 'case', case: c.name, input: c.input, output: out, status: 'ok', windows: r.windowsComputed,
          labels: r.labelsFound, timingsMs: Object.fromEntries(Object.entries(r.timings).map(([k, ms]) => [k, Math.round(ms)])),
        });
      } catch (err) {
        const msg = errorText(err);
        failed.push({ name: c.name, input: c.input, error: msg });
        io.err.write(`${tag}: FAILED: ${msg}\n`);
        if (!(err instanceof MisfmError) && process.env['MISFM_DEBUG'] === '1') io.err.write(`${(err as Error).stack ?? ''}\n`);
        log?.log({ event: 'case', case: c.name, input: c.input, output: out, status: 'failed', error: msg });
      }
      progress.tick(1, { failed: failed.length });
    }
    progress.finish();
    const seconds = (performance.now() - t0) / 1000;
    log?.log({ event: 'end', ok, failed: failed.length, skipped, seconds: Math.round(seconds * 10) / 10 });
    io.out(`predicted ${ok} of ${cases.length} case(s)${skipped > 0 ? `, ${skipped} skipped` : ''}, ${failed.length} failed, in ${formatDuration(seconds)}\n`);
    if (failed.length > 0) {
      io.out(`failed cases:\n${failed.map((f) => `  ${f.name} (${f.input}): ${f.error}`).join('\n')}\n`);
      return 1;
    }
    return 0;
  } finally {
    log?.close();
  }
}

export const predictCommand: Command = {
  name: 'predict',
  summary: 'segment images with a trained model (sliding window; file, folder, CSV or DICOM input)',
  usage: USAGE,
  run(argv: string[]): Promise<number> {
    return runPredict(argv, { out: (t) => process.stdout.write(t), err: process.stderr });
  },
};
