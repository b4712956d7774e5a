/**
 * VoCo's trainable pieces (spec 2.3-2.4): the projector, the student/teacher pair with the EMA
 * update inside the step, row-wise feature dropout, and backbones that turn crops into one
 * embedding per crop.
 *
 * State-dict layout = the TPAMI training layout: `backbone.*`, `student.layer{1,2,3}.0.*`,
 * `teacher.*` (157 entries for SwinUNETR fs 48), so Large-Scale-Medical's code resumes it
 * strictly. The CVPR variant EMAs the whole network; its teacher backbone is `teacher_backbone.*`.
 */
import type { Tensor } from '../../engine/tensor.js';
import { noGrad } from '../../engine/creation.js';
import { tidy, dispose } from '../../engine/scope.js';
import * as F from '../../engine/functional.js';
import { Module } from '../../nn/module.js';
import { Linear } from '../../nn/layers/linear.js';
import { BatchNorm1d } from '../../nn/layers/norm.js';
import { ReLU } from '../../nn/layers/activation.js';
import { Sequential } from '../../nn/layers/container.js';
import { bernoulliKeepMask } from '../../nn/layers/drop-path.js';
import { cat } from '../../engine/creation.js';
import { MisfmError } from '../../util/errors.js';
import { PCTNet } from '../../models/pctnet/model.js';
import type { PCTNetOptions } from '../../models/pctnet/options.js';
import { consume } from '../../models/consume.js';
import { vocoLossCvpr, vocoLossTpami, type VoCoLayout, type VoCoLossTerms } from './losses.js';

/** What VoCo needs from a backbone: one embedding per crop. */
export interface VoCoBackbone extends Module {
  readonly embeddingDim: number;
  /**
   * [N, 1, D, H, W] -> [N, embeddingDim], all rows in one batched pass. SwinUNETR's encoder uses
   * instance/layer norms only, so rows are independent; PCT-Net's BatchNorm sees batch statistics
   * over all rows in training mode, as the same network would in PyTorch.
   */
  embed(x: Tensor): Tensor;
}

/** Linear -> BatchNorm1d(affine=false, batch statistics always) -> ReLU, twice, then Linear. */
export class ProjectionHead extends Module {
  readonly layer1: Sequential;
  readonly layer2: Sequential;
  readonly layer3: Sequential;
  constructor(readonly inDim: number, hidden: number, out: number) {
    super();
    const bn = (): BatchNorm1d => new BatchNorm1d(hidden, { affine: false, trackRunningStats: false });
    this.layer1 = this.registerModule('layer1', new Sequential(new Linear(inDim, hidden), bn(), new ReLU()));
    this.layer2 = this.registerModule('layer2', new Sequential(new Linear(hidden, hidden), bn(), new ReLU()));
    this.layer3 = this.registerModule('layer3', new Sequential(new Linear(hidden, out)));
  }
  /** All rows in one call: the statistics are over every row of the batch. */
  forward(x: Tensor, record?: (name: string, t: Tensor) => void): Tensor {
    const a = this.layer1.forward(x);
    record?.('layer1', a);
    const b = consume(a, (t) => this.layer2.forward(t));
    record?.('layer2', b);
    return consume(b, (t) => this.layer3.forward(t));
  }
}

/**
 * PCT-Net as a VoCo backbone (spec 9): the encoder outputs the decoder uses as skips, x0, x1 (stem)
 * and e2, e3, e4 (pyramid encoder), each adaptive-average-pooled and concatenated. The whole
 * PCT-Net is held under its own names so fine-tuning loads it by name; its decoder and heads get
 * no gradient here.
 */
export class PCTNetVoCoBackbone extends Module implements VoCoBackbone {
  readonly net: PCTNet;
  constructor(o: PCTNetOptions) {
    super();
    this.net = new PCTNet(o);
    // Register the network's children directly, so keys read backbone.embeddings.*, backbone.pyramid_ct.*.
    for (const [name, child] of this.net.namedChildren()) this.registerModule(name, child);
  }
  get embeddingDim(): number { const f = this.net.options.featureChns; return f[0] + f[1] + f[2] + f[3] + f[4]; }
  embed(x: Tensor): Tensor {
    this.net.checkInput(x);
    const p = this.net.pyramidCt;
    return tidy(() => {
      const { x0, x1, x2 } = this.net.embedding.forward(x);
      const e2 = consume(x2, (t) => p.convtransE2.forward(t));
      const e3 = tidy(() => p.convtransE3.forward(p.down3.forward(e2)));
      const e4 = tidy(() => p.convtransE4.forward(p.down4.forward(e3)));
      const maps = [x0, x1, e2, e3, e4];
      try { return cat(maps.map((m) => F.adaptiveAvgPool3d(m, 1).flatten(1)), 1); } finally { dispose(maps); }
    });
  }
}

export type VoCoVariant = 'tpami' | 'cvpr';

export interface VoCoHeadOptions {
  /** 'tpami' (default; intra + inter + reg) or 'cvpr' (symmetric logits, l² negatives, no inter). */
  variant: VoCoVariant;
  /** Projector hidden and output width (TPAMI 1024/1024, CVPR 2048/2048). */
  hiddenDim: number;
  outDim: number;
  /** Row-wise dropout of the student's embeddings (TPAMI 0.2; CVPR 0). */
  featureDropout: number;
  /** Teacher = m·teacher + (1−m)·student every step, before the teacher pass (0.9). */
  emaMomentum: number;
  /** 'projector' (TPAMI: shared backbone) or 'all' (CVPR: the teacher has its own backbone). */
  emaScope: 'projector' | 'all';
}

/** Defaults of each variant (spec 2.4, 9). */
export function vocoHeadDefaults(variant: VoCoVariant): VoCoHeadOptions {
  return variant === 'tpami'
    ? { variant, hiddenDim: 1024, outDim: 1024, featureDropout: 0.2, emaMomentum: 0.9, emaScope: 'projector' }
    : { variant, hiddenDim: 2048, outDim: 2048, featureDropout: 0, emaMomentum: 0.9, emaScope: 'all' };
}

/** What one VoCo step computed. */
export interface VoCoStepResult extends VoCoLossTerms {
  student: Tensor;
  teacher: Tensor;
}

/** Backbone + student/teacher projectors. `step` is one training forward (EMA included). */
export class VoCoModel extends Module {
  readonly backbone: VoCoBackbone;
  readonly student: ProjectionHead;
  readonly teacher: ProjectionHead;
  readonly teacherBackbone: VoCoBackbone | null;

  /** `makeBackbone` is called twice for emaScope 'all' (independent random inits, as the CVPR code). */
  constructor(makeBackbone: () => VoCoBackbone, readonly o: VoCoHeadOptions) {
    super();
    if (!(o.featureDropout >= 0 && o.featureDropout < 1)) throw new MisfmError('CONFIG', `voco.featureDropout must be in [0, 1), got ${o.featureDropout}`);
    if (!(o.emaMomentum >= 0 && o.emaMomentum <= 1)) throw new MisfmError('CONFIG', `voco.emaMomentum must be in [0, 1], got ${o.emaMomentum}`);
    this.backbone = this.registerModule('backbone', makeBackbone());
    const d = this.backbone.embeddingDim;
    this.student = this.registerModule('student', new ProjectionHead(d, o.hiddenDim, o.outDim));
    this.teacher = this.registerModule('teacher', new ProjectionHead(d, o.hiddenDim, o.outDim));
    this.teacherBackbone = o.emaScope === 'all' ? this.registerModule('teacher_backbone', makeBackbone()) : null;
  }

  /** The trainer's forward: the backbone embedding. */
  forward(x: Tensor): Tensor { return this.backbone.embed(x); }

  /** teacher ← m·teacher + (1−m)·student, parameter by parameter (projectors; with scope 'all' the backbones too). */
  emaUpdate(): void {
    const m = this.o.emaMomentum;
    const pairs: [Module, Module][] = [[this.student, this.teacher]];
    if (this.teacherBackbone !== null) pairs.push([this.backbone, this.teacherBackbone]);
    noGrad(() => {
      for (const [s, t] of pairs) {
        const sp = s.parameters(), tp = t.parameters();
        if (sp.length !== tp.length) throw new MisfmError('ARGUMENT', 'EMA: student and teacher differ in structure');
        sp.forEach((p, i) => tidy(() => { tp[i]!.mul_(m).add_(p, 1 - m); }));
      }
    });
  }

  /**
   * One VoCo step: embed all rows in one batched pass, drop whole rows of the student's input,
   * student projector, EMA update, teacher projector on the clean embeddings (no gradient), loss.
   * `dropoutKeep` replays a recorded row mask (parity tests); `ema: false` skips the update (validation).
   */
  step(x: Tensor, labels: Tensor, layout: VoCoLayout, opts: { dropoutKeep?: Tensor; ema?: boolean; featureDropout?: number; embeddings?: Tensor } = {}): VoCoStepResult {
    const rows = layout.volumes * (layout.randomPerVolume + layout.bases);
    if (x.shape[0] !== rows) throw new MisfmError('ARGUMENT', `VoCo step: ${x.shape[0]} rows, the layout needs ${rows}`);
    return tidy(() => {
      const emb = opts.embeddings ?? this.backbone.embed(x);
      const p = opts.featureDropout ?? this.o.featureDropout;
      const aug = opts.dropoutKeep !== undefined
        ? emb.mul(opts.dropoutKeep.to('float32').div(1 - p).view([-1, 1]))
        : p > 0 ? emb.mul(bernoulliKeepMask(emb, 1 - p)) : emb;
      const student = this.student.forward(aug);
      if (opts.ema ?? true) this.emaUpdate();
      const teacher = noGrad(() => this.teacher.forward(this.teacherBackbone === null ? emb : this.teacherBackbone.embed(x)));
      const loss = this.o.variant === 'tpami' ? vocoLossTpami(student, teacher, labels, layout) : vocoLossCvpr(student, teacher, labels, layout);
      return { ...loss, student, teacher };
    });
  }
}
