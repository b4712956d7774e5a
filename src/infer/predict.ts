/**
 * predictCase: one image (file or DICOM series) to a label map on exactly the input's grid.
 *
 *   read -> reorient -> body crop -> resample -> intensity -> sliding window (labels on the
 *   working grid) -> resample back (nearest) -> paste into the uncropped grid -> undo the
 *   reorientation -> keep-largest -> write with the input's size/spacing/origin/direction
 *
 * Each geometric step is applied only when the model bundle's preprocessing asks for it (see
 * ./model.ts) and is undone in reverse order, so the output always overlays the input. A JSON
 * sidecar records class names and provenance; probability maps are optional.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Vec3, Volume, VoxelArray } from '../io/volume.js';
import { readImage, writeLike, formatOf, SUPPORTED_ENDINGS, type ReadImageOptions } from '../io/image/index.js';
import { MisfmError, ShapeError } from '../util/errors.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { VERSION } from '../version.js';
import { geometryOf, type Geometry } from '../transforms/grid.js';
import { reorient, undoReorient, type Reoriented } from '../transforms/orientation.js';
import { bodyCrop } from '../transforms/body-crop.js';
import { pasteBack, type Box } from '../transforms/box.js';
import { resampleToReference, resampleToSpacing } from '../transforms/resample.js';
import { clipAndScale, normalizeMeanStd } from '../transforms/intensity.js';
import { volumeToBatch } from '../transforms/volume-tensor.js';
import { modelPredictor, slidingWindowSegment, type SegmentResult } from './sliding-window.js';
import { keepLargestComponent, type Connectivity, type KeepLargestMode } from './postprocess.js';
import { planWindows, type DuplicateMode, type BlendMode } from './plan.js';
import { predictionWarnings, type CasePlan } from './case-plan.js';
import { decideModality, lowPercentile, sameSpacing } from '../data/preprocess.js';
import type { InferencePreprocess, ModelBundle } from './model.js';
import type { Triple3 } from './windows.js';
import { withPrecision, type Precision } from '../engine/precision.js';
import { readDicomSource, writeDicomSeg, type SegSegment } from '../io/dicom/index.js';

/** Options of predictCase; unset values come from the bundle's inference config, then the reference defaults. */
export interface PredictOptions {
  /** Window [D,H,W]; default the network input size (PCT-Net) or the run's inference.window. */
  window?: Triple3;
  overlap?: number;
  stride?: Triple3;
  batchSize?: number;
  /** Compute precision of the network (engine/precision.ts); default fp32. Accumulation stays fp32. */
  precision?: Precision;
  blend?: BlendMode;
  sigmaScale?: number;
  /** TTA flip axes (0 = D, 1 = H, 2 = W). */
  ttaFlips?: (0 | 1 | 2)[];
  keepLargest?: 'none' | KeepLargestMode;
  connectivity?: Connectivity;
  /** Duplicate-window handling (default 'weighted': reference weighting, each window computed once). */
  duplicates?: DuplicateMode;
  /**
   * Classes whose probability maps are written beside the labels, named as the label map names
   * them: by label value (the dataset's own values when the model was trained with data.labels,
   * e.g. 5 for liver in TotalSegmentator numbering), by class name, or 'all' (every foreground class).
   */
  probabilities?: 'all' | readonly (number | string)[];
  /** 'float32' (default) or 'uint8' (round(p * 255)). */
  probabilityFormat?: 'float32' | 'uint8';
  /** Write the JSON sidecar (default true). */
  sidecar?: boolean;
  /** Image reading options (e.g. a DICOM series id). */
  read?: ReadImageOptions;
  /** Windows done / total, for progress display. */
  onWindows?: (done: number, total: number) => void;
  /** Called once the input is read and preprocessed, before the first window: what the prediction will do (./case-plan.ts). */
  onPlan?: (plan: CasePlan) => void;
}

/** What predictCase wrote. */
export interface PredictResult {
  output: string;
  sidecar: string | null;
  probabilityFiles: string[];
  /** Milliseconds per stage and in total. */
  timings: { read: number; preprocess: number; inference: number; postprocess: number; write: number; total: number };
  windowsComputed: number;
  referenceWindows: number;
  /** Label values present in the written map. */
  labelsFound: number[];
  /** What the prediction did (spacings, sizes, windows) and its warnings. */
  plan: CasePlan;
}

const AXIS_INDEX: Readonly<Record<string, 0 | 1 | 2>> = { depth: 0, height: 1, width: 2 };

/** The file name of `output` with `suffix` in place of its image ending (e.g. '.json'). */
export function withImageSuffix(output: string, suffix: string): string {
  const f = formatOf(output);
  if (f !== undefined && f.format === 'dicom' && f.ending === '.dcm') return output.slice(0, output.length - (output.endsWith('.seg.dcm') ? 8 : 4)) + suffix;
  if (f === undefined || f.format === 'dicom') throw new MisfmError('ARGUMENT', `output must end in an image ending (${SUPPORTED_ENDINGS.split(' (')[0]}), got '${path.basename(output)}'`, { file: output });
  return output.slice(0, output.length - f.ending.length) + suffix;
}

interface Undo { reo?: Pick<Reoriented, 'map' | 'original'>; box?: { box: Box; grid: Geometry }; beforeResample?: Geometry }

/**
 * Geometric preprocessing; returns the working volume, how to undo it, and the spacing before
 * resampling (in the working axis order). An input already at the model's spacing is not resampled.
 */
function prepareGeometry(vol: Volume, pre: ModelBundle['preprocess']): { work: Volume; undo: Undo; nativeSpacing: Vec3 } {
  const undo: Undo = {};
  let v = vol;
  // Undo keeps geometry only, never voxel arrays, so intermediate volumes can be collected.
  if (pre.reorient !== false) { const r = reorient(v, pre.reorient); undo.reo = { map: r.map, original: r.original }; v = r.volume; }
  if (pre.bodyCrop) { const grid = geometryOf(v); const c = bodyCrop(v); undo.box = { box: c.box, grid }; v = c.volume; }
  const nativeSpacing = [...v.spacing] as Vec3;
  if (pre.spacing !== null && !sameSpacing(v.spacing, pre.spacing)) { undo.beforeResample = geometryOf(v); v = resampleToSpacing(v, pre.spacing, { interpolation: 'linear' }); }
  return { work: v, undo, nativeSpacing };
}

/** Map a volume on the working grid back to the input grid. */
function undoGeometry(v: Volume, undo: Undo, interpolation: 'nearest' | 'linear'): Volume {
  let out = v;
  if (undo.beforeResample !== undefined) out = resampleToReference(out, undo.beforeResample, { interpolation });
  if (undo.box !== undefined) out = pasteBack(out, undo.box.box, undo.box.grid, 0);
  if (undo.reo !== undefined) out = undoReorient(out, undo.reo);
  return out;
}

function normalise(v: Volume, intensity: ModelBundle['preprocess']['intensity']): { vol: Volume; padValue: number | 'min' } {
  switch (intensity.kind) {
    case 'ct-window': return { vol: clipAndScale(v, { lo: intensity.window[0], hi: intensity.window[1] }), padValue: -1 };
    case 'zscore': return { vol: normalizeMeanStd(v), padValue: 'min' };
    case 'none': return { vol: v, padValue: 'min' };
    default: throw new MisfmError('CONFIG', `unknown intensity normalisation ${JSON.stringify(intensity)}`);
  }
}

/** The sliding-window window for a bundle: PCT-Net's fixed input size, else the configured one. */
export function windowFor(bundle: ModelBundle, requested?: Triple3): Triple3 {
  const fixed = bundle.model.inputSize;
  const w = requested ?? (fixed !== null ? fixed as Triple3 : bundle.inference?.window);
  if (w === undefined) throw new MisfmError('ARGUMENT', `the ${bundle.modelConfig.name} model has no fixed input size and the checkpoint records no inference window; give a window`);
  if (fixed !== null && fixed.some((s, i) => s !== w[i])) {
    throw new ShapeError('predict', `the window [${w.join(',')}] must equal the network input size [${fixed.join(',')}] (${bundle.modelConfig.name} accepts only that size; images are padded, windows never shrink)`);
  }
  const div = bundle.model.sizeDivisor;
  if (w.some((s, i) => s % (div[i] ?? 1) !== 0)) throw new ShapeError('predict', `the window [${w.join(',')}] must be a multiple of [${div.join(',')}] for ${bundle.modelConfig.name}`);
  return [w[0], w[1], w[2]];
}

/**
 * The network channels for a probability request. Classes are named as in the written label map
 * (label value, or class name), never by channel index: with data.labels [1,5,6] channel 2 is
 * written as value 5, and asking for 5 must give that class, not channel 5.
 */
export function probabilityChannels(bundle: Pick<ModelBundle, 'modelConfig' | 'labelValues' | 'classNames'>, spec: 'all' | readonly (number | string)[]): number[] {
  const classNum = bundle.modelConfig.classNum;
  if (spec === 'all') return Array.from({ length: classNum - 1 }, (_, i) => i + 1);
  const values = bundle.labelValues ?? Array.from({ length: classNum }, (_, i) => i);
  const names = bundle.classNames;
  const known = values.map((v, i) => (names?.[i] !== undefined ? `${v} (${names[i]})` : String(v))).join(', ');
  const out = new Set<number>();
  for (const item of spec) {
    const asNumber = typeof item === 'number' ? item : /^\d+$/.test(item.trim()) ? Number(item.trim()) : null;
    const c = asNumber !== null ? values.indexOf(asNumber) : (names ?? []).indexOf(String(item).trim());
    if (c < 0 || c >= classNum) throw new MisfmError('ARGUMENT', `probability class '${item}' is not one of the model's classes: ${known}`);
    out.add(c);
  }
  return [...out].sort((a, b) => a - b);
}

/** One DICOM-SEG segment per foreground class, named as the model names it, under the written label value. */
export function segSegments(bundle: Pick<ModelBundle, 'modelConfig' | 'labelValues' | 'classNames'>): SegSegment[] {
  return Array.from({ length: bundle.modelConfig.classNum - 1 }, (_, i) => {
    const value = bundle.labelValues?.[i + 1] ?? i + 1;
    return { value, label: bundle.classNames?.[i + 1] ?? `class_${value}` };
  });
}

/** A DICOM folder or .dcm file (what readImage reads as DICOM). */
async function isDicomInput(p: string): Promise<boolean> {
  try {
    if ((await fs.promises.stat(p)).isDirectory()) return true;
  } catch { return false; }
  return formatOf(p)?.format === 'dicom';
}

function distinctValues(d: VoxelArray): number[] {
  const seen = new Set<number>();
  for (let i = 0; i < d.length; i++) seen.add(d[i]!);
  return [...seen].sort((a, b) => a - b);
}

/**
 * Predict one case and write its label map (uint8, or uint16 above 256 classes) to `outputPath`
 * with the input's exact geometry, plus the sidecar `<stem>.json` and, when asked, probability
 * maps `<stem>_prob<c>.<ext>`. Throws a MisfmError naming the file for unreadable input.
 */
/**
 * Refuse an input that is not a CT in HU for a network trained on CT (same test as prepare's
 * modality detection: air puts the 0.5th intensity percentile of a CT below -500 HU). An MR or
 * a normalised image would otherwise be segmented into confident nonsense without a word.
 */
function assertCTLike(vol: Volume, file: string, intensity: InferencePreprocess['intensity']): void {
  const p = lowPercentile(vol.data);
  if (p < -500) return;
  const w = intensity.kind === 'ct-window' ? ` ${intensity.window[0]}..${intensity.window[1]}` : '';
  throw new MisfmError('DATA', `does not look like a CT in Hounsfield units (0.5th intensity percentile ${Number(p.toPrecision(4))}; ` +
    `a CT has air below -500), but the model was trained on CT (recorded intensity window${w}): use a model trained on this ` +
    'modality, or give --intensity explicitly to run it anyway', { file });
}

export async function predictCase(bundle: ModelBundle, inputPath: string, outputPath: string, opts: PredictOptions = {}): Promise<PredictResult> {
  const t0 = performance.now();
  const sidecar = (opts.sidecar ?? true) ? withImageSuffix(outputPath, '.json') : null;
  // A .dcm output is a DICOM Segmentation of the DICOM input (probability maps then go to .nii.gz).
  const dicomSeg = formatOf(outputPath)!.format === 'dicom';
  if (dicomSeg && !(await isDicomInput(inputPath))) {
    throw new MisfmError('ARGUMENT', 'DICOM-SEG output needs a DICOM series as input (it references the source images); write .nii.gz instead', { file: inputPath });
  }
  const ending = dicomSeg ? '.nii.gz' : formatOf(outputPath)!.ending;
  const classNum = bundle.modelConfig.classNum;
  // Output channels, and the label value each is written under (file suffix, sidecar key).
  const probClasses = probabilityChannels(bundle, opts.probabilities ?? []);
  const valueOf = (c: number): number => bundle.labelValues?.[c] ?? c;
  const inf = bundle.inference;
  const window = windowFor(bundle, opts.window);
  // Only grids outlive this block: the voxel arrays of the input and its preprocessed copies can
  // be garbage-collected once the image tensor exists (they are several times the label map).
  const { image, padValue, source, workGrid, undo, t1, nativeSpacing, inputModality } = await (async () => {
    const vol = await readImage(inputPath, opts.read ?? {});
    if (bundle.expectsCT === true) assertCTLike(vol, inputPath, bundle.preprocess.intensity);
    const tRead = performance.now();
    const { work, undo: u, nativeSpacing: ns } = prepareGeometry(vol, bundle.preprocess);
    const { vol: normed, padValue: pv } = normalise(work, bundle.preprocess.intensity);
    return {
      image: volumeToBatch(normed, 'image'), padValue: pv, source: geometryOf(vol), workGrid: geometryOf(work), undo: u, t1: tRead,
      nativeSpacing: ns, inputModality: decideModality('auto', undefined, vol),
    };
  })();
  const t2 = performance.now();
  const stride = opts.stride ?? (opts.overlap === undefined && inf?.stride != null ? inf.stride : undefined);
  const workShape: Triple3 = [workGrid.size[2], workGrid.size[1], workGrid.size[0]];
  const duplicates = opts.duplicates ?? 'weighted';
  const windowPlan = planWindows(workShape, { window, duplicates, ...(stride !== undefined ? { stride } : { overlap: opts.overlap ?? inf?.overlap ?? 0.5 }) });
  const casePlan: CasePlan = {
    inputSpacing: nativeSpacing, inputSize: [...source.size] as Vec3, modelSpacing: bundle.preprocess.spacing, workSize: [...workGrid.size] as Vec3,
    window, windows: windowPlan.windows.length,
    warnings: predictionWarnings({
      inputSpacing: nativeSpacing, modelSpacing: bundle.preprocess.spacing, checkpointKind: bundle.provenance.kind,
      training: bundle.trainingData ?? null, inputModality, workShape, window,
    }),
  };
  opts.onPlan?.(casePlan);
  let seg: SegmentResult;
  try {
    seg = withPrecision(opts.precision ?? 'fp32', () => slidingWindowSegment(modelPredictor(bundle.model), image, {
      window,
      ...(stride !== undefined ? { stride } : { overlap: opts.overlap ?? inf?.overlap ?? 0.5 }),
      batchSize: opts.batchSize ?? inf?.batchSize ?? 1,
      blend: opts.blend ?? inf?.blend ?? 'gaussian',
      sigmaScale: opts.sigmaScale ?? inf?.sigmaScale ?? 1 / 8,
      ttaFlips: opts.ttaFlips ?? (inf?.ttaFlips ?? []).map((a) => AXIS_INDEX[a] ?? 0),
      duplicates,
      padValue,
      device: bundle.device,
      probabilities: probClasses,
      ...(opts.onWindows !== undefined ? { onProgress: opts.onWindows } : {}),
    }));
  } finally {
    image.dispose();
  }
  const t3 = performance.now();

  let labels = undoGeometry({ data: seg.labels, ...workGrid }, undo, 'nearest');
  const keep = opts.keepLargest ?? inf?.keepLargest ?? 'none';
  if (keep !== 'none') {
    const shape: Triple3 = [labels.size[2], labels.size[1], labels.size[0]];
    labels = { ...labels, data: keepLargestComponent(labels.data as Uint8Array | Uint16Array, shape, keep, opts.connectivity ?? 26) };
  }
  const values = bundle.labelValues;
  if (values !== null && values.some((v, i) => v !== i)) {
    const maxV = Math.max(...values);
    const mapped = maxV <= 255 ? new Uint8Array(labels.data.length) : new Uint16Array(labels.data.length);
    for (let i = 0; i < mapped.length; i++) mapped[i] = values[labels.data[i]!] ?? 0;
    labels = { ...labels, data: mapped };
  }
  if (labels.size.some((s, i) => s !== source.size[i])) {
    throw new MisfmError('GEOMETRY', `internal: prediction size ${labels.size.join('x')} differs from the input ${source.size.join('x')}`, { file: inputPath });
  }
  const t4 = performance.now();

  fs.mkdirSync(path.dirname(path.resolve(outputPath)), { recursive: true });
  const maxLabel = values !== null ? Math.max(...values) : seg.classNum - 1;
  if (dicomSeg) {
    const src = await readDicomSource(inputPath, opts.read ?? {});
    await writeDicomSeg(outputPath, { data: labels.data, ...source }, segSegments(bundle), src, { algorithmName: bundle.modelConfig.name });
  } else {
    await writeLike(outputPath, labels.data, source, { dtype: maxLabel <= 255 ? 'uint8' : 'uint16' });
  }
  const probabilityFiles: string[] = [];
  for (const c of probClasses) {
    const p = seg.probabilities.get(c)!;
    const back = undoGeometry({ data: p, ...workGrid }, undo, 'linear');
    const file = withImageSuffix(outputPath, `_prob${valueOf(c)}${ending}`);
    let data: VoxelArray = back.data;
    if (opts.probabilityFormat === 'uint8') {
      const u = new Uint8Array(data.length);
      for (let i = 0; i < u.length; i++) u[i] = Math.round(Math.min(1, Math.max(0, data[i]!)) * 255);
      data = u;
    }
    await writeLike(file, data, source);
    probabilityFiles.push(file);
  }
  const t5 = performance.now();
  const timings = { read: t1 - t0, preprocess: t2 - t1, inference: t3 - t2, postprocess: t4 - t3, write: t5 - t4, total: t5 - t0 };
  const labelsFound = distinctValues(labels.data);
  if (sidecar !== null) {
    const names = bundle.classNames;
    writeJsonAtomic(sidecar, {
      format: 'misfm-prediction-1',
      misfmVersion: VERSION,
      input: path.resolve(inputPath),
      output: path.resolve(outputPath),
      classNum,
      // Keys are the label values written in the map (the dataset's own values when the run had data.labels).
      classes: names === null ? null : Object.fromEntries(Array.from({ length: classNum }, (_, i) => [String(values?.[i] ?? i), names[i] ?? `class_${i}`])),
      labelsFound,
      probabilities: probabilityFiles.length === 0 ? null : { format: opts.probabilityFormat ?? 'float32', files: Object.fromEntries(probClasses.map((c, i) => [String(valueOf(c)), path.basename(probabilityFiles[i]!)])) },
      geometry: source,
      model: { name: bundle.modelConfig.name, ...bundle.provenance },
      preprocess: bundle.preprocess,
      plan: casePlan,
      inference: {
        window, stride: seg.stride, batchSize: opts.batchSize ?? inf?.batchSize ?? 1, duplicates: opts.duplicates ?? 'weighted',
        ttaFlips: opts.ttaFlips ?? inf?.ttaFlips ?? [], keepLargest: keep, device: bundle.device, precision: opts.precision ?? 'fp32',
        windowsComputed: seg.windowsComputed, referenceWindows: seg.referenceWindows,
      },
      timingsMs: Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, Math.round(v)])),
      createdAt: new Date().toISOString(),
    });
  }
  return { output: outputPath, sidecar, probabilityFiles, timings, windowsComputed: seg.windowsComputed, referenceWindows: seg.referenceWindows, labelsFound, plan: casePlan };
}
