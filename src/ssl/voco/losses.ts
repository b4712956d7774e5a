/**
 * VoCo's losses (spec 3), with the reference's detach pattern:
 *
 *   onlineAssign(f, b)[r, k] = ReLU(cos(f[r], b[k]))                       no temperature, no softmax
 *   regularization(b)        = mean over pairs i < j of ReLU(cos(b[i], b[j].detach()))²
 *   ceLoss TPAMI(y, l)       = Σ −y·log(1 − |y − l| + 1e−6) / (Σy + 1e−6) + Σ −[y=0]·log(1 − l + 1e−6) / (Σ[y=0] + 1e−6)
 *   ceLoss CVPR              = the same positive term, negatives Σ[y=0]·l² / (Σ[y=0] + 1e−6), returned apart
 *
 * Cosine similarity is libtorch's own aten::cosine_similarity (eps 1e-8), so near-zero vectors
 * behave exactly as in PyTorch.
 */
import type { Tensor } from '../../engine/tensor.js';
import { call1 } from '../../engine/call.js';
import { fromTypedArray, noGrad } from '../../engine/creation.js';
import { tidy } from '../../engine/scope.js';
import * as F from '../../engine/functional.js';
import { MisfmError } from '../../util/errors.js';

/** Pairwise cosine similarity [R, K] of rows of a [R, C] and b [K, C]. */
export function pairwiseCosine(a: Tensor, b: Tensor): Tensor {
  return tidy(() => call1('cosine_similarity', [a.unsqueeze(1), b.unsqueeze(0), 2, 1e-8]));
}

/** ReLU(cos) logits [R, K] of feature rows against base rows. */
export function onlineAssign(feats: Tensor, bases: Tensor): Tensor {
  if (feats.ndim !== 2 || bases.ndim !== 2 || feats.shape[1] !== bases.shape[1]) {
    throw new MisfmError('ARGUMENT', `onlineAssign: need [R, C] and [K, C], got [${feats.shape}] and [${bases.shape}]`);
  }
  return tidy(() => F.relu(pairwiseCosine(feats, bases)));
}

/** Mean over the K(K−1)/2 pairs i < j of ReLU(cos(b_i, b_j.detach()))². */
export function regularizationLoss(bases: Tensor): Tensor {
  const k = bases.shape[0]!;
  if (k < 2) throw new MisfmError('ARGUMENT', 'regularizationLoss needs at least 2 bases');
  return tidy(() => {
    const upper = new Float32Array(k * k);
    for (let i = 0; i < k; i++) for (let j = i + 1; j < k; j++) upper[i * k + j] = 1;
    const s = F.relu(pairwiseCosine(bases, bases.detach()));
    return s.square().mul(fromTypedArray(upper, [k, k])).sum().div((k * (k - 1)) / 2);
  });
}

/** The positive term Σ −y·log(1 − |y − l| + 1e−6) / (Σy + 1e−6). */
function positiveTerm(y: Tensor, l: Tensor): Tensor {
  return tidy(() => y.neg().mul(y.sub(l).abs().rsub(1).add(1e-6).log()).sum().div(y.sum().add(1e-6)));
}

/** TPAMI ce_loss: positive + negative term. Labels `y` carry no gradient (detach them when they come from a network). */
export function ceLossTpami(y: Tensor, l: Tensor): { pos: Tensor; neg: Tensor; total: Tensor } {
  return tidy(() => {
    const pos = positiveTerm(y, l);
    const negLab = noGrad(() => y.eq(0).to('float32'));
    const neg = negLab.mul(l.rsub(1).add(1e-6).log().neg()).sum().div(negLab.sum().add(1e-6));
    return { pos, neg, total: pos.add(neg) };
  });
}

/** CVPR ce_loss: (pos, neg) with squared logits on the zero-label entries. */
export function ceLossCvpr(y: Tensor, l: Tensor): { pos: Tensor; neg: Tensor } {
  return tidy(() => {
    const pos = positiveTerm(y, l);
    const negLab = noGrad(() => y.eq(0).to('float32'));
    const neg = negLab.mul(l.square()).sum().div(negLab.sum().add(1e-6));
    return { pos, neg };
  });
}

/** Row layout of a VoCo batch: B volumes, sw random crops each, K bases each (spec 1.4). */
export interface VoCoLayout { volumes: number; randomPerVolume: number; bases: number }

const randRows = (t: Tensor, L: VoCoLayout, v: number): Tensor => t.narrow(0, v * L.randomPerVolume, L.randomPerVolume);
const baseRows = (t: Tensor, L: VoCoLayout, v: number): Tensor => t.narrow(0, L.volumes * L.randomPerVolume + v * L.bases, L.bases);

export interface VoCoLossTerms {
  /** What is minimised. */
  total: Tensor;
  /** Averages over volumes (scalar tensors; TPAMI: intra, inter, reg; CVPR: pos, neg, reg). */
  terms: Record<string, Tensor>;
}

/**
 * TPAMI loss (Large-Scale-Medical VoCoHead.forward): for volume i and j = (i+1) mod B,
 * intra = ce(y_i, assign(stu rand_i, tea base_i)); inter = ce(assign(tea rand_i, tea base_j).detach(),
 * assign(stu rand_i, stu base_j)); reg = regularization(stu base_i); each averaged over volumes.
 * `teacher` must carry no gradient (computed under noGrad).
 */
export function vocoLossTpami(student: Tensor, teacher: Tensor, labels: Tensor, L: VoCoLayout): VoCoLossTerms {
  return tidy(() => {
    let intra: Tensor | null = null, inter: Tensor | null = null, reg: Tensor | null = null;
    const add = (a: Tensor | null, b: Tensor): Tensor => (a === null ? b : a.add(b));
    for (let i = 0; i < L.volumes; i++) {
      const j = (i + 1) % L.volumes;
      const y = labels.select(0, i);
      intra = add(intra, ceLossTpami(y, onlineAssign(randRows(student, L, i), baseRows(teacher, L, i))).total);
      const pred1 = onlineAssign(randRows(teacher, L, i), baseRows(teacher, L, j)).detach();
      const pred2 = onlineAssign(randRows(student, L, i), baseRows(student, L, j));
      inter = add(inter, ceLossTpami(pred1, pred2).total);
      reg = add(reg, regularizationLoss(baseRows(student, L, i)));
    }
    const n = L.volumes;
    const terms = { intra: intra!.div(n), inter: inter!.div(n), reg: reg!.div(n) };
    return { total: terms.intra.add(terms.inter).add(terms.reg), terms };
  });
}

/**
 * CVPR loss (VoCo repo VoCoHead.forward): symmetric logits 0.5·(assign(stu rand, tea base) +
 * assign(tea rand, stu base)), pos + neg of the CVPR ce_loss and reg on the student bases.
 */
export function vocoLossCvpr(student: Tensor, teacher: Tensor, labels: Tensor, L: VoCoLayout): VoCoLossTerms {
  return tidy(() => {
    let pos: Tensor | null = null, neg: Tensor | null = null, reg: Tensor | null = null;
    const add = (a: Tensor | null, b: Tensor): Tensor => (a === null ? b : a.add(b));
    for (let i = 0; i < L.volumes; i++) {
      const logits = onlineAssign(randRows(student, L, i), baseRows(teacher, L, i))
        .add(onlineAssign(randRows(teacher, L, i), baseRows(student, L, i))).mul(0.5);
      const ce = ceLossCvpr(labels.select(0, i), logits);
      pos = add(pos, ce.pos); neg = add(neg, ce.neg);
      reg = add(reg, regularizationLoss(baseRows(student, L, i)));
    }
    const n = L.volumes;
    const terms = { pos: pos!.div(n), neg: neg!.div(n), reg: reg!.div(n) };
    return { total: terms.pos.add(terms.neg).add(terms.reg), terms };
  });
}
