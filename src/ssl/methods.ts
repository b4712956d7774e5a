/**
 * The registry of self-supervised pretext methods behind `misfm pretrain --method`.
 *
 * A method supplies only what is specific to it: how a training batch is built from the loader's
 * crops (its corruption or fusion), the loss of its head, and its validation metric. Everything
 * else is shared by all methods: the case cache and worker-thread loader (src/data/loader), the
 * training engine (src/train/trainer: optimiser, schedules, checkpoints, exact resume, signals,
 * JSON-lines logs) and the run folder (src/train/run-setup). The network is whatever
 * `config.model` names (PCT-Net, UNet3D, FMUNet); its head size is set by the method
 * (config/derive.ts pretextClassNum).
 *
 * To add a method: give it a name in config/types.ts PRETRAIN_METHODS (with its config section
 * and validation), write one module under src/ssl/ that exports a PretextMethod, and list it here.
 */
import type { LoaderOptions } from '../data/loader.js';
import type { PretrainMethod, RunConfig } from '../config/types.js';
import { PRETRAIN_METHODS } from '../config/types.js';
import type { BatchSource, StepLoss, TrainableModel, Validator } from '../train/trainer.js';
import { MisfmError } from '../util/errors.js';
import { suggest } from '../models/config.js';
import { volfMethod } from './volf-method.js';
import { patchSwapMethod } from './patch-swap.js';
import { genesisMethod } from './genesis.js';
import { mimMethod } from './mim.js';
import { vocoMethod } from './voco/method.js';

/** What a method is given to set its task up: the resolved config and the shared data path. */
export interface PretextContext {
  config: RunConfig;
  /** Loader options shared by all methods (cache, crop, batch, workers, intensity, flips). */
  loader: LoaderOptions;
  /** Data-parallel runs: this rank's shard of the *training* stream (validation sets stay whole). */
  shard?: { rank: number; worldSize: number };
  /** Scans to train on, and the held-out scans validation draws from (may be empty). */
  trainCases: string[];
  validCases: string[];
  /** Every usable scan of the cache. */
  allCases: string[];
  /** Size of the fixed validation set. */
  validSamples: number;
  log: (line: string) => void;
}

/** A method's task, as the shared trainer runs it. */
export interface PretextTask {
  /** Training batches from a saved position (null: the start); the position goes into checkpoints. */
  makeSource(position: unknown): Promise<BatchSource>;
  /** Scores the model on the method's fixed validation set; higher is better. */
  validate: Validator;
  /** The head's loss; undefined = the segmentation loss (deep-supervised Dice + CE). */
  loss?: StepLoss;
  /** The model to train when the method needs more than config.model (VoCo: backbone + projectors); default createModel(config.model). */
  createModel?: () => TrainableModel;
  /** Called once after training with the trained model (VoCo: export the reference layouts). */
  finish?: (model: TrainableModel, runDir: string, iteration: number) => void;
}

export interface PretextMethod {
  name: PretrainMethod;
  /** One line for help texts. */
  title: string;
  /** Where its behaviour comes from. */
  reference: string;
  /** Build the task (the fixed validation set is drawn here, before the model exists). */
  setup(ctx: PretextContext): Promise<PretextTask>;
}

const METHODS: Readonly<Record<PretrainMethod, PretextMethod>> = {
  volf: volfMethod,
  'patch-swap': patchSwapMethod,
  genesis: genesisMethod,
  mim: mimMethod,
  voco: vocoMethod,
};

/** Every registered method, in PRETRAIN_METHODS order. */
export function pretextMethods(): PretextMethod[] {
  return PRETRAIN_METHODS.map((n) => METHODS[n]);
}

/** The method called `name`; an unknown name is an ARGUMENT error listing the known ones. */
export function pretextMethod(name: string): PretextMethod {
  const m = (METHODS as Record<string, PretextMethod | undefined>)[name];
  if (m === undefined) {
    throw new MisfmError('ARGUMENT', `unknown pretraining method '${name}'${suggest(name, PRETRAIN_METHODS)}; known: ${PRETRAIN_METHODS.join(', ')}`);
  }
  return m;
}
