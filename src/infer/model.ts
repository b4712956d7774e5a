/**
 * Loading a trained network for inference, with everything prediction must reproduce from
 * training: the model config, the intensity normalisation, the geometric preprocessing of the
 * cached training data (orientation, body crop, spacing), the inference settings and class names.
 *
 * Sources, in order of precedence: explicit options, then the run config stored in a misfm
 * training checkpoint (src/train/state.ts), then the manifest of the case cache that config
 * names (when it is readable here), then defaults. An official MIS-FM / PyMIC .pt (or a
 * safetensors file) records no config: the model config and the intensity must be given.
 */
import { foldBatchNorms } from '../nn/fuse.js';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Vec3 } from '../io/volume.js';
import type { RawTensor } from '../engine/dtype.js';
import { native } from '../engine/native.js';
import { CheckpointError, ConfigError, MisfmError } from '../util/errors.js';
import { loadCheckpointFile, detectCheckpointFormat } from '../io/checkpoint/index.js';
import { loadTrainingCheckpoint } from '../train/state.js';
import { createModel, preset, PRESETS } from '../models/registry.js';
import { resolveModelConfig, type ModelConfig, type ResolvedModelConfig } from '../models/config.js';
import { convertUNet3DStateDictV04 } from '../models/unet3d.js';
import { inferArchitecture } from '../models/infer-arch.js';
import type { SegmentationNetwork } from '../models/types.js';
import type { InferenceConfig, IntensityConfig } from '../config/types.js';
import type { TrainingDataSummary } from './case-plan.js';

/** Intensity normalisation at inference ('none': values as stored). */
export type InferenceIntensity = IntensityConfig | { kind: 'none' };

/** Preprocessing applied before the sliding window and undone on its output. */
export interface InferencePreprocess {
  intensity: InferenceIntensity;
  /** Reorient to this code (e.g. 'LPS') before inference and back afterwards, or false. */
  reorient: string | false;
  /** Crop CT to the body box before inference; labels outside are background. */
  bodyCrop: boolean;
  /** Resample to this spacing (x,y,z mm) and back (labels nearest, probabilities linear), or null. */
  spacing: Vec3 | null;
}

/** A model ready for prediction plus what it was trained with. */
export interface ModelBundle {
  model: SegmentationNetwork;
  modelConfig: ResolvedModelConfig;
  preprocess: InferencePreprocess;
  /** The run's inference section (misfm checkpoints), used as defaults. */
  inference: InferenceConfig | null;
  /** Name per class value (index = value), or null when unknown. */
  classNames: string[] | null;
  /**
   * Label value written for each class index (index 0 = background), from the run's data.labels;
   * null writes class indices. Lets predictions use the dataset's own values (e.g. TotalSegmentator's).
   */
  labelValues: number[] | null;
  device: string;
  /** What the training data looked like (the dataset plan recorded with the checkpoint), when known. */
  trainingData?: TrainingDataSummary | null;
  provenance: {
    checkpoint: string;
    kind: 'misfm' | 'pytorch' | 'safetensors';
    iteration: number | null;
    /** sha256 (16 hex digits) of the stored run config, or of the given model config. */
    configHash: string;
    /** Where preprocessing settings came from. */
    preprocessSource: string;
  };
  /**
   * Set when the checkpoint's own record says the network was trained on CT in HU (a recorded
   * ct-window normalisation, not overridden): predict then refuses inputs that are not CT-like.
   */
  expectsCT?: boolean;
}

/** Options of loadModelForInference. */
export interface LoadModelOptions {
  /** 'cpu' (default) or 'cuda' / 'cuda:N'. */
  device?: string;
  /** Model config (or preset name) for checkpoints that record none; overrides a stored one only for foreign files. */
  modelConfig?: ModelConfig | string;
  /** Overrides of the recorded preprocessing. */
  preprocess?: Partial<InferencePreprocess>;
  /** Class names (index = label value). */
  classNames?: string[];
  /**
   * Fold BatchNorm into the preceding convolutions (nn/fuse.ts; default true): same outputs within
   * float32 rounding, one pass over each such activation less. The loaded model then cannot train.
   */
  foldBatchNorm?: boolean;
}

const hash = (v: unknown): string => createHash('sha256').update(JSON.stringify(v)).digest('hex').slice(0, 16);
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** data.labels {values, names} of a run config: class index i+1 is label value values[i]. */
function labelValuesFrom(v: unknown): number[] | null {
  if (!isObj(v) || !Array.isArray(v['values']) || !v['values'].every((x) => Number.isInteger(x))) return null;
  return [0, ...(v['values'] as number[])];
}
function labelNamesFrom(v: unknown): string[] | null {
  if (!isObj(v) || !Array.isArray(v['names'])) return null;
  return ['background', ...(v['names'] as unknown[]).map(String)];
}

function classNamesFrom(v: unknown): string[] | null {
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
  if (isObj(v)) {
    const out: string[] = [];
    for (const [k, name] of Object.entries(v)) {
      if (!/^\d+$/.test(k) || typeof name !== 'string') return null;
      out[Number(k)] = name;
    }
    return Array.from(out, (n, i) => n ?? (i === 0 ? 'background' : `class_${i}`));
  }
  return null;
}

/** The plan summary recordCache adds to data.preprocess (src/train/run-setup.ts), or null. */
function trainingDataFrom(preprocess: unknown): TrainingDataSummary | null {
  if (!isObj(preprocess) || !isObj(preprocess['plan'])) return null;
  const p = preprocess['plan'];
  const r = isObj(p['spacingRange']) ? p['spacingRange'] : null;
  const min = r === null ? null : spacingFrom(r['min']), max = r === null ? null : spacingFrom(r['max']);
  const m = isObj(p['modalities']) && typeof p['modalities']['ct'] === 'number' && typeof p['modalities']['other'] === 'number'
    ? { ct: p['modalities']['ct'], other: p['modalities']['other'] } : null;
  return { spacing: spacingFrom(preprocess['spacing']), spacingRange: min !== null && max !== null ? { min, max } : null, modalities: m };
}

function spacingFrom(v: unknown): Vec3 | null {
  return Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && x > 0) ? [v[0], v[1], v[2]] as Vec3 : null;
}

/** Preprocessing recorded for a misfm run: config.data.preprocess, else the cache manifest, else prepare's defaults. */
function recordedPreprocess(config: Record<string, unknown>): { pre: Omit<InferencePreprocess, 'intensity'>; source: string; labels: string[] | null } {
  const data = isObj(config['data']) ? config['data'] : {};
  let spec: Record<string, unknown> | null = isObj(data['preprocess']) ? data['preprocess'] : null;
  let source = spec !== null ? 'config data.preprocess' : '';
  let labels: string[] | null = null;
  const cache = data['cache'];
  if (typeof cache === 'string') {
    const manifest = path.join(cache.endsWith('.json') ? path.dirname(cache) : cache, 'manifest.json');
    if (existsSync(manifest)) {
      try {
        const m = JSON.parse(readFileSync(manifest, 'utf8')) as Record<string, unknown>;
        if (spec === null && isObj(m['preprocess'])) { spec = m['preprocess']; source = `cache manifest ${manifest}`; }
        labels = classNamesFrom(m['labels']);
      } catch { /* an unreadable manifest only loses the recorded settings; defaults follow */ }
    }
  }
  if (spec === null) {
    // prepare's defaults (src/data/preprocess.ts): reorient to LPS, no crop, native spacing.
    return { pre: { reorient: 'LPS', bodyCrop: false, spacing: null }, source: 'defaults of misfm prepare (no record found)', labels };
  }
  const r = spec['reorient'];
  return {
    pre: { reorient: typeof r === 'string' ? r : r === false ? false : 'LPS', bodyCrop: spec['bodyCrop'] === true, spacing: spacingFrom(spec['spacing']) },
    source, labels,
  };
}

function modelConfigFrom(v: ModelConfig | string): ModelConfig {
  if (typeof v !== 'string') return v;
  if (Object.prototype.hasOwnProperty.call(PRESETS, v)) return preset(v);
  if (existsSync(v)) {
    try { return JSON.parse(readFileSync(v, 'utf8')) as ModelConfig; } catch (err) {
      throw new ConfigError('model', `cannot parse the model config file: ${(err as Error).message}`, v);
    }
  }
  throw new ConfigError('model', `'${v}' is neither a preset (${Object.keys(PRESETS).join(', ')}) nor a JSON file`);
}

/** When the weights belong to another network than the config names, say which (or that none is known). */
function otherNetworkNote(stateDict: ReadonlyMap<string, RawTensor>, wanted: string): string {
  const arch = inferArchitecture(stateDict);
  if (arch.name === wanted) return '';
  return arch.name !== null
    ? `; the checkpoint holds ${arch.name} weights, not ${wanted}: give a ${arch.name} model config`
    : `; the checkpoint is not a ${wanted} (no network misfm knows has these names; see misfm inspect)`;
}

function buildAndLoad(config: ResolvedModelConfig, stateDict: Map<string, RawTensor>, file: string, fold: boolean): SegmentationNetwork {
  const model = createModel(config);
  try {
    const r = model.loadStateDict(stateDict, { mode: 'filter' });
    // Deep-supervision heads may be absent (a model saved without them); everything else must load.
    const missing = r.missing.filter((k) => !/relative_position_index$/.test(k));
    if (missing.length > 0 || r.mismatched.length > 0) {
      const mm = r.mismatched.slice(0, 5).map((m) => `${m.key}: checkpoint [${m.got.join(',')}], model [${m.expected.join(',')}]`);
      throw new CheckpointError(file, `weights do not fit the ${config.name} config (classNum ${config.classNum}): ` +
        `${missing.length} missing (${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}), ${r.mismatched.length} of another shape${mm.length > 0 ? ` (${mm.join('; ')})` : ''}` +
        otherNetworkNote(stateDict, config.name));
    }
  } catch (err) {
    model.dispose();
    throw err;
  }
  model.multiscalePred = false;
  model.eval();
  if (fold) foldBatchNorms(model);
  return model;
}

/**
 * Load a network for inference from a misfm training checkpoint (config, preprocessing and
 * inference settings come with it) or from an official MIS-FM / PyMIC .pt or a safetensors file
 * (then `modelConfig` and `preprocess.intensity` are required).
 */
export async function loadModelForInference(checkpointPath: string, opts: LoadModelOptions = {}): Promise<ModelBundle> {
  if (!existsSync(checkpointPath)) throw new CheckpointError(checkpointPath, 'no such checkpoint file');
  const device = opts.device ?? 'cpu';
  const format = detectCheckpointFormat(checkpointPath);
  let misfm: ReturnType<typeof loadTrainingCheckpoint> | null = null;
  if (format === 'torch-zip') {
    try {
      misfm = loadTrainingCheckpoint(checkpointPath);
    } catch (err) {
      if (!(err instanceof CheckpointError) || !/not a misfm training checkpoint/.test(err.message)) throw err;
    }
  }
  let bundle: Omit<ModelBundle, 'model' | 'device'>;
  let stateDict: Map<string, RawTensor>;
  if (misfm !== null) {
    const cfg = isObj(misfm.config) ? misfm.config : null;
    if (cfg === null || cfg['model'] === undefined) throw new CheckpointError(checkpointPath, 'the misfm record holds no run config with a model section');
    const modelConfig = resolveModelConfig(cfg['model'], 'model');
    const data = isObj(cfg['data']) ? cfg['data'] : {};
    const intensity = (opts.preprocess?.intensity ?? data['intensity']) as InferenceIntensity | undefined;
    if (intensity === undefined) throw new CheckpointError(checkpointPath, 'the stored config has no data.intensity; give the intensity normalisation explicitly');
    const rec = recordedPreprocess(cfg);
    const overridden = opts.preprocess !== undefined && Object.keys(opts.preprocess).some((k) => k !== 'intensity');
    bundle = {
      modelConfig,
      preprocess: { ...rec.pre, ...opts.preprocess, intensity },
      inference: isObj(cfg['inference']) ? cfg['inference'] as unknown as InferenceConfig : null,
      classNames: opts.classNames ?? classNamesFrom(cfg['classNames']) ?? classNamesFrom(data['classNames']) ?? labelNamesFrom(data['labels']) ?? rec.labels,
      labelValues: labelValuesFrom(data['labels']),
      trainingData: trainingDataFrom(data['preprocess']),
      provenance: {
        checkpoint: path.resolve(checkpointPath), kind: 'misfm', iteration: misfm.iteration, configHash: hash(cfg),
        preprocessSource: overridden ? `${rec.source}, with explicit overrides` : rec.source,
      },
      ...(opts.preprocess?.intensity === undefined && intensity.kind === 'ct-window' ? { expectsCT: true } : {}),
    };
    stateDict = misfm.stateDict;
  } else {
    const loaded = await loadCheckpointFile(checkpointPath);
    stateDict = loaded.stateDict;
    const arch = inferArchitecture(stateDict);
    if (opts.modelConfig === undefined) {
      const guess = arch.name === null ? '' : ` (the weights look like ${arch.name}: ${JSON.stringify({ name: arch.name, ...arch.config })}; still unknown: ${Object.keys(arch.unknown).join(', ') || 'nothing'})`;
      throw new CheckpointError(checkpointPath, `is not a misfm training checkpoint, so it records no model config; give one (a preset name or a JSON file)${guess}`);
    }
    if (arch.keyLayout === 'v0.4') stateDict = convertUNet3DStateDictV04(stateDict);
    const intensity = opts.preprocess?.intensity;
    if (intensity === undefined) {
      throw new CheckpointError(checkpointPath, "is not a misfm training checkpoint, so it records no intensity normalisation; give one (ct-window with a HU window, zscore or none)");
    }
    const modelConfig = resolveModelConfig(modelConfigFrom(opts.modelConfig), 'model');
    bundle = {
      modelConfig,
      // PyMIC uses images on their stored grid: no reorientation, crop or resampling by default.
      preprocess: { reorient: false, bodyCrop: false, spacing: null, ...opts.preprocess, intensity },
      inference: null,
      classNames: opts.classNames ?? null,
      labelValues: null,
      provenance: {
        checkpoint: path.resolve(checkpointPath), kind: format === 'safetensors' ? 'safetensors' : 'pytorch', iteration: loaded.meta.iteration,
        configHash: hash(modelConfig), preprocessSource: 'explicit options (foreign checkpoint)',
      },
    };
  }
  const model = buildAndLoad(bundle.modelConfig, stateDict, checkpointPath, opts.foldBatchNorm ?? true);
  try {
    model.toDevice(device);
  } catch (err) {
    model.dispose();
    throw err;
  }
  return { ...bundle, model, device };
}
