/**
 * Default values and presets. The defaults are the paper / PyMIC reference values; each comment
 * says where a value comes from ("spec x.y" = /shared/reference/misfm-spec.md section x.y).
 * Values marked "misfm" are this toolkit's own choices where the reference has none.
 */
import { ConfigError } from '../util/errors.js';
import type { PresetName, RunConfig } from './types.js';
import { PRESETS } from './types.js';
import { suggest } from '../models/config.js';
import { resolveVista3dOptions, VISTA3D_PRESETS } from '../models/vista3d/options.js';
import { defaultVista3dRecipe } from './vista3d.js';

/** The bundle's intensity window (HU) mapped to [0, 1] (spec §7.1; the same as infer/vista3d/session.ts). */
export const VISTA3D_HU_WINDOW: readonly [number, number] = [-963.8247715525971, 1053.678477684517];

/** The paper's Volume Fusion pretraining of PCT-Net (spec 1.1, 1.4, 2.1-2.3, 3.2). */
const PAPER: RunConfig = {
  task: 'pretrain',
  model: {
    name: 'pctnet',
    inChannels: 1,                             // spec 1.1: in_chns 1 (CT / MR, one modality)
    classNum: 5,                               // spec 1.1: VolF pretraining uses K + 1 = 5
    inputSize: [64, 128, 128],                 // spec 1.1 / 2.1: 64×128×128 crop
    featureChns: [24, 48, 128, 256, 512],      // spec 1.1: paper value (code default is [32,64,...])
    dropout: [0, 0, 0.2, 0.2, 0.2],            // spec 1.1
    depths: [2, 2, 2],                         // spec 1.1 (code default)
    numHeads: [4, 8, 16],                      // spec 1.1 (code default)
    windowSizes: [6, 6, 6],                    // spec 1.1 (code default)
    resolutionMode: 1,                         // spec 1.1: demo value
    multiscalePred: true,                      // spec 1.1 / 2.3: deep supervision needs 4 outputs
  },
  data: {
    cache: null,
    preprocess: null,                          // misfm: filled from the cache manifest by pretrain / train
    spacing: 'plan',                           // misfm: nnU-Net's planned spacing (the reference resamples by hand)
    folder: null,
    validFolder: null,
    patchSize: [64, 128, 128],                 // spec 2.1: RandomCrop_output_size
    intensity: { kind: 'ct-window', window: [-1000, 1000] }, // spec 2.2: clip HU to [-1000, 1000] → [-1, 1]
    batchSize: 2,                              // spec 2.1: train_batch_size = 2
    numWorkers: 2,                             // misfm (PyMIC's num_worker default is 8; sized for small machines)
    prefetch: 2,                               // misfm
    foregroundOversample: 0,                   // spec 3.1: RandomCrop without foreground focus
    labels: null,                              // misfm: label values as stored
    flips: { depth: true, height: true, width: true }, // spec 2.1: RandomFlip_flip_{depth,height,width} = True
    flipProbability: 0.5,                      // spec 3.1: each axis with p 0.5
    augment: {                                 // misfm: off (p 0) as in the reference; ranges in normalised units / voxels
      noise: { p: 0, range: [0, 0.05] },       // std; 0.05 = 50 HU with the [-1000, 1000] CT window
      blur: { p: 0, range: [0.5, 1.5] },       // sigma, voxels
      brightness: { p: 0, range: [0.75, 1.25] },
      contrast: { p: 0, range: [0.75, 1.25] },
      lowResolution: { p: 0, range: [0.5, 1] }, // zoom of the simulated coarse grid
    },
  },
  ssl: {
    method: 'volf',                            // spec 2: Volume Fusion, the MIS-FM method
    mode: 'blocks',                            // spec 2.1: the batch-level algorithm matching the paper
    levels: 4,                                 // spec 2.1: K = class_num − 1 = 4
    blocks: {
      count: [10, 40],                         // spec 2.1: VolumeFusion_block_range
      sizeMin: [8, 8, 8],                      // spec 2.1: VolumeFusion_size_min
      sizeMax: [40, 80, 80],                   // spec 2.1: VolumeFusion_size_max
    },
    grid: {
      sizeMin: [5, 8, 8],                      // spec 2.1 (grid variant demo)
      sizeMax: [20, 32, 32],                   // spec 2.1 (grid variant demo)
      foregroundRatio: 0.7,                    // spec 2.1: int(Nblocks·0.7) foreground blocks
    },
    // Table 2 baselines: PyMIC_examples seg_self_sup/lung/config/luna_pretrain/unet3d_*.cfg (64×128×128 crops).
    patchSwap: { blockCount: [20, 40], blockSize: [8, 16, 16], mode: 'disjoint' }, // PatchSwaping_*; mode: misfm (see types.ts)
    genesis: {
      localShuffle: { p: 1, blockCount: [32, 64], blockSize: [8, 16, 16] },   // LocalShuffling_*
      nonLinear: { p: 0.8, blocks: 32, blockSize: [8, 16, 16] },              // NonLinearTransform_*: range(32, 64) = 32 blocks
      inOutPaint: {                                                           // InOutPainting_*, InPainting_*, OutPainting defaults
        p: 0.9, inP: 0.8, inBlockCount: [32, 64], inBlockSize: [8, 16, 16], outBlockCount: [2, 8], outMargin: [16, 32, 32],
      },
    },
    mim: { ratio: 0.45, blockSize: [8, 16, 16], count: 'exact', loss: 'masked' }, // MaskedImageModeling_* defaults; count/loss: SimMIM
    voco: { variant: 'tpami', grid: 3, randomCrops: 2, hiddenDim: 1024, outDim: 1024, featureDropout: null, emaMomentum: 0.9, augment: true }, // voco-spec 1.2, 2.3-2.4 (TPAMI)
  },
  training: {
    optimizer: 'adam',                         // spec 2.3: torch.optim.Adam (L2-style decay, not AdamW)
    lr: 1e-3,                                  // spec 2.3
    weightDecay: 1e-5,                         // spec 2.3
    momentum: 0.9,                             // misfm (SGD only; ignored by Adam, spec 2.3)
    betas: [0.9, 0.999],                       // spec 2.3
    amsgrad: false,                            // spec 2.3: torch's default (voco-spec 4: VoCo sets it, see config/resolve.ts)
    scheduler: {
      kind: 'step',                            // spec 2.3: VolF demo StepLR
      stepSize: 40000,                         // spec 2.3: lr_step = 40000 iterations
      gamma: 0.5,                              // spec 2.3
      milestones: [],
      power: 0.8,                              // spec 2.3: the fine-tuning demos' PolynomialLR power
      minLr: 0,
      warmup: 0,                               // 'warmup-cosine' only (voco-spec 4: 5000 steps)
      unit: 'validation',                      // spec 2.3: stepped once per validation round
    },
    iterations: 120000,                        // spec 2.3: iter_max = 120000
    validEvery: 500,                           // spec 2.3: iter_valid = 500
    saveEvery: 5000,                           // misfm (not in the spec)
    earlyStopPatience: null,                   // pretraining demo has none
    gradClip: null,                            // spec 2.3: PyMIC does not clip
    deepSupervision: { enabled: true, weights: [1, 0.5, 0.25, 0.125] }, // spec 2.3: w_i = 1/2^i
    lossWeights: { dice: 0.5, ce: 0.5 },       // spec 2.3: 0.5·Dice + 0.5·CE
    classWeights: null,                        // spec 2.3: no class weights
    seed: 1,                                   // spec 2.3: seed_torch(random_seed=1)
    threads: null,
    precision: 'fp32',                         // misfm: bf16/auto are opt-in (ARCHITECTURE.md)
    activationCheckpointing: false,
    syncBatchNorm: false,                      // PyTorch DDP's default: per-rank BatchNorm
    initCheckpoint: null,
    initMode: 'weights',                       // spec 3.1: ckpt_init_mode = 0
  },
  inference: {
    window: [64, 128, 128],                    // spec 3.2: sliding_window_size = patch size
    overlap: 0.5,                              // spec 3.2: stride = size / 2
    stride: null,
    batchSize: 8,                              // spec 3.2: sliding_window_batch = 8
    blend: 'gaussian',                         // spec 3.2: Gaussian importance map
    sigmaScale: 0.125,                         // spec 3.2: sigma = size / 8
    ttaFlips: [],                              // spec 3.2: no TTA in the demos
    keepLargest: 'none',                       // spec 3.2: no post-processing in the demos
    checkpoint: 'best',                        // spec 3.2: ckpt_mode = 1
  },
  output: { dir: 'runs/pctnet-volf' },
};

/** Fine-tuning as in MIS-FM demo/pctnet_pretrain.cfg (spec 3.1): left atrium MRI, 2 classes. */
function paperFinetune(): RunConfig {
  const c = structuredClone(PAPER);
  c.task = 'finetune';
  c.model.classNum = 2;                        // spec 1.1: class_num 2 in the demo
  c.data.intensity = { kind: 'zscore' };       // spec 3.1: NormalizeWithMeanStd
  c.training.scheduler.kind = 'poly';          // spec 2.3 / 3.1: PolynomialLR, power 0.8
  c.training.iterations = 6000;                // spec 3.1: iter_max
  c.training.validEvery = 250;                 // spec 3.1: iter_valid
  c.training.saveEvery = 1000;                 // misfm
  c.training.earlyStopPatience = 3000;         // spec 3.1
  c.training.initCheckpoint = 'weights/pctnet_ct10k_volf.pt'; // spec 3.1
  c.output.dir = 'runs/pctnet-finetune';
  return c;
}

/**
 * CPU demo (misfm): the pctnet_small fixture's channels (spec 6) at a 32×64×64 crop; the fusion
 * blocks shrink with the crop (half the paper's sizes) so that they keep the same proportions.
 */
function small(): RunConfig {
  const c = structuredClone(PAPER);
  if (c.model.name === 'pctnet') {
    c.model.featureChns = [8, 16, 32, 64, 128];
    c.model.inputSize = [32, 64, 64];
  }
  c.data.patchSize = [32, 64, 64];
  c.data.numWorkers = 1;
  c.ssl.blocks = { count: [5, 20], sizeMin: [4, 4, 4], sizeMax: [20, 40, 40] };
  c.ssl.grid = { sizeMin: [3, 4, 4], sizeMax: [10, 16, 16], foregroundRatio: 0.7 };
  // The Table 2 baselines' blocks halve with the crop as well.
  c.ssl.patchSwap.blockSize = [4, 8, 8];
  c.ssl.genesis.localShuffle.blockSize = [4, 8, 8];
  c.ssl.genesis.nonLinear.blockSize = [4, 8, 8];
  c.ssl.genesis.inOutPaint.inBlockSize = [4, 8, 8];
  c.ssl.genesis.inOutPaint.outMargin = [8, 16, 16];
  c.ssl.mim.blockSize = [4, 8, 8];
  c.training.iterations = 2000;
  c.training.validEvery = 100;
  c.training.saveEvery = 500;
  c.training.scheduler.stepSize = 1000;
  c.inference.window = [32, 64, 64];
  c.inference.batchSize = 2;
  c.output.dir = 'runs/small-volf';
  return c;
}

function smallFinetune(): RunConfig {
  const c = small();
  c.task = 'finetune';
  c.model.classNum = 2;
  c.data.intensity = { kind: 'zscore' };
  c.training.scheduler.kind = 'poly';
  c.training.iterations = 1000;
  c.training.validEvery = 50;
  c.training.saveEvery = 250;
  c.training.earlyStopPatience = 500;
  c.output.dir = 'runs/small-finetune';
  return c;
}

/**
 * A CPU-scale VISTA3D (spec §12; misfm): the fixture's network (F 8, E 16, 4 levels) on 64³
 * patches, batch 1, the bundle's HU window, no flips (left/right classes), AdamW with a cosine
 * schedule. The research configs fine-tune at lr 2e-5; training from scratch needs more (1e-3
 * here, misfm's choice). Stage 1 by default; the recipe is the `vista3d` section.
 */
function vista3dSmall(): RunConfig {
  const c = smallFinetune();
  c.model = { name: 'vista3d', ...resolveVista3dOptions(VISTA3D_PRESETS['vista3d-small']!), classNum: 133 };
  c.data.patchSize = [64, 64, 64];
  c.data.batchSize = 1;
  c.data.intensity = { kind: 'ct-window', window: [...VISTA3D_HU_WINDOW] as [number, number] }; // spec §7.1
  c.data.flipProbability = 0;
  c.data.flips = { depth: false, height: false, width: false };
  c.training.optimizer = 'adamw';              // spec §10.4
  c.training.lr = 1e-3;
  c.training.weightDecay = 1e-5;               // spec §10.4
  c.training.scheduler.kind = 'cosine';        // spec §10.4: WarmupCosine without warmup
  c.training.scheduler.unit = 'iteration';
  c.training.deepSupervision = { enabled: false, weights: [1] };
  c.training.seed = 0;                         // spec §10.4
  c.training.iterations = 500;
  c.training.validEvery = 100;
  c.training.saveEvery = 50;
  c.training.earlyStopPatience = null;
  c.training.initCheckpoint = null;
  c.inference.window = [64, 64, 64];
  c.inference.overlap = 0.25;                  // spec §7.3: the bundle's automatic window
  c.inference.blend = 'constant';
  c.output.dir = 'runs/vista3d-small';
  c.vista3d = defaultVista3dRecipe();
  // The research supervoxel sampler scaled from 128³ patches at 1.5 mm to 64³ at 3 mm: 2x the voxel
  // size gives minSize (20·1.5/3)³ = 1000 and a 5-voxel border; Algorithm 2's 400 supervoxels per CT
  // (about one per (54 mm)³) give ~48 per (192 mm)³ patch.
  c.vista3d.stages[0]!.supervoxels = { segments: 48, compactness: 0.1, minSize: 1000, offset: 5 };
  return c;
}

const BUILDERS: Readonly<Record<PresetName, () => RunConfig>> = {
  paper: () => structuredClone(PAPER),
  'paper-finetune': paperFinetune,
  small,
  'small-finetune': smallFinetune,
  'vista3d-small': vista3dSmall,
};

/** A fresh copy of a preset ('paper' = the defaults). An unknown name is a ConfigError on `preset`. */
export function presetConfig(name: PresetName | string = 'paper'): RunConfig {
  if (!(PRESETS as readonly string[]).includes(name)) {
    throw new ConfigError('preset', `must be one of ${PRESETS.map((p) => `'${p}'`).join(', ')}, got ${JSON.stringify(name)}${suggest(name, PRESETS)}`);
  }
  return BUILDERS[name as PresetName]();
}

/** The default configuration: the paper's pretraining setup. */
export function defaultConfig(): RunConfig {
  return presetConfig('paper');
}
