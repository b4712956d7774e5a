/**
 * The run configuration: one typed, JSON-serialisable object that says everything a pretraining
 * or fine-tuning run needs (network, data pipeline, Volume Fusion, optimisation, inference,
 * output). Spatial triples are always (D, H, W), matching NCDHW tensors.
 */
import type { ResolvedModelConfig } from '../models/config.js';
import type { Vista3dRecipe } from './vista3d.js';

/** (D, H, W). */
export type Triple = [number, number, number];

export const TASKS = ['pretrain', 'finetune'] as const;
/** 'pretrain': self-supervision (uses `ssl`; Volume Fusion by default); 'finetune': supervised segmentation. */
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

/**
 * Self-supervised pretext tasks of `misfm pretrain` (src/ssl/methods.ts): Volume Fusion (the
 * default), and the baselines of the MIS-FM paper's Table 2 as PyMIC implements them.
 */
export const PRETRAIN_METHODS = ['volf', 'patch-swap', 'genesis', 'mim', 'voco'] as const;
export type PretrainMethod = (typeof PRETRAIN_METHODS)[number];

export const PATCH_SWAP_MODES = ['disjoint', 'pymic'] as const;
export const MIM_COUNTS = ['exact', 'bernoulli'] as const;
export const MIM_LOSSES = ['masked', 'all'] as const;

export const VOCO_VARIANTS = ['tpami', 'cvpr'] as const;

/**
 * VoCo volume contrast (Wu, Zhuang, Chen; CVPR 2024, TPAMI 2025; spec voco-spec.md). A random
 * window of (D, grid·r, grid·r) is read per volume, with (D, r, r) = data.patchSize (r = H = W);
 * data.batchSize volumes per step; model.name picks the backbone (swinunetr or pctnet).
 */
export interface VoCoConfig {
  /** 'tpami' (the VoCo-B/L/H recipe; default) or 'cvpr' (symmetric logits, l² negatives, whole-network EMA, no feature dropout). */
  variant: (typeof VOCO_VARIANTS)[number];
  /** n: base crops on an n×n grid in the H-W plane (TPAMI 3). */
  grid: number;
  /** Random crops per volume (sw_batch_size, 2). */
  randomCrops: number;
  /** Projector hidden and output width (TPAMI 1024). */
  hiddenDim: number;
  outDim: number;
  /** Row-wise dropout of the student's embeddings; null: the variant's (TPAMI 0.2, CVPR 0). */
  featureDropout: number | null;
  /** EMA momentum of the teacher (0.9, constant). */
  emaMomentum: number;
  /** Per-crop flips (p 0.2 per axis), rot90 in the H-W plane (p 0.2) and intensity shift ±0.1 (p 0.5), after the labels are fixed. */
  augment: boolean;
}

/** Patch Swapping (Chen et al. 2019, PyMIC `PatchSwaping`): swap pairs of equal blocks, restore the crop. */
export interface PatchSwapConfig {
  /** [min, max] swaps per crop, inclusive. */
  blockCount: [number, number];
  /** Block size (D, H, W). */
  blockSize: Triple;
  /**
   * 'disjoint': each pair is non-overlapping and swapped in the current image, as the paper
   * describes, so the crop keeps its intensity histogram exactly; 'pymic': PyMIC's transform,
   * which copies from the uncorrupted crop and lets blocks overlap.
   */
  mode: (typeof PATCH_SWAP_MODES)[number];
}

/** Model Genesis (Zhou et al. 2021) as PyMIC's transforms chain it: local shuffling, non-linear, in-/out-painting. */
export interface GenesisConfig {
  localShuffle: { p: number; blockCount: [number, number]; blockSize: Triple };
  /** Bezier intensity curve; `blocks` random blocks each get their own curve (0 = the whole crop). */
  nonLinear: { p: number; blocks: number; blockSize: Triple };
  /** With probability p: in-painting with probability inP, else out-painting. */
  inOutPaint: {
    p: number; inP: number;
    inBlockCount: [number, number]; inBlockSize: Triple;
    outBlockCount: [number, number];
    /** Out-painting keeps blocks of size crop - outMargin. */
    outMargin: Triple;
  };
}

/** Masked image modelling (Chen et al., WACV 2023; SimMIM-style on a block grid). */
export interface MimConfig {
  /** Share of grid blocks masked (set to 0). */
  ratio: number;
  blockSize: Triple;
  /** 'exact': ceil(ratio * blocks) blocks (SimMIM's generator); 'bernoulli': each block with p = ratio (PyMIC's transform). */
  count: (typeof MIM_COUNTS)[number];
  /** 'masked': L1 over masked voxels only (SimMIM / Chen et al.); 'all': L1 over the crop (PyMIC's agent). */
  loss: (typeof MIM_LOSSES)[number];
}

/** Self-supervision: the pretext `method` and each method's parameters. */
export interface SslConfig {
  /** Pretext task of `misfm pretrain`; 'volf' (Volume Fusion) by default. */
  method: PretrainMethod;
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
  patchSwap: PatchSwapConfig;
  genesis: GenesisConfig;
  mim: MimConfig;
  voco: VoCoConfig;
}

export const OPTIMIZERS = ['adam', 'adamw', 'sgd'] as const;
export type OptimizerName = (typeof OPTIMIZERS)[number];
export const SCHEDULER_KINDS = ['step', 'multistep', 'poly', 'cosine', 'constant', 'warmup-cosine'] as const;
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
  /**
   * 'warmup-cosine' (VoCo's WarmupCosineSchedule): iterations of linear warmup from 0, then cosine
   * decay to 0 at training.iterations. The VoCo recipe sets it (config/resolve.ts ties).
   */
  warmup: number;
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
  /** Adam/AdamW only: the AMSGrad variant (torch `amsgrad=True`; VoCo's optimiser). */
  amsgrad: boolean;
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
  /**
   * Compute precision of forward/backward (engine/precision.ts): fp32 (default), bf16 (autocast-like:
   * convolutions/matmuls in bfloat16, norms, softmax, losses in fp32, fp32 weights and optimizer
   * state) or auto (bf16 only where the CPU has avx512_bf16/amx_bf16, or on CUDA).
   */
  precision: 'fp32' | 'bf16' | 'auto';
  /** Recompute activations in backward to save memory. */
  activationCheckpointing: boolean;
  /** Data-parallel runs: batch-norm statistics over all ranks (SyncBatchNorm) instead of per rank. */
  syncBatchNorm: boolean;
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
  /** VISTA3D's training recipe (config/vista3d.ts); present exactly when model.name is 'vista3d'. */
  vista3d?: Vista3dRecipe;
}

export const PRESETS = ['paper', 'paper-finetune', 'small', 'small-finetune', 'vista3d-small'] as const;
export type PresetName = (typeof PRESETS)[number];

/** A config as written in a file: any subset of RunConfig, plus the preset it starts from. */
export type RawConfig = Record<string, unknown>;
