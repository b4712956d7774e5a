/**
 * The VISTA3D training recipe (config section `vista3d`, present when model.name is 'vista3d'):
 * the four stages of the research configs (spec §10.4) as one recipe, which stage a run trains,
 * and how a dataset's labels map onto the global class table. A stage is one `misfm train` run;
 * the next stage starts from its checkpoint with `--init`.
 */
import { bool, fail, int, isPlainObject, list, nullable, num, oneOf, section, show, str, strictObject, type Check } from './check.js';

export const VISTA3D_PROMPT_KINDS = ['points', 'classes', 'mixed'] as const;
export const VISTA3D_TRAINED_PARTS = ['all', 'auto'] as const;

/** One stage's prompt sampling, click rounds, crops and trained parameters. */
export interface Vista3dStageConfig {
  /**
   * 'points': the interactive branch, point-only prompts; 'classes': the automatic branch, class
   * prompts only; 'mixed': the bundle's fine-tune recipe (each prompt kind dropped with probability
   * 0.25, both kept otherwise and blended by gaussian_combine around the clicks), one round.
   */
  prompts: (typeof VISTA3D_PROMPT_KINDS)[number];
  /** Click rounds per patch (spec §10.2 iter_num; each round is one optimizer step, two new clicks per object). */
  iterNum: number;
  /** Most clicks per kind when a patch's prompts are drawn (σ = maxPoint // 2). */
  maxPoint: number;
  /** Most classes present in the patch (foreground prompts) and absent from it (background prompts, empty targets). */
  maxForeprompt: number;
  maxBackprompt: number;
  /** 'all' (stages 1-2), or 'auto': only image_encoder.up_layers_auto and class_head train (stages 3-4; MONAI set_auto_grad). */
  train: (typeof VISTA3D_TRAINED_PARTS)[number];
  /**
   * Probability that a crop is centred on a voxel of a class drawn uniformly among the classes of
   * the case (MONAI RandCropByLabelClasses with equal ratios); the rest are uniform. 1 oversamples
   * small classes (misfm's reading of stage 2's and stage 4's "fine-tuning with oversampling").
   */
  classCrops: number;
  /**
   * The research supervoxel sampler (spec §10.1; train/vista3d/supervoxel-sampler.ts) for point
   * prompts: zero-shot targets from supervoxels (misfm: SLIC on the CT intensity, its stand-in for
   * Algorithm 2's SAM features). null: the regular sampler only. The research trainer uses it in
   * stage 1 (TotalSegmentator-like data); classes-only stages ignore it.
   */
  supervoxels: Vista3dSupervoxelConfig | null;
}

/** Supervoxel sampling settings (research values for 128³ patches at 1.5 mm as defaults). */
export interface Vista3dSupervoxelConfig {
  /** SLIC supervoxels per patch (Algorithm 2 makes 400 per CT). */
  segments: number;
  /** SLIC compactness on intensity in [0, 1] (misfm's). */
  compactness: number;
  /** Smallest supervoxel that may become a zero-shot class, voxels (research 20³). */
  minSize: number;
  /** Patch border without clicks, voxels (research 10). */
  offset: number;
}

/** The research sampler's settings for its 128³ patches at 1.5 mm (with misfm's SLIC stand-in). */
export function researchSupervoxels(): Vista3dSupervoxelConfig {
  return { segments: 400, compactness: 0.1, minSize: 8000, offset: 10 };
}

export interface Vista3dRecipe {
  /** The stage this run trains (1..4). */
  stage: number;
  /** Settings of stages 1..4, in order. */
  stages: Vista3dStageConfig[];
  /**
   * The dataset's label names: 'FILE' or 'FILE#key', a JSON object {value: name} (e.g.
   * ../shared/data/totalseg_classmap.json#total), mapped onto the class table by name; null when
   * the label values already are class-table indices.
   */
  labelTable: string | null;
  /** Explicit label value -> class index (beats labelTable; a new class takes an index above lastSupported). */
  labelMap: Record<string, number>;
  /**
   * Datasets whose labels differ from the default ones above: each names its cases (ids, `*`
   * matches any run of characters) and its own labelTable/labelMap. A case takes the first dataset
   * that names it, else the default. A dataset's label set is the classes its labels map to in
   * its training cases; background prompts and validation come only from it, so a class another
   * dataset does not annotate is never taught as absent there (VISTA3D's per-dataset label_set).
   */
  datasets: Vista3dDataset[];
  /** Class indices trained (null: every class the labels map to). */
  classes: number[] | null;
  /** Class indices removed from training entirely: their voxels are unlabelled (zero-shot / transfer experiments). */
  holdOut: number[];
  /**
   * Validation: automatic Dice (auto stages) or one centre click per class (point stages) on whole
   * held-out volumes. false: no validation, and without --valid every case trains (none is held out for it).
   */
  validate: boolean;
}

/** One dataset of a multi-dataset recipe: its cases and how its label values map onto the class table. */
export interface Vista3dDataset {
  /** Case ids of the prepared cache; `*` matches any run of characters. */
  cases: string[];
  labelTable: string | null;
  labelMap: Record<string, number>;
}

/** The research configs (hyper_parameters_stage{1..4}.yaml); classCrops is misfm's oversampling switch. */
export function defaultVista3dStages(): Vista3dStageConfig[] {
  const points = { prompts: 'points', iterNum: 5, maxPoint: 3, maxForeprompt: 4, maxBackprompt: 0, train: 'all' } as const;
  const auto = { prompts: 'classes', iterNum: 1, maxPoint: 3, maxForeprompt: 32, maxBackprompt: 4, train: 'auto' } as const;
  return [{ ...points, classCrops: 0.5, supervoxels: researchSupervoxels() }, { ...points, classCrops: 1, supervoxels: null },
    { ...auto, classCrops: 0.5, supervoxels: null }, { ...auto, classCrops: 1, supervoxels: null }];
}

export function defaultVista3dRecipe(): Vista3dRecipe {
  return { stage: 1, stages: defaultVista3dStages(), labelTable: null, labelMap: {}, datasets: [], classes: null, holdOut: [], validate: true };
}

const RECIPE_KEYS = ['stage', 'stages', 'labelTable', 'labelMap', 'datasets', 'classes', 'holdOut', 'validate'] as const;
const DATASET_KEYS = ['cases', 'labelTable', 'labelMap'] as const;

const stageCheck: Check<Vista3dStageConfig> = (v, path) => section<Vista3dStageConfig>(v, path, {
  prompts: oneOf(VISTA3D_PROMPT_KINDS), iterNum: int({ min: 1, max: 50 }), maxPoint: int({ min: 1 }),
  maxForeprompt: int({ min: 1 }), maxBackprompt: int({ min: 0 }), train: oneOf(VISTA3D_TRAINED_PARTS), classCrops: num({ min: 0, max: 1 }),
  supervoxels: nullable((v, path) => section<Vista3dSupervoxelConfig>(v, path, {
    segments: int({ min: 1 }), compactness: num({ min: 0 }), minSize: int({ min: 1 }), offset: int({ min: 0 }),
  })),
});

/**
 * Validate a (possibly partial) `vista3d` section: missing keys take the defaults, a partial
 * stage takes its default stage's values. `nClasses` bounds the class indices.
 */
export function checkVista3dRecipe(raw: unknown, path: string, nClasses: number): Vista3dRecipe {
  const d = defaultVista3dRecipe();
  if (raw === undefined || raw === null) return d;
  if (!isPlainObject(raw)) fail(path, `must be a section with keys ${RECIPE_KEYS.join(', ')}, got ${show(raw)}`);
  strictObject({ ...d, ...raw }, path, RECIPE_KEYS);
  const stage = int({ min: 1, max: 4 })(raw['stage'] ?? d.stage, `${path}.stage`);
  let stages = d.stages;
  if (raw['stages'] !== undefined) {
    if (!Array.isArray(raw['stages']) || raw['stages'].length !== 4) fail(`${path}.stages`, `must list the 4 stages, got ${show(raw['stages'])}`);
    // A partial stage (or supervoxels section) takes the default's other values.
    const merged = (s: unknown, i: number): unknown => {
      if (!isPlainObject(s)) return s;
      const sv = s['supervoxels'];
      return { ...d.stages[i]!, ...s, ...(isPlainObject(sv) ? { supervoxels: { ...(d.stages[i]!.supervoxels ?? researchSupervoxels()), ...sv } } : {}) };
    };
    stages = (raw['stages'] as unknown[]).map((s, i) => stageCheck(merged(s, i), `${path}.stages[${i}]`));
  }
  for (const [i, s] of stages.entries()) {
    if (s.prompts !== 'points' && s.iterNum !== 1) fail(`${path}.stages[${i}].iterNum`, `must be 1 for ${s.prompts} prompts (click rounds are for point-only stages), got ${s.iterNum}`);
  }
  const cls = int({ min: 1, max: nClasses - 1 });
  const labelMapCheck = (m: unknown, at: string): Record<string, number> => {
    if (m === undefined) return {};
    if (!isPlainObject(m)) fail(at, `must be an object {"label value": class index}, got ${show(m)}`);
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(m)) {
      if (!/^\d+$/.test(k)) fail(at, `keys must be label values (integers), got ${show(k)}`);
      out[k] = cls(v, `${at}.${k}`);
    }
    return out;
  };
  const labelMap = labelMapCheck(raw['labelMap'], `${path}.labelMap`);
  const rawSets = raw['datasets'] ?? [];
  if (!Array.isArray(rawSets)) fail(`${path}.datasets`, `must be a list of {cases, labelTable, labelMap}, got ${show(rawSets)}`);
  const datasets = (rawSets as unknown[]).map((ds, i): Vista3dDataset => {
    const at = `${path}.datasets[${i}]`;
    if (!isPlainObject(ds)) fail(at, `must be a section with keys ${DATASET_KEYS.join(', ')}, got ${show(ds)}`);
    strictObject({ labelTable: null, labelMap: {}, ...ds }, at, DATASET_KEYS);
    const table = nullable(str)(ds['labelTable'] ?? null, `${at}.labelTable`);
    const map = labelMapCheck(ds['labelMap'], `${at}.labelMap`);
    if (table === null && Object.keys(map).length === 0) fail(at, 'needs a labelTable or a labelMap (without either its labels would be read as class indices; say so with the default dataset instead)');
    return { cases: list(str, { min: 1 })(ds['cases'], `${at}.cases`), labelTable: table, labelMap: map };
  });
  return {
    stage, stages,
    labelTable: nullable(str)(raw['labelTable'] ?? d.labelTable, `${path}.labelTable`),
    labelMap, datasets,
    classes: nullable(list(cls, { min: 1 }))(raw['classes'] ?? d.classes, `${path}.classes`),
    holdOut: list(cls)(raw['holdOut'] ?? d.holdOut, `${path}.holdOut`),
    validate: bool(raw['validate'] ?? d.validate, `${path}.validate`),
  };
}
