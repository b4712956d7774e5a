/**
 * `misfm train` for VISTA3D: one stage of the four-stage recipe (config section `vista3d`) on the
 * prepared cache, through the shared trainer (run folder, metrics log, checkpoints, exact resume).
 *
 * One trainer iteration is one click round, i.e. one optimizer step (spec §10.2): a patch of the
 * point stages gives up to `iterNum` iterations, each with the clicks accumulated so far, the
 * next two per object drawn from the round's false negatives/positives before the step. The data
 * stream therefore carries the current patch and its clicks; its position (patch index, round,
 * clicks) is what a checkpoint saves, and every random draw derives from (seed, patch index,
 * round), so a resumed run repeats the same losses.
 *
 * Geometry: VISTA3D sees what `misfm segment` gives it, RAS-oriented volumes as MONAI's (x, y, z)
 * tensors with the CT window mapped to [0, 1]; the cache must be prepared with orientation RAS
 * (a raw dataset is prepared so). Labels map onto the class table by name (vista3d.labelTable)
 * or explicitly (vista3d.labelMap); held-out classes become unlabelled.
 */
import path from 'node:path';
import { readFileSync } from 'node:fs';
import type { RunConfig } from '../../config/types.js';
import type { Vista3dDataset, Vista3dStageConfig } from '../../config/vista3d.js';
import { readyCases, type CachedCase } from '../../data/manifest.js';
import { Loader } from '../../data/loader.js';
import { CacheVolume } from '../../data/reader.js';
import { fromTypedArray, manualSeed } from '../../engine/creation.js';
import type { Tensor } from '../../engine/tensor.js';
import { loadCheckpointFile } from '../../io/checkpoint/index.js';
import { VISTA3D, type PointPrompts } from '../../models/vista3d/model.js';
import { convertVista3dResearchStateDict, isVista3dStateDict } from '../../models/vista3d/keys.js';
import { VISTA3D_CLASS_NAMES, SPECIAL_INDEX } from '../../models/vista3d/classes.js';
import { autoLogits, pointLogits } from '../../infer/vista3d/inferer.js';
import { Rng } from '../../util/rng.js';
import { CheckpointError, MisfmError } from '../../util/errors.js';
import { train, type Batch, type BatchSource, type TrainSummary, type TrainableModel, type ValidationResult } from '../trainer.js';
import { adoptInitPreprocessing } from '../init.js';
import type { FinetuneOptions } from '../finetune.js';
import { explicitSplit, seededSplit, setUpCache, startRun, type Split } from '../run-setup.js';
import { reduceSum, shardItems, type DistributedContext } from '../../distributed/context.js';
import { mapLabelNames, readLabelTable } from './labelmap.js';
import { sampleCentrePoints, type Shape3 } from './sampler.js';
import { slicSupervoxels } from './supervoxels.js';
import { freezeForStage, followUpPoints, patchPrompts, roundLoss, type PatchPrompts } from './step.js';

/**
 * The fine-tuning task's options; `data` is a cache prepared with orientation RAS, or image inputs
 * to prepare so. With `distributed`, rank r of W trains on patches r, r+W, ... of the sample
 * stream (each rank runs its own click rounds), and the trainer averages the gradients.
 */
export type Vista3dTrainOptions = FinetuneOptions;

export interface Vista3dTrainResult extends TrainSummary {
  runDir: string; cache: string; stage: number; trainCases: string[]; validCases: string[];
  /** Class-table indices trained (the union of the datasets' label sets after their maps, hold-outs removed). */
  labelSet: number[];
  frozen: number;
}

/** Where a dataset's label values come from: the recipe's default labels or one of vista3d.datasets. */
type LabelSource = Pick<Vista3dDataset, 'labelTable' | 'labelMap'>;

/** Local label value -> class-table index for a recipe's default labels (labelTable by name, labelMap beats it; hold-outs and classes outside `classes` dropped). */
export function vista3dLabelMap(cfg: RunConfig, log: (l: string) => void = () => undefined, source: LabelSource = cfg.vista3d!): Map<number, number> {
  const r = cfg.vista3d!;
  const lastClass = cfg.model.name === 'vista3d' ? cfg.model.nClasses - 1 : 132;
  const map = new Map<number, number>();
  if (source.labelTable !== null) {
    const m = mapLabelNames(readLabelTable(source.labelTable));
    for (const [k, v] of m.map) map.set(k, v);
    if (m.unmapped.length > 0) log(`note: ${m.unmapped.length} label name(s) of ${source.labelTable} have no VISTA3D class and are unlabelled: ${m.unmapped.slice(0, 8).map((u) => `${u.value} ${u.name}`).join(', ')}${m.unmapped.length > 8 ? ', ...' : ''}`);
  } else if (Object.keys(source.labelMap).length === 0) {
    for (let v = 1; v <= lastClass; v++) map.set(v, v); // the values are class-table indices
  }
  for (const [k, v] of Object.entries(source.labelMap)) map.set(Number(k), v);
  for (const [k, v] of [...map]) {
    if (r.holdOut.includes(v) || (r.classes !== null && !r.classes.includes(v))) map.delete(k);
  }
  return map;
}

/** The dataset of vista3d.datasets that names case `id` (`*` matches any run of characters), or -1 (the default labels). */
export function datasetOfCase(datasets: readonly Vista3dDataset[], id: string): number {
  const escape = (p: string): string => p.replace(/[.+?^$(){}|[\]\\]/g, '\\$&');
  const matches = (pattern: string): boolean => new RegExp('^' + pattern.split('*').map(escape).join('.*') + '$').test(id);
  return datasets.findIndex((d) => d.cases.some(matches));
}

/** How one case's labels are read: its dataset, label value -> class index, and the classes its dataset trains. */
export interface CaseLabels {
  /** Index into vista3d.datasets, -1 for the default labels. */
  dataset: number;
  map: Map<number, number>;
  /** The dataset's label set: the classes its training cases' labels map to (background prompts come from these only). */
  labelSet: number[];
}

/**
 * Per-case label maps and per-dataset label sets (VISTA3D trains each dataset on its own
 * label_set, so a class that a dataset does not annotate is never a background prompt there).
 * A dataset that names no case is an error (a typo would otherwise silently train it on the wrong map).
 */
export function vista3dCaseLabels(cfg: RunConfig, cases: readonly CachedCase[], trainIds: readonly string[], log: (l: string) => void = () => undefined): Map<string, CaseLabels> {
  const r = cfg.vista3d!;
  const maps = [vista3dLabelMap(cfg, log), ...r.datasets.map((d) => vista3dLabelMap(cfg, log, d))];
  const of = new Map(cases.map((c) => [c.id, datasetOfCase(r.datasets, c.id)]));
  r.datasets.forEach((d, i) => {
    if (![...of.values()].includes(i)) throw new MisfmError('CONFIG', `vista3d.datasets[${i}] (cases ${d.cases.join(', ')}) names no case of the cache; its cases are ${cases.map((c) => c.id).join(', ')}`);
  });
  const sets = maps.map((map, i) => [...new Set(cases.filter((c) => of.get(c.id) === i - 1 && trainIds.includes(c.id))
    .flatMap((c) => Object.keys(c.label?.stats.classes ?? {}).map(Number)).map((v) => map.get(v)).filter((v): v is number => v !== undefined))].sort((a, b) => a - b));
  return new Map(cases.map((c) => {
    const d = of.get(c.id)!;
    return [c.id, { dataset: d, map: maps[d + 1]!, labelSet: sets[d + 1]! }];
  }));
}

/** The name of a class-table index for logs and metrics. */
export function className(c: number): string {
  return (VISTA3D_CLASS_NAMES[c] ?? `class ${c}`).replace(/ /g, '_');
}

/** (D,H,W) C-order (x fastest) -> MONAI's (x,y,z) C-order (z fastest). */
export function zyxToXyz<T extends Float32Array | Uint8Array | Int16Array | Uint16Array>(a: ArrayLike<number>, shape: readonly number[], out: T): T {
  const [D, H, W] = shape as [number, number, number];
  for (let z = 0; z < D; z++) for (let y = 0; y < H; y++) {
    const src = (z * H + y) * W;
    for (let x = 0; x < W; x++) out[(x * H + y) * D + z] = a[src + x]!;
  }
  return out;
}

/** Loader sample in [-1, 1] (the CT window) -> the bundle's [0, 1]. */
function toUnit(a: Float32Array): Float32Array {
  for (let i = 0; i < a.length; i++) a[i] = (a[i]! + 1) / 2;
  return a;
}

/** Where the VISTA3D stream stands: the next fresh patch, or the patch in progress with its clicks. */
export interface Vista3dStreamPosition {
  next: number;
  patch: { index: number; round: number; points: PointPrompts | null } | null;
}

interface CurrentPatch {
  index: number; image: Float32Array; shape: Shape3; prompts: PatchPrompts; points: PointPrompts | null; round: number; rng: Rng;
}

/** The batch a VISTA3D step sees: the patch image [1,1,X,Y,Z] and its prompts' targets [B,1,X,Y,Z]. */
interface Vista3dBatch extends Batch { patch: CurrentPatch }

/** Patches (and click rounds) as a trainer batch source, with the step that trains one round. */
class Vista3dStream implements BatchSource {
  #current: CurrentPatch | null = null;
  #next: number;
  #restore: Vista3dStreamPosition['patch'];

  /**
   * `airBelow`: HU −800 on the [0, 1] intensity scale (Algorithm 2 zeroes the largest air component
   * of the supervoxels), null when the stage draws no supervoxels.
   */
  constructor(private readonly loader: Loader, pos: Vista3dStreamPosition | null, private readonly caseLabels: ReadonlyMap<string, CaseLabels>,
    private readonly stage: Vista3dStageConfig, private readonly seed: number, private readonly airBelow: number | null = null) {
    this.#next = pos?.patch?.index ?? pos?.next ?? 0;
    this.#restore = pos?.patch ?? null;
  }

  /** Every draw of patch i derives from (seed, i): prompts from stream 0, round r's clicks from stream r. */
  #rng(index: number): Rng { return new Rng(this.seed).fork(0x5157a3d).fork(index); }

  async next(): Promise<Batch> {
    let empty = 0;
    while (this.#current === null) {
      const b = await this.loader.nextBatch();
      if (b === undefined || b.label === undefined) throw new MisfmError('DATA', 'the data loader ended unexpectedly');
      const [, , D, H, W] = b.shape;
      const shape: Shape3 = [W, H, D];
      const image = toUnit(zyxToXyz(b.image, [D, H, W], new Float32Array(b.image.length)));
      const cl = this.caseLabels.get(b.samples[0]!.caseId)!; // the loader mapped the labels with this case's map
      const labels = zyxToXyz(b.label, [D, H, W], new Int16Array(b.label.length));
      const rng = this.#rng(b.firstIndex);
      // Supervoxels of the patch (deterministic in the image, so a resumed patch sees the same ones).
      const svc = this.stage.prompts === 'points' ? this.stage.supervoxels : null;
      const sv = svc == null ? null : slicSupervoxels(image, shape, { segments: svc.segments, compactness: svc.compactness, airBelow: this.airBelow });
      const prompts = patchPrompts(labels, shape, cl.labelSet, this.stage, rng.fork(0), sv);
      this.#next = b.firstIndex + 1;
      if (prompts === null) {
        if (++empty >= 1000) throw new MisfmError('DATA', `1000 crops in a row held no class to prompt for (last case ${b.samples[0]!.caseId}, classes ${cl.labelSet.join(', ')}); check the label map and vista3d.classes`);
        continue;
      }
      this.#current = { index: b.firstIndex, image, shape, prompts, points: prompts.points, round: 0, rng };
      if (this.#restore !== null && this.#restore.index === b.firstIndex) {
        this.#current.round = this.#restore.round;
        this.#current.points = this.#restore.points;
      }
      this.#restore = null;
    }
    const c = this.#current;
    const B = c.prompts.classes.length, vol = c.image.length;
    const tgt = new Float32Array(B * vol);
    c.prompts.targets.forEach((t, i) => tgt.set(t, i * vol));
    const batch: Vista3dBatch = { image: fromTypedArray(c.image, [1, 1, ...c.shape]), target: fromTypedArray(tgt, [B, 1, ...c.shape]), patch: c };
    return batch;
  }

  /** One click round: forward, loss, and (before the optimizer step, as the research loop) the next clicks. */
  step(model: VISTA3D, batch: Batch): Tensor {
    const c = (batch as Vista3dBatch).patch;
    const { loss, logits } = roundLoss(model, batch.image, c.prompts, c.points, this.stage, batch.target);
    if (loss === null) throw new MisfmError('DATA', `VISTA3D patch ${c.index}: no prompt with a target (internal: the stream should have skipped it)`);
    c.round++;
    if (this.stage.prompts === 'points' && c.points !== null && c.round < this.stage.iterNum) {
      const next = followUpPoints(logits, c.prompts, c.points, c.rng.fork(c.round));
      if (next === null) this.#current = null; else c.points = next;
    } else {
      this.#current = null;
    }
    logits.dispose();
    return loss;
  }

  position(): Vista3dStreamPosition {
    const c = this.#current;
    return { next: this.#next, patch: c === null ? null : { index: c.index, round: c.round, points: c.points } };
  }

  close(): Promise<void> { return this.loader.close(); }
}

function dice(logits: Float32Array, offset: number, target: ArrayLike<number>, cls: number, vol: number): number {
  let inter = 0, p = 0, g = 0;
  for (let j = 0; j < vol; j++) {
    const a = logits[offset + j]! > 0 ? 1 : 0; // NaN (no window) counts as background
    const b = target[j] === cls ? 1 : 0;
    inter += a & b; p += a; g += b;
  }
  return p + g === 0 ? 1 : (2 * inter) / (p + g);
}

/** A case's whole volume as the network sees it: (x,y,z) image in [0, 1] and class-table labels. */
export function readCaseXyz(cfg: RunConfig, c: CachedCase, map: ReadonlyMap<number, number>): { image: Float32Array; labels: Uint8Array; shape: Shape3 } {
  const iv = CacheVolume.open(c.imageFile), lv = CacheVolume.open(c.labelFile!);
  try {
    const [D, H, W] = iv.shape;
    const raw = iv.readAll();
    const it = cfg.data.intensity;
    const [lo, hi] = it.kind === 'ct-window' ? it.window : [-1000, 1000];
    const img = new Float32Array(raw.length);
    for (let i = 0; i < raw.length; i++) img[i] = (Math.min(hi, Math.max(lo, raw[i]!)) - lo) / (hi - lo);
    const lab = lv.readAll();
    const mapped = new Uint8Array(lab.length);
    for (let i = 0; i < lab.length; i++) mapped[i] = map.get(lab[i]!) ?? 0;
    return { image: zyxToXyz(img, [D, H, W], new Float32Array(img.length)), labels: zyxToXyz(mapped, [D, H, W], new Uint8Array(mapped.length)), shape: [W, H, D] };
  } finally { iv.close(); lv.close(); }
}

/**
 * Whole-volume validation on held-out cases: the automatic branch (auto stages) or one click at
 * the centre of each class (point stages), Dice per class over the classes of the label set
 * present in the case; the score is their mean.
 */
export function vista3dValidator(cfg: RunConfig, cases: readonly CachedCase[], caseLabels: ReadonlyMap<string, CaseLabels>, labelSet: readonly number[], stage: Vista3dStageConfig) {
  const [wd, wh, ww] = cfg.inference.window;
  const roi: Shape3 = [ww, wh, wd];
  return async (m: TrainableModel, dist?: DistributedContext): Promise<ValidationResult> => {
    const model = m as unknown as VISTA3D;
    const sums = new Map<number, { s: number; n: number }>();
    // Ranks each validate a share of the cases; the per-class sums are added up exactly.
    for (const c of shardItems(dist, cases)) {
      const v = readCaseXyz(cfg, c, caseLabels.get(c.id)!.map);
      const vol = v.image.length;
      const present = labelSet.filter((k) => v.labels.includes(k));
      if (present.length === 0) continue;
      const x = fromTypedArray(v.image, [1, 1, ...v.shape]);
      try {
        if (stage.prompts !== 'points') {
          const r = autoLogits({ model }, x, present, { roi, overlap: cfg.inference.overlap, blend: cfg.inference.blend });
          present.forEach((k, b) => { const e = sums.get(k) ?? { s: 0, n: 0 }; e.s += dice(r.logits, b * vol, v.labels, k, vol); e.n++; sums.set(k, e); });
        } else {
          for (const k of present) {
            const p = sampleCentrePoints(v.labels, v.shape, [k]);
            const r = pointLogits({ model }, x, { coords: p.coords[0]!, labels: [SPECIAL_INDEX.includes(k) ? 3 : 1] }, { roi, promptClass: [k] });
            const e = sums.get(k) ?? { s: 0, n: 0 }; e.s += dice(r.logits, 0, v.labels, k, vol); e.n++; sums.set(k, e);
          }
        }
      } finally { x.dispose(); }
      await new Promise((res) => setImmediate(res));
    }
    const flat = await reduceSum(dist, Float64Array.from(labelSet.flatMap((k) => [sums.get(k)?.s ?? 0, sums.get(k)?.n ?? 0])));
    const metrics: Record<string, number> = {};
    let total = 0, classes = 0;
    labelSet.forEach((k, i) => {
      const n = flat[2 * i + 1]!;
      if (n === 0) return;
      metrics[`dice_${className(k)}`] = flat[2 * i]! / n; total += flat[2 * i]! / n; classes++;
    });
    return { score: classes === 0 ? 0 : total / classes, metrics, reduced: true };
  };
}

/** Initialise from a VISTA3D checkpoint of the same configuration (the previous stage's, the bundle's, a research one). */
async function initVista3d(model: VISTA3D, file: string, log: (l: string) => void): Promise<void> {
  const ck = await loadCheckpointFile(file);
  if (!isVista3dStateDict(ck.stateDict.keys())) throw new CheckpointError(file, 'is not a VISTA3D checkpoint (--init must be a VISTA3D state dict, e.g. the previous stage\'s checkpoints/latest.pt)');
  const { stateDict } = convertVista3dResearchStateDict(ck.stateDict);
  try { model.loadStateDict(stateDict); } catch (err) {
    throw new CheckpointError(file, `does not fit this VISTA3D configuration: ${(err as Error).message}`);
  }
  log(`initialised from ${file}: all ${stateDict.size} VISTA3D tensors loaded`);
}

function cacheOrientation(cache: string): unknown {
  try {
    return (JSON.parse(readFileSync(path.join(cache, 'manifest.json'), 'utf8')) as { preprocess?: { reorient?: unknown } }).preprocess?.reorient;
  } catch { return undefined; }
}

/** Train one stage of VISTA3D end to end. */
export async function trainVista3d(o: Vista3dTrainOptions): Promise<Vista3dTrainResult> {
  let cfg = o.config;
  const mc = cfg.model;
  if (mc.name !== 'vista3d' || cfg.vista3d === undefined) throw new MisfmError('CONFIG', `trainVista3d needs model.name 'vista3d', got '${cfg.model.name}'`);
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const dist = o.distributed ?? null;
  if (o.resume !== true) {
    const adopted = await adoptInitPreprocessing(cfg, o.explicit ?? []);
    cfg = adopted.config;
    for (const l of adopted.lines) log(`adopted ${l}`);
  }
  const recipe = cfg.vista3d!;
  const stage = recipe.stages[recipe.stage - 1]!;
  const latest = startRun(cfg, 'finetune', 'misfm train', o.runDir, o.resume === true);
  const set = await setUpCache(cfg, o.data, o.runDir, log, { spacing: cfg.data.spacing, reorient: 'RAS', ...(o.labelsDir !== undefined ? { labels: o.labelsDir } : {}), ...(o.csv !== undefined ? { csv: o.csv } : {}) }, dist);
  const cache = set.cache;
  cfg = set.config;
  const orientation = cacheOrientation(cache);
  if (orientation !== 'RAS') {
    throw new MisfmError('DATA', `VISTA3D trains on RAS volumes (what misfm segment gives it), but this cache was prepared with orientation ${JSON.stringify(orientation ?? 'unknown')}: prepare it again with --orientation RAS`, { file: path.join(cache, 'manifest.json') });
  }
  const cases = readyCases(cache, { needLabels: true });
  const ids = cases.map((c) => c.id);
  let split: Split;
  if (o.validCases !== undefined) split = explicitSplit(ids, o.validCases, { item: 'case', held: 'validation', pool: 'the dataset' });
  else if (!recipe.validate) split = { train: ids, valid: [] }; // nothing to validate: every case trains
  else if (ids.length >= 2) split = seededSplit(ids, cfg.training.seed, 0.2);
  else { split = { train: ids, valid: ids }; log('note: a single labelled case: validation runs on the training case (no held-out estimate)'); }

  const trainCases = cases.filter((c) => split.train.includes(c.id));
  const caseLabels = vista3dCaseLabels(cfg, cases, split.train, log);
  const labelSet = [...new Set(trainCases.flatMap((c) => caseLabels.get(c.id)!.labelSet))].sort((a, b) => a - b);
  if (labelSet.length === 0) throw new MisfmError('DATA', `no training label maps onto a VISTA3D class to train (label values ${[...new Set(trainCases.flatMap((c) => Object.keys(c.label?.stats.classes ?? {})))].join(', ')}; set vista3d.labelTable or vista3d.labelMap, and check vista3d.classes / holdOut)`);
  if (recipe.datasets.length > 0) {
    for (const [i, ds] of [recipe, ...recipe.datasets].entries()) {
      const own = trainCases.filter((c) => caseLabels.get(c.id)!.dataset === i - 1);
      const classes = own.length > 0 ? caseLabels.get(own[0]!.id)!.labelSet.map(className).join(', ') : '';
      log(`${i === 0 ? 'default labels' : `dataset ${i - 1}`} (${ds.labelTable ?? 'labelMap'}): ${own.length} training case(s), classes ${classes || 'none'}`);
    }
  }
  log(`VISTA3D stage ${recipe.stage} (${stage.prompts === 'points' ? `interactive branch, ${stage.iterNum} click rounds per patch` : stage.prompts === 'mixed' ? 'class and point prompts blended (the bundle\'s fine-tune recipe)' : 'automatic branch'}): ${labelSet.length} classes${recipe.holdOut.length > 0 ? `, held out ${recipe.holdOut.map(className).join(', ')}` : ''}`);

  manualSeed(cfg.training.seed);
  const { name: _n, classNum: _c, ...arch } = mc;
  const model = new VISTA3D(arch);
  try {
    if (cfg.training.initCheckpoint !== null && o.resume !== true) await initVista3d(model, cfg.training.initCheckpoint, log);
    const frozen = freezeForStage(model, stage);
    if (frozen.length > 0) log(`frozen: ${frozen.length} parameter tensors (image encoder, up_layers, point head); training up_layers_auto and the class head`);
    const d = cfg.data;
    let stream: Vista3dStream | null = null;
    const validCases = cases.filter((c) => split.valid.includes(c.id));
    const summary = await train({
      model: model as unknown as TrainableModel, config: cfg, runDir: o.runDir, quiet: o.quiet ?? false,
      ...(o.resume === true ? { resumeFrom: latest } : {}),
      ...(o.stopAt !== undefined ? { stopAt: o.stopAt } : {}),
      makeSource: async (pos) => {
        const p = pos as Vista3dStreamPosition | null;
        const it = d.intensity.kind === 'ct-window' ? d.intensity.window : [-1000, 1000];
        const loader = await Loader.open({
          cache, mode: 'segment', cropSize: d.patchSize, batchSize: 1, workers: Math.max(1, d.numWorkers), prefetch: d.prefetch,
          intensity: { name: 'ct-window', lo: it[0]!, hi: it[1]! }, flip: false, foregroundP: stage.classCrops, caseIds: split.train,
          caseLabelMaps: Object.fromEntries([...caseLabels].map(([id, cl]) => [id, Object.fromEntries(cl.map)])), augment: d.augment, seed: cfg.training.seed, startIndex: p?.patch?.index ?? p?.next ?? 0,
          ...(dist !== null ? { shard: { rank: dist.rank, worldSize: dist.worldSize } } : {}),
        });
        stream = new Vista3dStream(loader, p, caseLabels, stage, cfg.training.seed, (-800 - it[0]!) / (it[1]! - it[0]!));
        return stream;
      },
      step: (m, batch) => stream!.step(m as unknown as VISTA3D, batch),
      ...(recipe.validate ? { validate: vista3dValidator(cfg, validCases, caseLabels, labelSet, stage) } : {}),
      distributed: dist,
    });
    return { ...summary, runDir: o.runDir, cache, stage: recipe.stage, trainCases: split.train, validCases: split.valid, labelSet, frozen: frozen.length };
  } finally {
    model.dispose();
  }
}
