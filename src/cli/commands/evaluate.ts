/**
 * `misfm evaluate`: compare predicted label maps with ground truth (PyMIC's `pymic_eval_seg`).
 * Files are paired by file name; spacing comes from the label files, whose geometry must agree.
 */
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Command } from '../command.js';
import { assertSameGeometry, formatOf, readImage } from '../../io/image/index.js';
import { gridDifferences } from '../../io/image/geometry.js';
import { alignToGrid, latticeMapping } from '../../io/image/align.js';
import type { Volume } from '../../io/volume.js';
import type { CaseResult, EvaluationReport, LabelSpec } from '../../metrics/evaluate.js';
import { evaluateCase, resolveSettings, summarize } from '../../metrics/evaluate.js';
import { formatSummary, writeReportCsv, writeReportJson } from '../../metrics/report.js';
import type { MetricMode } from '../../metrics/binary.js';
import type { LabelArray, Shape3, Spacing3 } from '../../metrics/types.js';
import { MisfmError } from '../../util/errors.js';

const USAGE = `Usage: misfm evaluate --pred P --gt G [options]

Compare segmentation label maps with ground truth. P and G are each an image file or a folder;
folders are paired by file name (unpaired files are listed and skipped). Prediction and ground
truth must have the same size, spacing, origin and direction; spacing comes from the files.

Options:
  --pred P              prediction file or folder
  --gt G                ground-truth file or folder
  --labels L            classes, comma-separated; '+' merges values into one class,
                        e.g. 1,2,3 or 1+2,3 (default: every nonzero value in the ground truth)
  --names N             class names, comma-separated, one per class (default: 1, class_1_2, ...)
  --metrics M           comma-separated from dice,iou,assd,hd95,nsd,rve,volume
                        (default dice,assd,hd95)
  --nsd-tolerance MM    tolerance of the normalised surface Dice in mm (default 2)
  --mode MODE           reference (default): PyMIC's conventions, i.e. an empty surface gives
                        ASSD 20 / HD95 100 (both empty: 0) and values are clipped to
                        ASSD <= 20, HD95 <= 50, as in the MIS-FM paper;
                        raw: no clipping, NaN where a surface is empty
  --clip / --no-clip    force clipping on or off regardless of the mode
  --threshold T         the predictions are probability maps: a voxel >= T becomes label 1,
                        the rest 0 (without it a non-integer prediction is refused)
  --json OUT.json       write per-case values, summary and settings as JSON
  --csv OUT.csv         write one row per case and class, then mean/std rows
`;

/** Files taken from folders: the single-file label formats readImage knows (not DICOM slices). */
function isImageName(name: string): boolean {
  const f = formatOf(name);
  return !name.startsWith('.') && f !== undefined && f.format !== 'dicom';
}

export interface FilePair { name: string; pred: string; gt: string }

/**
 * Pair prediction and ground-truth files. Each side is a file or a folder; folders are matched by
 * file name. Returns the pairs (sorted by name) and the names found on one side only.
 */
export function collectPairs(pred: string, gt: string): { pairs: FilePair[]; onlyPred: string[]; onlyGt: string[] } {
  const kind = (p: string, what: string): 'file' | 'dir' => {
    let st;
    try { st = statSync(p); } catch { throw new MisfmError('DATA', `${what} not found`, { file: p }); }
    return st.isDirectory() ? 'dir' : 'file';
  };
  const kp = kind(pred, 'prediction'), kg = kind(gt, 'ground truth');
  const list = (dir: string): string[] => readdirSync(dir).filter((n) => isImageName(n) && statSync(path.join(dir, n)).isFile()).sort();
  const predNames = kp === 'dir' ? list(pred) : [path.basename(pred)];
  const gtNames = kg === 'dir' ? list(gt) : [path.basename(gt)];
  if (kp === 'file' && kg === 'file') return { pairs: [{ name: path.basename(pred), pred, gt }], onlyPred: [], onlyGt: [] };
  const predPath = (n: string): string => (kp === 'dir' ? path.join(pred, n) : pred);
  const gtPath = (n: string): string => (kg === 'dir' ? path.join(gt, n) : gt);
  const gtSet = new Set(gtNames), predSet = new Set(predNames);
  const pairs = predNames.filter((n) => gtSet.has(n)).map((n) => ({ name: n, pred: predPath(n), gt: gtPath(n) }));
  const onlyPred = predNames.filter((n) => !gtSet.has(n));
  const onlyGt = kp === 'dir' ? gtNames.filter((n) => !predSet.has(n)) : [];
  if (pairs.length === 0) {
    throw new MisfmError('DATA', `no prediction/ground-truth pairs with matching file names: prediction ${pred} ` +
      `(${predNames.length} image file(s)), ground truth ${gt} (${gtNames.length} image file(s))`);
  }
  return { pairs, onlyPred, onlyGt };
}

/** Parse `1,2,3` / `1+2,3` into label specs. */
export function parseLabels(text: string): LabelSpec[] {
  return text.split(',').map((item) => {
    const parts = item.split('+').map((p) => p.trim());
    const nums = parts.map(Number);
    if (parts.some((p) => p === '') || nums.some((n) => !Number.isFinite(n))) {
      throw new MisfmError('ARGUMENT', `--labels: cannot read '${item}' in '${text}' (expected numbers like 1,2 or 1+2,3)`);
    }
    return nums.length === 1 ? nums[0]! : nums;
  });
}

/** (D,H,W) shape and (z,y,x) spacing of a Volume, whose data is x-fastest. */
export function volumeGrid(v: Volume): { shape: Shape3; spacing: Spacing3 } {
  return { shape: [v.size[2], v.size[1], v.size[0]], spacing: [v.spacing[2], v.spacing[1], v.spacing[0]] };
}

/** Distinct nonzero values of a label map. */
function nonzeroValues(data: LabelArray, into: Set<number>): void {
  let last = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v !== last) { last = v; if (v !== 0) into.add(v); }
  }
}

interface EvaluateArgs {
  pred: string; gt: string; labels?: LabelSpec[]; names?: string[]; metrics: string[];
  nsdTolerance: number; mode: MetricMode; clip?: boolean; json?: string; csv?: string; threshold?: number;
}

function parseCli(argv: string[]): EvaluateArgs {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      pred: { type: 'string' }, gt: { type: 'string' }, labels: { type: 'string' }, names: { type: 'string' },
      metrics: { type: 'string' }, 'nsd-tolerance': { type: 'string' }, mode: { type: 'string' },
      clip: { type: 'boolean' }, 'no-clip': { type: 'boolean' }, json: { type: 'string' }, csv: { type: 'string' },
      threshold: { type: 'string' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length > 0) throw new MisfmError('ARGUMENT', `unexpected argument '${positionals[0]}'\n${USAGE}`);
  if (values.pred === undefined || values.gt === undefined) throw new MisfmError('ARGUMENT', `--pred and --gt are required\n${USAGE}`);
  const mode = values.mode ?? 'reference';
  if (mode !== 'reference' && mode !== 'raw') throw new MisfmError('ARGUMENT', `--mode must be 'reference' or 'raw', got '${mode}'`);
  if (values.clip === true && values['no-clip'] === true) throw new MisfmError('ARGUMENT', '--clip and --no-clip contradict each other');
  const tol = values['nsd-tolerance'] === undefined ? 2 : Number(values['nsd-tolerance']);
  if (!Number.isFinite(tol) || tol < 0) throw new MisfmError('ARGUMENT', `--nsd-tolerance must be a non-negative number of mm, got '${values['nsd-tolerance']}'`);
  const args: EvaluateArgs = {
    pred: values.pred, gt: values.gt, nsdTolerance: tol, mode,
    metrics: (values.metrics ?? 'dice,assd,hd95').split(',').map((m) => m.trim()).filter((m) => m !== ''),
  };
  if (values.labels !== undefined) args.labels = parseLabels(values.labels);
  if (values.names !== undefined) args.names = values.names.split(',').map((n) => n.trim());
  if (values.clip === true) args.clip = true;
  if (values['no-clip'] === true) args.clip = false;
  if (values.json !== undefined) args.json = values.json;
  if (values.csv !== undefined) args.csv = values.csv;
  if (values.threshold !== undefined) {
    const t = Number(values.threshold);
    if (values.threshold.trim() === '' || !Number.isFinite(t)) throw new MisfmError('ARGUMENT', `--threshold must be a number, got '${values.threshold}'`);
    args.threshold = t;
  }
  return args;
}

/** Run the whole evaluation (library entry point of the command). `log` receives progress lines. */
export async function evaluateFiles(
  pairs: readonly FilePair[],
  opts: { labels?: LabelSpec[]; names?: string[]; metrics: string[]; nsdTolerance?: number; mode?: MetricMode; clip?: boolean; threshold?: number },
  log: (line: string) => void = () => {},
): Promise<EvaluationReport> {
  let labels = opts.labels;
  if (labels === undefined) {
    // PyMIC needs the class list up front; without one, take every nonzero value of the ground truth.
    const found = new Set<number>();
    for (const p of pairs) nonzeroValues(labelData(await readImage(p.gt), p.gt, 'ground truth'), found);
    labels = [...found].sort((a, b) => a - b);
    if (labels.length === 0) throw new MisfmError('DATA', 'no --labels given and the ground truth holds no nonzero label', { file: pairs[0]?.gt ?? '' });
  }
  const settings = resolveSettings({
    labels, metrics: opts.metrics, mode: opts.mode ?? 'reference',
    ...(opts.names !== undefined ? { names: opts.names } : {}),
    ...(opts.clip !== undefined ? { clip: opts.clip } : {}),
    ...(opts.nsdTolerance !== undefined ? { nsdTolerance: opts.nsdTolerance } : {}),
  });
  if (opts.threshold !== undefined) settings.predictionThreshold = opts.threshold;
  const cases: CaseResult[] = [];
  for (const [i, p] of pairs.entries()) {
    let pred = await readImage(p.pred);
    if (opts.threshold !== undefined) pred = { ...pred, data: thresholded(pred.data, opts.threshold) };
    labelData(pred, p.pred, 'prediction');
    let gt = await readImage(p.gt);
    labelData(gt, p.gt, 'ground truth');
    // Ground truth stored in another voxel order of the same world grid (e.g. a NIfTI label map of
    // a DICOM series with the rows flipped) is re-indexed exactly, voxel for voxel; anything that
    // would need interpolation is an error naming both files.
    if (gridDifferences(pred, gt).length > 0 && latticeMapping(gt, pred) !== undefined && sameVoxelCount(pred, gt)) {
      gt = alignToGrid(gt, pred, [p.gt, p.pred]);
      log(`note: ${p.gt} is stored in another axis order/orientation than ${p.pred}; re-indexed onto the prediction's grid (no interpolation)`);
    }
    // Same size, spacing, origin and direction (io/image tolerances); the error names both files.
    assertSameGeometry(pred, gt, [p.pred, p.gt]);
    // PyMIC takes the spacing from the segmentation header; the grids agree within tolerance anyway.
    const { shape, spacing } = volumeGrid(pred);
    const r = evaluateCase(p.name, pred.data, gt.data, shape, spacing, settings);
    cases.push(r);
    const shown = r.average ?? r.classes[0];
    log(`[${i + 1}/${pairs.length}] ${p.name}: ${settings.metrics.map((m) => `${m} ${fmt(shown?.[m])}`).join(', ')}` +
      (r.average !== undefined ? ' (mean over classes)' : ''));
  }
  return { settings, cases, summary: summarize(cases, settings) };
}

/**
 * The voxels of a label map, refusing a map with non-integer values (a probability or intensity
 * image passed by mistake would otherwise give Dice 0 and clipped distances without a word).
 */
export function labelData(v: Volume, file: string, what: string): LabelArray {
  const d = v.data;
  if (d instanceof Float32Array || d instanceof Float64Array) {
    let first = -1, min = Infinity, max = -Infinity;
    for (let i = 0; i < d.length; i++) {
      const x = d[i]!;
      if (x < min) min = x;
      if (x > max) max = x;
      if (first < 0 && !Number.isInteger(x)) first = i;
    }
    if (first >= 0) {
      const nx = v.size[0], ny = v.size[1];
      const ijk = [first % nx, Math.floor(first / nx) % ny, Math.floor(first / (nx * ny))];
      throw new MisfmError('DATA', `the ${what} is not a label map: it holds non-integer values (range ${min}..${max}, ` +
        `e.g. ${d[first]} at voxel (${ijk.join(', ')})). A label map must hold integer class values; if this is a ` +
        `probability map, threshold it (evaluate --threshold 0.5) or pass the predicted labels instead`, { file });
    }
  }
  return d as LabelArray;
}

/** A probability map as labels: 1 where value >= t, else 0 (MONAI's AsDiscrete(threshold=t)). */
function thresholded(d: Volume['data'], t: number): Uint8Array {
  const out = new Uint8Array(d.length);
  for (let i = 0; i < d.length; i++) out[i] = d[i]! >= t ? 1 : 0;
  return out;
}

/** Both grids hold the same number of voxels (re-indexing must not crop or pad). */
function sameVoxelCount(a: { size: readonly number[] }, b: { size: readonly number[] }): boolean {
  return a.size[0]! * a.size[1]! * a.size[2]! === b.size[0]! * b.size[1]! * b.size[2]!;
}

function fmt(v: number | undefined): string {
  return v === undefined || Number.isNaN(v) ? 'nan' : v.toFixed(4);
}

/** Where the command prints: the process streams, or anything else (tests capture it). */
export interface CommandOutput {
  out: (text: string) => void;
  err: (text: string) => void;
}

/** The command body with its output routed through `io`. Returns the exit code. */
export async function runEvaluate(argv: string[], io: CommandOutput): Promise<number> {
  const args = parseCli(argv);
  const { pairs, onlyPred, onlyGt } = collectPairs(args.pred, args.gt);
  if (onlyPred.length > 0) io.err(`warning: no ground truth for ${onlyPred.length} prediction(s), skipped: ${onlyPred.join(', ')}\n`);
  if (onlyGt.length > 0) io.err(`warning: no prediction for ${onlyGt.length} ground truth file(s), skipped: ${onlyGt.join(', ')}\n`);
  const report = await evaluateFiles(pairs, args, (line) => io.out(line + '\n'));
  io.out(formatSummary(report));
  if (args.csv !== undefined) { writeReportCsv(args.csv, report); io.out(`wrote ${args.csv}\n`); }
  if (args.json !== undefined) { writeReportJson(args.json, report); io.out(`wrote ${args.json}\n`); }
  return 0;
}

export const evaluateCommand: Command = {
  name: 'evaluate',
  summary: 'Dice, ASSD, HD95, NSD, ... of predicted label maps against ground truth',
  usage: USAGE,
  run(argv: string[]): Promise<number> {
    return runEvaluate(argv, { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) });
  },
};
