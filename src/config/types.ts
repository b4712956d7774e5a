/**
 * The run configuration: one typed, JSON-serialisable object that says everything a pretraining
 * or fine-tuning run needs (network, data pipeline, Volume Fusion, optimisation, inference,
 * output). Spatial triples are always (D, H, W), matching NCDHW tensors.
 */
import type { ResolvedModelConfig } from '../models/config.js';

/** (D, H, W). */
export type Triple = [number, number, number];

export const TASKS = ['pretrain', 'finetune'] as const;
/** 'pretrain': Volume Fusion self-supervision (uses `ssl`); 'finetune': supervised segmentation. */
export type Task = (typeof TASKS)[number];

export const AXES = ['depth', 'height', 'width'] as const;
export type Axis = (typeof AXES)[number];

/**
 * Intensity preprocessing applied to every crop before the network.
 * - 'ct-window': clip HU to [lo, hi] and map linearly to [-1, 1] (spec 2.2, PyMIC NormalizeWithMinMax).
 * - 'zscore': (x - mean) / (std + 1e-5) over the crop in training, the whole volume at test
 *   (spec 3.1, PyMIC NormalizeWithMeanStd).
 */
export type IntensityConfig = { kind: 'ct-window'; window: [number, number] } | { kind: 'zscore' };
export const INTENSITY_KINDS = ['ct-window', 'zscore'] as const;

/** data.spacing: see DataConfig.spacing. */
export type SpacingSetting = 'plan' | 'native' | [number, number, number];

export interface LabelsConfig {
  values: number[];
  names: string[];
}

import type { AugmentSpec } from '../data/augment.js';

export interface DataConfig {
  /** Preprocessed case cache (a folder or index file written by the preprocessing step), or null. */
  cache: string | null;
  /**
   * The geometric preprocessing the cache was prepared with (its manifest's `preprocess`: reorient,
   * bodyCrop, spacing, ...), recorded by the training commands so that a checkpoint alone tells
   * `misfm predict` how to prepare new scans; null when unknown.
   */
  preprocess: Record<string, unknown> | null;
  /**
   * The spacing the training commands prepare raw data at (x, y, z mm, unlike the (D,H,W)
   * triples): 'plan' = the dataset plan's target spacing (nnU-Net's rule, data/plan.ts), or, when
   * fine-tuning from a misfm checkpoint, the spacing that checkpoint was trained at; 'native' =
   * each scan's own; or three numbers. Not used when --data is an existing cache.
   */
  spacing: SpacingSetting;
  /** Folder of training images (and labels when fine-tuning), or null when `cache` is used. */
  folder: string | null;
  /** Folder of validation cases, or null for no validation data. */
  validFolder: string | null;
  /** Training crop [D, H, W]; also the network input size of PCT-Net. */
  patchSize: Triple;
  intensity: IntensityConfig;
  /** Crops per mini-batch. Volume Fusion needs >= 2 (the foreground is the batch neighbour). */
  batchSize: number;
  /** Data-loader worker processes (0 = load on the main thread). */
  numWorkers: number;
  /** Batches prepared ahead of the training step. */
  prefetch: number;
  /** Probability that a training crop is centred on a foreground voxel (0 = uniform crops). */
  foregroundOversample: number;
  /**
   * Fine-tuning: the label values of the dataset to learn, mapped to classes 1..n in this order
   * (other values become background), with a name per class; null = the label values as stored.
   */
  labels: LabelsConfig | null;
  /** Random flip per axis, each applied with `flipProbability`. */
  flips: Record<Axis, boolean>;
  flipProbability: number;
  /**
   * Fine-tuning: intensity/texture augmentation of each crop after normalisation (each operation
   * with its probability p, strength uniform in range; see data/augment.ts). All p = 0 by default,
   * as in the reference. Pretraining ignores it.
   */
  augment: AugmentSpec;
}

export const FUSION_MODES = ['blocks', 'grid'] as const;
export type FusionMode = (typeof FUSION_MODES)[number];

/** Volume Fusion (spec 2.1). Both variants keep their own parameters; `mode` picks one. */
export interface SslConfig {
  /** 'blocks': the 2024 batch-level algorithm matching the paper; 'grid': the later regular grid. */
  mode: FusionMode;
  /** K: number of non-zero fusion levels; the segmentation head then has K + 1 classes. */
  levels: number;
  blocks: {
    /** [min, max] number of blocks M per sample, inclusive. */
    count: [number, number];
    /** Full block size bounds per axis, inclusive. */
    sizeMin: Triple;
    sizeMax: Triple;
  };
  grid: {
    /** Grid cell size bounds per axis, inclusive (one size drawn per sample). */
    sizeMin: Triple;
    sizeMax: Triple;
    /** Share of grid cells that get a non-zero level. */
    foregroundRatio: number;
  };
}

export const OPTIMIZERS = ['adam', 'adamw', 'sgd'] as const;
export type OptimizerName = (typeof OPTIMIZERS)[number];
export const SCHEDULER_KINDS = ['step', 'multistep', 'poly', 'cosine', 'constant'] as const;
export type SchedulerKind = (typeof SCHEDULER_KINDS)[number];
export const SCHEDULER_UNITS = ['validation', 'iteration'] as const;
export type SchedulerUnit = (typeof SCHEDULER_UNITS)[number];

/**
 * Learning-rate schedule. Every field is present whatever the kind (unused ones are ignored), so
 * switching `kind` by an override keeps a complete config. `stepSize` and `milestones` are in
 * iterations, like PyMIC's `lr_step`/`lr_milestones`; `unit` says when the schedule advances.
 */
export interface SchedulerConfig {
  kind: SchedulerKind;
  /** 'step': multiply by gamma every stepSize iterations. */
  stepSize: number;
  gamma: number;
  /** 'multistep': multiply by gamma at these iterations (increasing). */
  milestones: number[];
  /** 'poly': lr·(1 − t/T)^power with T = training.iterations. */
  power: number;
  /** 'cosine': the floor of the annealing. */
  minLr: number;
  /** 'validation': the rate changes only at validation rounds, as PyMIC does; 'iteration': every step. */
  unit: SchedulerUnit;
}

export const INIT_MODES = ['weights', 'resume'] as const;
/** 'weights': load matching weights only (PyMIC ckpt_init_mode 0); 'resume': also iteration and optimizer state. */
export type InitMode = (typeof INIT_MODES)[number];

export interface TrainingConfig {
  optimizer: OptimizerName;
  lr: number;
  /** L2 penalty for adam/sgd (added to the gradient), decoupled decay for adamw. */
  weightDecay: number;
  /** SGD only. */
  momentum: number;
  /** Adam/AdamW only. */
  betas: [number, number];
  scheduler: SchedulerConfig;
  iterations: number;
  validEvery: number;
  saveEvery: number;
  /** Stop when the validation score has not improved for this many iterations; null = never. */
  earlyStopPatience: number | null;
  /** Clip the global gradient norm to this value; null = no clipping. */
  gradClip: number | null;
  deepSupervision: {
    enabled: boolean;
    /** One weight per network output, full resolution first; normalised by their sum. */
    weights: number[];
  };
  lossWeights: { dice: number; ce: number };
  /** Per-class loss weights (length model.classNum), or null for none. */
  classWeights: number[] | null;
  seed: number;
  /** libtorch intra-op threads; null = the engine's default (all cores or MISFM_NUM_THREADS). */
  threads: number | null;
  /** Recompute activations in backward to save memory. */
  activationCheckpointing: boolean;
  /** Checkpoint to start from (e.g. a pretrained model for fine-tuning), or null. */
  initCheckpoint: string | null;
  initMode: InitMode;
}

export const BLEND_MODES = ['gaussian', 'constant'] as const;
export const KEEP_LARGEST_MODES = ['none', 'union', 'per-class'] as const;
export const CHECKPOINT_CHOICES = ['best', 'latest'] as const;

export interface InferenceConfig {
  /** Sliding-window size [D, H, W]; for PCT-Net it must equal the network input size. */
  window: Triple;
  /** Fractional overlap of neighbouring windows, used when `stride` is null. */
  overlap: number;
  /** Explicit window stride, or null to derive it from `overlap`. */
  stride: Triple | null;
  /** Windows per forward pass. */
  batchSize: number;
  /** How window logits are weighted when averaged. */
  blend: (typeof BLEND_MODES)[number];
  /** Gaussian sigma as a fraction of the window size per axis. */
  sigmaScale: number;
  /** Test-time augmentation: one extra pass flipped along each listed axis. */
  ttaFlips: Axis[];
  /** Keep only the largest connected component: of the foreground union, or per class. */
  keepLargest: (typeof KEEP_LARGEST_MODES)[number];
  /** Which checkpoint of the run to use. */
  checkpoint: (typeof CHECKPOINT_CHOICES)[number];
}

export interface OutputConfig {
  /** Run folder: checkpoints, logs and the resolved config go here. */
  dir: string;
}

/** A complete, validated run configuration. */
export interface RunConfig {
  task: Task;
  model: ResolvedModelConfig;
  data: DataConfig;
  ssl: SslConfig;
  training: TrainingConfig;
  inference: InferenceConfig;
  output: OutputConfig;
}

export const PRESETS = ['paper', 'paper-finetune', 'small', 'small-finetune'] as const;
export type PresetName = (typeof PRESETS)[number];

/** A config as written in a file: any subset of RunConfig, plus the preset it starts from. */
export type RawConfig = Record<string, unknown>;
