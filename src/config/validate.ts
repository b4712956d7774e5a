/**
 * Validation of a complete run configuration: every section strictly (unknown keys are errors
 * with a suggestion), then the rules that tie sections together.
 */
import { ConfigError } from '../util/errors.js';
import { resolveModelConfig, suggest } from '../models/config.js';
import {
  type Check, bool, fail, int, isPlainObject, list, nullable, num, oneOf, section, sectionOf, show, str, strictObject, triple,
} from './check.js';
import {
  AXES, BLEND_MODES, CHECKPOINT_CHOICES, FUSION_MODES, INIT_MODES, INTENSITY_KINDS, KEEP_LARGEST_MODES, OPTIMIZERS,
  SCHEDULER_KINDS, SCHEDULER_UNITS, TASKS, PRETRAIN_METHODS, VOCO_VARIANTS, PATCH_SWAP_MODES, MIM_COUNTS, MIM_LOSSES,
  type PatchSwapConfig, type GenesisConfig, type MimConfig, type VoCoConfig,
  type DataConfig, type LabelsConfig, type InferenceConfig, type IntensityConfig, type OutputConfig, type RunConfig, type SchedulerConfig,
  type SslConfig, type TrainingConfig, type Triple,
} from './types.js';
import type { AugmentOp, AugmentSpec } from '../data/augment.js';
import { pretextClassNum } from './derive.js';
import { checkVista3dRecipe } from './vista3d.js';

/** Top-level keys of a run config. */
export const TOP_KEYS = ['task', 'model', 'data', 'ssl', 'training', 'inference', 'output'] as const;
/** Top-level keys that only some configs have (filled in when their model needs them). */
export const OPTIONAL_TOP_KEYS = ['vista3d'] as const;

const positive = num({ min: 0, minExclusive: true });
const nonNeg = num({ min: 0 });
const prob = num({ min: 0, max: 1 });
const optPath = nullable(str);

/** [min, max] integers with min <= max. */
function orderedPair(min: number): Check<[number, number]> {
  return (v, path) => {
    const p = list(int({ min }), { len: 2 })(v, path) as [number, number];
    if (p[0] > p[1]) fail(path, `must be [min, max] with min <= max, got ${show(v)}`);
    return p;
  };
}

function sizeBounds(path: string, lo: Triple, hi: Triple): void {
  const bad = lo.findIndex((l, i) => l > hi[i]!);
  if (bad >= 0) fail(`${path}.sizeMin`, `must not exceed sizeMax on any axis, got sizeMin ${show(lo)} and sizeMax ${show(hi)} (axis ${bad})`);
}

const intensity: Check<IntensityConfig> = (v, path) => {
  if (!isPlainObject(v)) fail(path, `must be a section like {"kind": "ct-window", "window": [-1000, 1000]} or {"kind": "zscore"}, got ${show(v)}`);
  const kind = oneOf(INTENSITY_KINDS)(v['kind'], `${path}.kind`);
  if (kind === 'zscore') {
    if ('window' in v) fail(`${path}.window`, `only applies to kind 'ct-window' (kind is 'zscore'); remove it`);
    strictObject(v, path, ['kind']);
    return { kind };
  }
  const s = strictObject(v, path, ['kind', 'window']);
  const w = list(num(), { len: 2 })(s['window'], `${path}.window`) as [number, number];
  if (!(w[0] < w[1])) fail(`${path}.window`, `must be [lower, upper] with lower < upper, got ${show(w)}`);
  return { kind, window: w };
};

/** One augmentation {p, range}: range [min, max] with min <= max, min > 0 (or >= 0), max <= maxHi. */
function augmentOp(o: { positive: boolean; maxHi?: number }): Check<AugmentOp> {
  return (v, path) => {
    const s = section<AugmentOp>(v, path, { p: prob, range: list(num(), { len: 2 }) as Check<[number, number]> });
    const [lo, hi] = s.range;
    if (lo > hi) fail(`${path}.range`, `must be [min, max] with min <= max, got ${show(s.range)}`);
    if (o.positive ? !(lo > 0) : !(lo >= 0)) fail(`${path}.range`, `must be ${o.positive ? '> 0' : '>= 0'}, got ${show(s.range)}`);
    if (o.maxHi !== undefined && hi > o.maxHi) fail(`${path}.range`, `must not exceed ${o.maxHi}, got ${show(s.range)}`);
    return s;
  };
}

const data: Check<DataConfig> = sectionOf<DataConfig>({
  cache: optPath,
  preprocess: nullable((v, path) => {
    if (!isPlainObject(v)) fail(path, `must be the preprocessing record of a cache manifest (an object) or null, got ${show(v)}`);
    return v as Record<string, unknown>;
  }),
  spacing: (v, path) => {
    if (v === 'plan' || v === 'native') return v;
    if (Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0)) return [v[0], v[1], v[2]] as [number, number, number];
    return fail(path, `must be 'plan', 'native' or three positive numbers [x, y, z] in mm, got ${show(v)}`);
  },
  folder: optPath,
  validFolder: optPath,
  patchSize: triple(1),
  intensity,
  batchSize: int({ min: 1 }),
  numWorkers: int({ min: 0, max: 256 }),
  prefetch: int({ min: 1, max: 64 }),
  foregroundOversample: prob,
  labels: nullable((v, path) => {
    const l = section<LabelsConfig>(v, path, { values: list(int({ min: 1 }), { min: 1 }), names: list(str, { min: 1 }) });
    if (l.names.length !== l.values.length) fail(`${path}.names`, `needs one name per value (${l.values.length}), got ${l.names.length}`);
    if (new Set(l.values).size !== l.values.length) fail(`${path}.values`, `must not repeat a value, got ${show(l.values)}`);
    return l;
  }),
  flips: sectionOf<Record<(typeof AXES)[number], boolean>>({ depth: bool, height: bool, width: bool }),
  flipProbability: prob,
  augment: sectionOf<AugmentSpec>({
    noise: augmentOp({ positive: false }),
    blur: augmentOp({ positive: true }),
    brightness: augmentOp({ positive: true }),
    contrast: augmentOp({ positive: true }),
    lowResolution: augmentOp({ positive: true, maxHi: 1 }),
  }),
});

const ssl: Check<SslConfig> = (v, path) => {
  const block = sectionOf<{ p: number; blockCount: [number, number]; blockSize: Triple }>({ p: prob, blockCount: orderedPair(0), blockSize: triple(1) });
  const s = section<SslConfig>(v, path, {
    method: oneOf(PRETRAIN_METHODS),
    mode: oneOf(FUSION_MODES),
    levels: int({ min: 1, max: 255 }),
    blocks: sectionOf<SslConfig['blocks']>({ count: orderedPair(0), sizeMin: triple(1), sizeMax: triple(1) }),
    grid: sectionOf<SslConfig['grid']>({ sizeMin: triple(1), sizeMax: triple(1), foregroundRatio: prob }),
    patchSwap: sectionOf<PatchSwapConfig>({ blockCount: orderedPair(0), blockSize: triple(1), mode: oneOf(PATCH_SWAP_MODES) }),
    genesis: sectionOf<GenesisConfig>({
      localShuffle: block,
      nonLinear: sectionOf<GenesisConfig['nonLinear']>({ p: prob, blocks: int({ min: 0 }), blockSize: triple(1) }),
      inOutPaint: sectionOf<GenesisConfig['inOutPaint']>({
        p: prob, inP: prob, inBlockCount: orderedPair(0), inBlockSize: triple(1), outBlockCount: orderedPair(0), outMargin: triple(0),
      }),
    }),
    mim: sectionOf<MimConfig>({ ratio: num({ min: 0, minExclusive: true, max: 1 }), blockSize: triple(1), count: oneOf(MIM_COUNTS), loss: oneOf(MIM_LOSSES) }),
    voco: sectionOf<VoCoConfig>({
      variant: oneOf(VOCO_VARIANTS), grid: int({ min: 2 }), randomCrops: int({ min: 1 }), hiddenDim: int({ min: 1 }), outDim: int({ min: 1 }),
      featureDropout: nullable(num({ min: 0, max: 1, maxExclusive: true })), emaMomentum: num({ min: 0, max: 1 }), augment: bool,
    }),
  });
  sizeBounds(`${path}.blocks`, s.blocks.sizeMin, s.blocks.sizeMax);
  sizeBounds(`${path}.grid`, s.grid.sizeMin, s.grid.sizeMax);
  return s;
};

const scheduler: Check<SchedulerConfig> = (v, path) => {
  const s = section<SchedulerConfig>(v, path, {
    kind: oneOf(SCHEDULER_KINDS),
    stepSize: int({ min: 1 }),
    gamma: positive,
    milestones: list(int({ min: 1 })),
    power: nonNeg,
    minLr: nonNeg,
    warmup: int({ min: 0 }),
    unit: oneOf(SCHEDULER_UNITS),
  });
  if (s.milestones.some((m, i) => i > 0 && m <= s.milestones[i - 1]!)) fail(`${path}.milestones`, `must be strictly increasing iterations, got ${show(s.milestones)}`);
  if (s.kind === 'multistep' && s.milestones.length === 0) fail(`${path}.milestones`, "must list at least one iteration when kind is 'multistep'");
  return s;
};

const training: Check<TrainingConfig> = (v, path) => {
  const t = section<TrainingConfig>(v, path, {
    optimizer: oneOf(OPTIMIZERS),
    lr: positive,
    weightDecay: nonNeg,
    momentum: num({ min: 0, max: 1, maxExclusive: true }),
    betas: list(num({ min: 0, max: 1, maxExclusive: true }), { len: 2 }) as Check<[number, number]>,
    amsgrad: bool,
    scheduler,
    iterations: int({ min: 1 }),
    validEvery: int({ min: 1 }),
    saveEvery: int({ min: 1 }),
    earlyStopPatience: nullable(int({ min: 1 })),
    gradClip: nullable(positive),
    deepSupervision: sectionOf<TrainingConfig['deepSupervision']>({ enabled: bool, weights: list(nonNeg, { min: 1 }) }),
    lossWeights: sectionOf<TrainingConfig['lossWeights']>({ dice: nonNeg, ce: nonNeg }),
    classWeights: nullable(list(nonNeg, { min: 1 })),
    seed: int({ min: 0 }),
    threads: nullable(int({ min: 1, max: 1024 })),
    precision: oneOf(['fp32', 'bf16', 'auto'] as const),
    activationCheckpointing: bool,
    syncBatchNorm: bool,
    initCheckpoint: optPath,
    initMode: oneOf(INIT_MODES),
  });
  if (t.deepSupervision.weights.every((w) => w === 0)) fail(`${path}.deepSupervision.weights`, `must not all be 0, got ${show(t.deepSupervision.weights)}`);
  if (t.lossWeights.dice === 0 && t.lossWeights.ce === 0) fail(`${path}.lossWeights`, 'dice and ce cannot both be 0');
  if (t.classWeights !== null && t.classWeights.every((w) => w === 0)) fail(`${path}.classWeights`, `must not all be 0, got ${show(t.classWeights)}`);
  if (t.scheduler.unit === 'validation' && t.scheduler.kind === 'step' && t.scheduler.stepSize < t.validEvery) {
    fail(`${path}.scheduler.stepSize`, `must be >= training.validEvery (${t.validEvery}) when the schedule advances per validation round, got ${t.scheduler.stepSize}`);
  }
  return t;
};

const inference: Check<InferenceConfig> = (v, path) => {
  const s = section<InferenceConfig>(v, path, {
    window: triple(1),
    overlap: num({ min: 0, max: 1, maxExclusive: true }),
    stride: nullable(triple(1)),
    batchSize: int({ min: 1 }),
    blend: oneOf(BLEND_MODES),
    sigmaScale: positive,
    ttaFlips: list(oneOf(AXES)),
    keepLargest: oneOf(KEEP_LARGEST_MODES),
    checkpoint: oneOf(CHECKPOINT_CHOICES),
  });
  if (new Set(s.ttaFlips).size !== s.ttaFlips.length) fail(`${path}.ttaFlips`, `lists an axis twice: ${show(s.ttaFlips)}`);
  if (s.stride !== null && s.stride.some((st, i) => st > s.window[i]!)) {
    fail(`${path}.stride`, `must not exceed the window ${show(s.window)} on any axis (that would leave gaps), got ${show(s.stride)}`);
  }
  return s;
};

const output: Check<OutputConfig> = sectionOf<OutputConfig>({ dir: str });

const sameTriple = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * Validate a complete config object (every key present; see resolveConfig for merging a partial
 * one over a preset) and return it typed. Throws ConfigError naming the dotted key.
 */
export function validateRunConfig(raw: unknown): RunConfig {
  if (!isPlainObject(raw)) throw new ConfigError('config', `must be an object with sections ${TOP_KEYS.join(', ')}, got ${show(raw)}`);
  for (const k of Object.keys(raw)) {
    const known = [...TOP_KEYS, ...OPTIONAL_TOP_KEYS];
    if (!(known as readonly string[]).includes(k)) fail(k, `unknown key${suggest(k, known)}; allowed top-level keys: ${known.join(', ')}`);
  }
  for (const k of TOP_KEYS) if (!(k in raw)) fail(k, 'is required');
  const task = oneOf(TASKS)(raw['task'], 'task');
  // Sections the model's tied values come from are checked first, so an error names their key.
  const d = data(raw['data'], 'data');
  const s = ssl(raw['ssl'], 'ssl');
  const model = resolveModelConfig(raw['model'], 'model');
  const t = training(raw['training'], 'training');
  const inf = inference(raw['inference'], 'inference');
  const out = output(raw['output'], 'output');

  if (model.name === 'pctnet') {
    if (!sameTriple(model.inputSize, d.patchSize)) {
      fail('model.inputSize', `${show(model.inputSize)} must equal data.patchSize ${show(d.patchSize)}: PCT-Net accepts only the input size it was built for (spec 1.7)`);
    }
    if (!sameTriple(inf.window, model.inputSize)) {
      fail('inference.window', `${show(inf.window)} must equal model.inputSize ${show(model.inputSize)} for PCT-Net (the window cannot shrink below the network input; spec 7.1)`);
    }
  }
  if (model.name === 'swinunetr') {
    // MONAI's check: the patch embedding and four mergings halve every axis five times.
    if (d.patchSize.some((v) => v % 32 !== 0)) fail('data.patchSize', `${show(d.patchSize)} must be a multiple of 32 on every axis for SwinUNETR`);
    if (inf.window.some((v) => v % 32 !== 0)) fail('inference.window', `${show(inf.window)} must be a multiple of 32 on every axis for SwinUNETR`);
  }
  if (task === 'pretrain') {
    if (s.method === 'volf' && model.classNum !== s.levels + 1) {
      fail('model.classNum', `must be ssl.levels + 1 = ${s.levels + 1} for Volume Fusion pretraining (background + ${s.levels} fusion levels), got ${model.classNum}`);
    }
    if (s.method === 'voco') {
      // The backbone's embedding is the output; model.classNum is unused (the fine-tuning head is separate).
      if (model.name !== 'swinunetr' && model.name !== 'pctnet') fail('model.name', `VoCo backbones are 'swinunetr' (VoCo's own) and 'pctnet' (pooled multi-scale encoder), got '${model.name}'`);
      if (d.patchSize[1] !== d.patchSize[2]) fail('data.patchSize', `${show(d.patchSize)}: VoCo crops are square in the H-W plane (D, r, r)`);
      if (d.batchSize < 2) fail('data.batchSize', `VoCo needs at least 2 volumes per batch (inter-volume contrast pairs volume i with i+1), got ${d.batchSize}`);
      if (model.name === 'swinunetr' && d.patchSize.some((v) => v < 64)) fail('data.patchSize', `${show(d.patchSize)}: SwinUNETR's VoCo embedding needs at least 64 per axis (encoder10's instance norm)`);
    } else if (s.method !== 'volf' && model.classNum !== pretextClassNum(s)) {
      fail('model.classNum', `must be ${pretextClassNum(s)} for ssl.method '${s.method}' (a reconstruction head: one output channel per input channel), got ${model.classNum}`);
    }
    // A batch of 1 is allowed: its foreground is drawn from a second scan (never the scan itself).
  }
  if (model.name === 'vista3d' && d.labels !== null) fail('data.labels', 'does not apply to VISTA3D: its labels map onto the class table through vista3d.labelTable / vista3d.labelMap; set data.labels to null');
  if (d.labels !== null && model.classNum !== d.labels.values.length + 1) {
    fail('model.classNum', `must be ${d.labels.values.length + 1} (background + the ${d.labels.values.length} classes of data.labels), got ${model.classNum}`);
  }
  if (t.deepSupervision.enabled && !('multiscalePred' in model && model.multiscalePred)) {
    fail('training.deepSupervision.enabled', 'needs model.multiscalePred = true (the network must return its multi-scale outputs); set one of the two');
  }
  if (t.classWeights !== null && t.classWeights.length !== model.classNum) {
    fail('training.classWeights', `must have model.classNum = ${model.classNum} values, got ${t.classWeights.length}: ${show(t.classWeights)}`);
  }
  if (model.name === 'vista3d') {
    const v = checkVista3dRecipe(raw['vista3d'], 'vista3d', model.nClasses);
    if (task !== 'finetune') fail('task', `VISTA3D trains with misfm train (task 'finetune'), got '${task}'`);
    if (d.batchSize !== 1) fail('data.batchSize', `must be 1 for VISTA3D (one patch per step, as the research configs), got ${d.batchSize}`);
    if (d.intensity.kind !== 'ct-window') fail('data.intensity', `VISTA3D needs a CT window (mapped to [0, 1] as the bundle does), got ${show(d.intensity)}`);
    const div = 2 ** (model.blocksDown.length - 1);
    for (const [k, tr] of [['data.patchSize', d.patchSize], ['inference.window', inf.window]] as const) {
      if (tr.some((x) => x % Math.max(2, div) !== 0)) fail(k, `${show(tr)} must be a multiple of ${Math.max(2, div)} on every axis for this VISTA3D (2^(levels-1))`);
    }
    return { task, model, data: d, ssl: s, training: t, inference: inf, output: out, vista3d: v };
  }
  if (raw['vista3d'] !== undefined && raw['vista3d'] !== null) fail('vista3d', `only applies to model.name 'vista3d' (model.name is '${model.name}')`);
  return { task, model, data: d, ssl: s, training: t, inference: inf, output: out };
}
