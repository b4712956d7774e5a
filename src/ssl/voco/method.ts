/**
 * VoCo as a pretext method of `misfm pretrain --method voco` (spec 9): the shared loader reads one
 * (D, n·r, n·r) window per volume, each window gives sw random crops with overlap labels and n²
 * base crops, all rows go through the backbone in one batched pass, and the step loss is VoCo's
 * (student projector on dropped rows, EMA teacher updated inside the step, intra/inter/reg).
 *
 * Batch layout for the trainer: image = [B·(sw + n²), 1, D, r, r] rows in the reference order
 * (spec 1.4), target = labels [B, sw, n²]. Validation: the VoCo loss on fixed held-out batches
 * without feature dropout and without EMA update (score = −loss), plus the share of random crops
 * whose most similar teacher base is the base they overlap most.
 *
 * At the end, besides misfm's checkpoints, the run writes `checkpoints/voco_state.pt`
 * ({global_step, state_dict} in the TPAMI layout, resumable by the reference code) and
 * `checkpoints/backbone.pt` (backbone tensors only, the released layout that fine-tuning loads).
 */
import path from 'node:path';
import type { Tensor } from '../../engine/tensor.js';
import { fromTypedArray, noGrad } from '../../engine/creation.js';
import { tidy } from '../../engine/scope.js';
import { Loader, type LoaderOptions, type LoaderState } from '../../data/loader.js';
import { Rng } from '../../util/rng.js';
import { MisfmError } from '../../util/errors.js';
import { PyDict, saveTorchCheckpoint } from '../../io/checkpoint/index.js';
import { tensorToRaw } from '../../nn/module.js';
import type { RunConfig } from '../../config/types.js';
import type { Batch, TrainableModel, ValidationResult } from '../../train/trainer.js';
import { SwinVoCoBackbone } from '../../models/swin-unetr/model.js';
import type { PretextContext, PretextMethod, PretextTask } from '../methods.js';
import { assembleRows, volumeShape, vocoSample, type VoCoGeometry } from './crops.js';
import { augmentCrop, CVPR_AUGMENT, TPAMI_AUGMENT } from './augment.js';
import { PCTNetVoCoBackbone, VoCoModel, vocoHeadDefaults, type VoCoBackbone } from './head.js';
import { onlineAssign, type VoCoLayout } from './losses.js';

/** The crop geometry a run config implies: (D, r, r) = data.patchSize, grid n. */
export function vocoGeometry(cfg: RunConfig): VoCoGeometry {
  const [d, h, w] = cfg.data.patchSize;
  if (h !== w) throw new MisfmError('CONFIG', `data.patchSize [${cfg.data.patchSize.join(',')}]: VoCo crops must be square in the H-W plane`);
  return { grid: cfg.ssl.voco.grid, roi: h, depth: d };
}

/** The VoCo model of a run config (backbone from config.model, heads from ssl.voco). */
export function createVoCoModel(cfg: RunConfig): VoCoModel {
  const v = cfg.ssl.voco;
  const defaults = vocoHeadDefaults(v.variant);
  const m = cfg.model;
  const make = (): VoCoBackbone => {
    if (m.name === 'swinunetr') { const { classNum: _c, multiscalePred: _m, ...o } = m; return new SwinVoCoBackbone(o); }
    if (m.name === 'pctnet') return new PCTNetVoCoBackbone({ ...m, inputSize: cfg.data.patchSize });
    throw new MisfmError('CONFIG', `model.name '${m.name}' is not a VoCo backbone (swinunetr, pctnet)`);
  };
  return new VoCoModel(make, {
    ...defaults, hiddenDim: v.hiddenDim, outDim: v.outDim, emaMomentum: v.emaMomentum, featureDropout: v.featureDropout ?? defaults.featureDropout,
  });
}

/** One VoCo batch in plain arrays. */
export interface VoCoArrays { rows: Float32Array[]; labels: Float32Array; layout: VoCoLayout; cropShape: [number, number, number]; waitMs: number }

/** Batches of VoCo rows from the shared loader; every random choice depends on (seed, sample index). */
export class VoCoStream {
  private constructor(private readonly loader: Loader, private readonly g: VoCoGeometry, private readonly sw: number,
    private readonly seed: number, private readonly augment: typeof TPAMI_AUGMENT | null) {}

  static async open(o: { loader: LoaderOptions; cfg: RunConfig; seed: number; caseIds: readonly string[]; start?: number; numSamples?: number; batchSize?: number; augment?: boolean }): Promise<VoCoStream> {
    const cfg = o.cfg;
    const g = vocoGeometry(cfg);
    const loader = await Loader.open({
      ...o.loader, mode: 'pretrain', cropSize: volumeShape(g), flip: false, seed: o.seed, caseIds: o.caseIds,
      startIndex: o.start ?? 0, batchSize: o.batchSize ?? cfg.data.batchSize, ...(o.numSamples !== undefined ? { numSamples: o.numSamples } : {}),
    });
    const aug = (o.augment ?? cfg.ssl.voco.augment) ? (cfg.ssl.voco.variant === 'tpami' ? TPAMI_AUGMENT : CVPR_AUGMENT) : null;
    return new VoCoStream(loader, g, cfg.ssl.voco.randomCrops, o.seed, aug);
  }

  state(): LoaderState { return this.loader.state(); }

  async nextArrays(): Promise<VoCoArrays> {
    const b = await this.loader.nextBatch();
    if (b === undefined) throw new MisfmError('DATA', 'the data loader ended unexpectedly');
    const [n, , d, h, w] = b.shape;
    const vox = d * h * w;
    const k = this.g.grid * this.g.grid;
    const samples = b.samples.map((s, i) => {
      const rng = new Rng(this.seed).fork(3).fork(s.index);
      const vs = vocoSample(b.image.subarray(i * vox, (i + 1) * vox), this.g, this.sw, rng);
      if (this.augment !== null) {
        const aug = this.augment;
        vs.random = vs.random.map((c) => augmentCrop(c, this.g.depth, this.g.roi, rng, aug));
        vs.bases = vs.bases.map((c) => augmentCrop(c, this.g.depth, this.g.roi, rng, aug));
      }
      return vs;
    });
    const labels = new Float32Array(n * this.sw * k);
    samples.forEach((s, i) => s.labels.forEach((l, r) => labels.set(l, (i * this.sw + r) * k)));
    return { rows: assembleRows(samples), labels, layout: { volumes: n, randomPerVolume: this.sw, bases: k }, cropShape: [this.g.depth, this.g.roi, this.g.roi], waitMs: b.waitMs };
  }

  close(): Promise<void> { return this.loader.close(); }
}

/** Trainer batch: image [rows, 1, D, r, r], target = labels [B, sw, n²]. */
export function vocoToBatch(a: VoCoArrays): Batch {
  const [d, h, w] = a.cropShape;
  const vox = d * h * w;
  const img = new Float32Array(a.rows.length * vox);
  a.rows.forEach((r, i) => img.set(r, i * vox));
  const L = a.layout;
  return { image: fromTypedArray(img, [a.rows.length, 1, d, h, w]), target: fromTypedArray(a.labels, [L.volumes, L.randomPerVolume, L.bases]) };
}

const layoutOf = (labels: Tensor): VoCoLayout => ({ volumes: labels.shape[0]!, randomPerVolume: labels.shape[1]!, bases: labels.shape[2]! });

/** VoCo loss on fixed batches (no dropout, no EMA): score −loss, the loss terms, and position accuracy. */
export function vocoValidation(model: VoCoModel, batches: VoCoArrays[]): ValidationResult {
  const sums: Record<string, number> = {};
  let loss = 0, hits = 0, total = 0;
  for (const a of batches) {
    const b = vocoToBatch(a);
    try {
      noGrad(() => tidy(() => {
        const r = model.step(b.image, b.target, a.layout, { ema: false, featureDropout: 0 });
        loss += r.total.item();
        for (const [k, v] of Object.entries(r.terms)) sums[k] = (sums[k] ?? 0) + v.item();
        const L = a.layout;
        for (let v = 0; v < L.volumes; v++) {
          const logits = onlineAssign(r.student.narrow(0, v * L.randomPerVolume, L.randomPerVolume),
            r.teacher.narrow(0, L.volumes * L.randomPerVolume + v * L.bases, L.bases));
          const pred = logits.argmax(1).toArray() as number[];
          const lab = b.target.select(0, v).argmax(1).toArray() as number[];
          pred.forEach((p, i) => { total++; if (p === lab[i]) hits++; });
        }
      }));
    } finally { b.image.dispose(); b.target.dispose(); }
  }
  const n = Math.max(1, batches.length);
  const metrics: Record<string, number> = { loss: loss / n, position_accuracy: total > 0 ? hits / total : 0 };
  for (const [k, v] of Object.entries(sums)) metrics[k] = v / n;
  return { score: -loss / n, metrics };
}

/** Write the reference's training layout and the backbone-only export next to misfm's checkpoints. */
export function exportVoCo(model: VoCoModel, runDir: string, iteration: number): { state: string; backbone: string } {
  const dir = path.join(runDir, 'checkpoints');
  const state = path.join(dir, 'voco_state.pt'), backbone = path.join(dir, 'backbone.pt');
  const sd = new PyDict([...model.stateDict()].map(([k, t]) => [k, tensorToRaw(t)]), true);
  saveTorchCheckpoint(state, new PyDict([['global_step', iteration], ['state_dict', sd]]));
  saveTorchCheckpoint(backbone, new PyDict([...model.backbone.stateDict()].map(([k, t]) => [k, tensorToRaw(t)]), true));
  return { state, backbone };
}

async function setup(ctx: PretextContext): Promise<PretextTask> {
  const cfg = ctx.config;
  vocoGeometry(cfg);
  // Fixed validation batches (held-out scans, own seed, no augmentation).
  const nVal = Math.max(1, Math.min(ctx.validSamples, 4));
  const valIds = ctx.validCases.length > 0 ? ctx.validCases : ctx.trainCases;
  const bs = Math.max(2, Math.min(cfg.data.batchSize, 2));
  const val = await VoCoStream.open({ loader: ctx.loader, cfg, seed: cfg.training.seed + 7919, caseIds: valIds, numSamples: nVal * bs, batchSize: bs, augment: false });
  const validSet: VoCoArrays[] = [];
  try { for (let i = 0; i < nVal; i++) validSet.push(await val.nextArrays()); } finally { await val.close(); }
  let model: VoCoModel | null = null;
  return {
    createModel: () => { model = createVoCoModel(cfg); return model as unknown as TrainableModel; },
    makeSource: async (pos) => {
      const stream = await VoCoStream.open({ loader: { ...ctx.loader, ...(ctx.shard !== undefined ? { shard: ctx.shard } : {}) }, cfg, seed: cfg.training.seed, caseIds: ctx.trainCases, start: (pos as LoaderState | null)?.nextIndex ?? 0 });
      return { next: async () => vocoToBatch(await stream.nextArrays()), position: () => stream.state(), close: () => stream.close() };
    },
    // outputs[0] is the batched backbone embedding of all rows (the model's forward).
    loss: (outs, batch) => {
      if (model === null) throw new MisfmError('ARGUMENT', 'VoCo loss called before the model was created');
      return model.step(batch.image, batch.target, layoutOf(batch.target), { embeddings: outs[0]! }).total;
    },
    validate: async (m) => vocoValidation(m as unknown as VoCoModel, validSet),
    finish: (m, runDir, iteration) => {
      const e = exportVoCo(m as unknown as VoCoModel, runDir, iteration);
      ctx.log(`VoCo exports: ${e.state} (reference training layout), ${e.backbone} (backbone only, for fine-tuning)`);
    },
  };
}

export const vocoMethod: PretextMethod = {
  name: 'voco',
  title: 'VoCo: predict the overlap of random crops with base crops by volume contrast (student/EMA teacher)',
  reference: 'Wu, Zhuang, Chen, CVPR 2024 / TPAMI 2025; Large-Scale-Medical Self-supervised (TPAMI, default), Luffy03/VoCo (CVPR)',
  setup,
};
