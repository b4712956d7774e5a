/**
 * `misfm prepare INPUTS... --out CACHE`: build (or bring up to date) a volume cache for training.
 */
import * as os from 'node:os';
import { parseArgs } from 'node:util';
import type { Command } from '../command.js';
import { MisfmError } from '../../util/errors.js';
import type { Vec3 } from '../../io/volume.js';
import { prepare, REPORT_NAME, LOG_NAME, type PrepareSpec } from '../../data/prepare.js';
import { describeSpacing, PLAN_NAME } from '../../data/plan.js';

const USAGE = `Usage: misfm prepare INPUT... --out CACHE [options]

Convert medical images into a volume cache: one uncompressed random-access file per volume
(plus label and foreground-location files), a manifest.json with geometry and intensity
statistics, prepare.log.jsonl and report.json. Re-running skips cases whose sources and
settings are unchanged, so an interrupted run simply continues. Bad cases are recorded with
the reason and do not stop the run.

INPUT: image files (.nii, .nii.gz, .nrrd, .mha, ...), folders (searched recursively; every
       folder of DICOM files gives its series), CSV files (image[,label] per row, paths relative
       to the CSV; optional header "image,label,id"), or nnU-Net dataset folders
       (imagesTr/<case>_0000.nii.gz, labelsTr/<case>.nii.gz, dataset.json).

Options:
  --out DIR             cache folder (created if needed)                            [required]
  --labels DIR          label maps named like the images (<stem>.*, or without _0000)
  --csv FILE            CSV list of image[,label] rows (same as giving it as an INPUT)
  --workers N           worker threads (default: ${os.availableParallelism()}, the number of cores)
  --body-crop           crop CT volumes to the body's bounding box
  --spacing S           plan (default): resample every case to the dataset's target spacing, chosen
                        as nnU-Net does (median spacing; for anisotropic datasets the coarse axis
                        takes a lower percentile) and written with the dataset fingerprint to
                        CACHE/plan.json; X,Y,Z: this spacing in mm; native: keep each case's own
  --orientation CODE    reorient to CODE (default LPS); --no-reorient keeps the stored axes
  --no-reorient
  --modality M          auto (default), ct or other: CT is cached as int16 HU
  --dtype T             auto (default), int16 or float32
  --preprocess-module F ES module exporting preprocess(image, label, ctx), run after the built-in steps
  --retry-failed        prepare again cases that failed before with unchanged sources
  -q, --quiet           no progress line

Exit status: 0 when at least one case of the inputs is in the cache, 1 when all failed.
`;

export const prepareCommand: Command = {
  name: 'prepare',
  summary: 'build a random-access volume cache (with manifest and statistics) for training',
  usage: USAGE,
  run: (argv) => runPrepare(argv, (s) => process.stdout.write(s), (s) => process.stderr.write(s)),
};

function parseSpacing(text: string): Vec3 {
  const parts = text.split(',').map((p) => Number(p.trim()));
  if (parts.length !== 3 || parts.some((v) => !(v > 0) || !Number.isFinite(v))) {
    throw new MisfmError('ARGUMENT', `--spacing ${text}: expected plan, native or three positive numbers X,Y,Z in mm, e.g. 1.5,1.5,2`);
  }
  return parts as Vec3;
}

function oneOf<T extends string>(name: string, value: string | undefined, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value)) throw new MisfmError('ARGUMENT', `${name} ${value}: expected one of ${allowed.join(', ')}`);
  return value as T;
}

/** The command with its output streams passed in (tests capture them). Returns the exit code. */
export async function runPrepare(argv: string[], out: (s: string) => void, err: (s: string) => void, progress = true): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      out: { type: 'string', short: 'o' },
      labels: { type: 'string' },
      csv: { type: 'string' },
      workers: { type: 'string' },
      'body-crop': { type: 'boolean', default: false },
      spacing: { type: 'string' },
      orientation: { type: 'string' },
      'no-reorient': { type: 'boolean', default: false },
      modality: { type: 'string' },
      dtype: { type: 'string' },
      'preprocess-module': { type: 'string' },
      'retry-failed': { type: 'boolean', default: false },
      quiet: { type: 'boolean', short: 'q', default: false },
    },
  });
  if (values.out === undefined) throw new MisfmError('ARGUMENT', `--out CACHE is required\n${USAGE}`);
  if (positionals.length === 0 && values.csv === undefined) throw new MisfmError('ARGUMENT', `no inputs given\n${USAGE}`);
  let workers: number | undefined;
  if (values.workers !== undefined) {
    workers = Number(values.workers);
    if (!Number.isInteger(workers) || workers < 0) throw new MisfmError('ARGUMENT', `--workers ${values.workers}: expected a whole number >= 0`);
  }
  const pp: PrepareSpec = { bodyCrop: values['body-crop'], spacing: 'plan' };
  if (values.spacing === 'native' || values.spacing === 'plan') pp.spacing = values.spacing;
  else if (values.spacing !== undefined) pp.spacing = parseSpacing(values.spacing);
  if (values['no-reorient']) pp.reorient = false;
  else if (values.orientation !== undefined) {
    if (!/^[LRAPSI]{3}$/i.test(values.orientation)) throw new MisfmError('ARGUMENT', `--orientation ${values.orientation}: expected three letters such as LPS or RAS`);
    pp.reorient = values.orientation.toUpperCase();
  }
  const modality = oneOf('--modality', values.modality, ['auto', 'ct', 'other'] as const);
  if (modality !== undefined) pp.modality = modality;
  const dtype = oneOf('--dtype', values.dtype, ['auto', 'int16', 'float32'] as const);
  if (dtype !== undefined) pp.dtype = dtype;
  if (values['preprocess-module'] !== undefined) pp.module = values['preprocess-module'];
  const { report, plan } = await prepare(positionals, values.out, {
    preprocess: pp,
    ...(values.labels !== undefined ? { labels: values.labels } : {}),
    ...(values.csv !== undefined ? { csv: values.csv } : {}),
    ...(workers !== undefined ? { workers } : {}),
    retryFailed: values['retry-failed'],
    ...(values.quiet || !progress ? { progress: false as const } : {}),
  });
  const okHere = report.discovered - report.failures.length;
  out(`${report.outDir}: ${report.discovered} case(s): ${report.processed} prepared (${report.ok} ok, ${report.failed} failed), ` +
    `${report.skipped} up to date` + (report.moved > 0 ? ` (${report.moved} found under a new path, same content: kept as the same case)` : '') +
    `; ${report.manifestOk} usable in the cache` +
    (report.processed > 0 ? `; ${(report.msPerCase / 1000).toFixed(2)} s/case with ${report.workers} worker(s)` : '') + '\n');
  if (plan !== undefined) out(`spacing: ${describeSpacing(plan.spacing)}; plan in ${PLAN_NAME}\n`);
  if (report.failures.length > 0) {
    err(`${report.failures.length} case(s) failed (details in ${REPORT_NAME} and ${LOG_NAME}):\n`);
    for (const f of report.failures) err(`  ${f.id}: ${f.source}: ${f.reason}\n`);
  }
  if (okHere <= 0) {
    err(`misfm prepare: error: all ${report.discovered} case(s) failed; nothing usable was cached\n`);
    return 1;
  }
  return 0;
}
