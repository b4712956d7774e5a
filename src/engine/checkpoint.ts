/**
 * Activation checkpointing: run a segment without keeping its activations and recompute them during
 * backward. Trades compute (one extra forward per segment) for memory, with identical results:
 * the segment's random draws (dropout) are replayed from the saved generator state, and batch-norm
 * running statistics are not updated a second time (see isRecomputing()).
 *
 * The native side (native/src/checkpoint.cc) provides only a generic autograd node that calls back
 * into `recompute` below; CPU only (CUDA backward runs on libtorch threads that cannot call JS).
 */
import { native, type Handle } from './native.js';
import { Tensor } from './tensor.js';
import { getRngState, setRngState, isGradEnabled, enableGrad, noGrad } from './creation.js';
import { tidy, keep } from './scope.js';
import { MisfmError } from '../util/errors.js';

interface Segment { fn: (inputs: Tensor[]) => Tensor[]; rng: Tensor; needsGrad: boolean[]; }
/** A function with a hand-written backward (see customFunction). */
interface Custom { backward: (saved: Tensor[], grads: (Tensor | null)[]) => (Tensor | null)[]; }

const segments = new Map<number, Segment>();
const customs = new Map<number, Custom>();
let nextId = 1;
let recomputeDepth = 0;
let registered = false;

/** True while a checkpointed segment is being recomputed for backward (BN must not update stats). */
export function isRecomputing(): boolean { return recomputeDepth > 0; }

/** Number of segments whose backward has not run yet (for leak checks). */
export function pendingCheckpoints(): number { return segments.size + customs.size; }

function recompute(id: number, inputs: Handle[], grads: (Handle | null)[]): (Handle | null)[] {
  const custom = customs.get(id);
  if (custom !== undefined) return runCustomBackward(id, custom, inputs, grads);
  const seg = segments.get(id);
  if (seg === undefined) {
    throw new MisfmError('NATIVE', 'checkpoint: a checkpointed segment was backpropagated twice (retainGraph is not supported with activation checkpointing)');
  }
  segments.delete(id);
  const current = getRngState();
  setRngState(seg.rng);
  recomputeDepth++;
  try {
    const gradTensors = grads.map((g) => (g === null ? null : new Tensor(g)));
    const ins = inputs.map((h, i) => keep(new Tensor(h).detach().requiresGrad_(seg.needsGrad[i] ?? false)));
    const result = enableGrad(() => tidy(() => {
      const outs = seg.fn(ins);
      const os: Handle[] = [], gs: (Handle | null)[] = [];
      outs.forEach((o, i) => {
        const g = gradTensors[i];
        if (o.requiresGrad && g !== null && g !== undefined) { os.push(o.handle); gs.push(g.handle); }
      });
      if (os.length > 0) native().backward(os, gs, false);
      return ins.map((t) => t.grad);
    }));
    for (const t of [...ins, ...gradTensors]) t?.dispose();
    return result.map((g) => (g === null ? null : g.handle));
  } finally {
    recomputeDepth--;
    setRngState(current);
    current.dispose();
    seg.rng.dispose();
  }
}

/**
 * Run `fn(inputs)` checkpointed. Outside grad mode, or when no input requires grad, fn simply runs
 * (nothing would be saved anyway). fn must be deterministic given the generator state and must
 * return tensors computed from its inputs and module parameters.
 */
export function checkpoint(fn: (inputs: Tensor[]) => Tensor[], inputs: Tensor[]): Tensor[] {
  if (!isGradEnabled() || isRecomputing() || !inputs.some((t) => t.requiresGrad)) return fn(inputs);
  if (inputs.some((t) => t.device !== 'cpu')) return fn(inputs); // see file comment: CPU only
  if (!registered) { native().setRecomputeCallback(recompute); registered = true; }
  const rng = keep(getRngState());
  const needsGrad = inputs.map((t) => t.requiresGrad);
  const outs = noGrad(() => fn(inputs.map((t) => t.detach())));
  const id = nextId++;
  segments.set(id, { fn, rng, needsGrad });
  const linked = native().attachRecompute(inputs.map((t) => t.handle), outs.map((t) => t.handle), id).map((h) => new Tensor(h));
  for (const o of outs) o.dispose();
  return linked;
}

function runCustomBackward(id: number, c: Custom, inputs: Handle[], grads: (Handle | null)[]): (Handle | null)[] {
  customs.delete(id);
  const gradTensors = grads.map((g) => (g === null ? null : new Tensor(g)));
  const saved = inputs.map((h) => new Tensor(h));
  try {
    // The results leave this scope as raw handles owned by the native node.
    const out = noGrad(() => tidy(() => c.backward(saved, gradTensors)));
    if (out.length !== inputs.length) throw new MisfmError('NATIVE', `custom function: backward returned ${out.length} gradients for ${inputs.length} inputs`);
    return out.map((g) => (g === null ? null : g.handle));
  } finally {
    for (const t of [...saved, ...gradTensors]) t?.dispose();
  }
}

/**
 * An autograd function with a hand-written backward (torch.autograd.Function): `forward` runs
 * without grad on detached inputs; during backward, `backward(inputs, gradOutputs)` returns one
 * gradient (or null) per input. Used where a gradient needs something autograd cannot express,
 * e.g. a cross-process reduction (SyncBatchNorm). CPU only, like checkpointing.
 */
export function customFunction(inputs: Tensor[], forward: (inputs: Tensor[]) => Tensor[],
  backward: (inputs: Tensor[], grads: (Tensor | null)[]) => (Tensor | null)[]): Tensor[] {
  if (!isGradEnabled() || !inputs.some((t) => t.requiresGrad)) return noGrad(() => forward(inputs.map((t) => t.detach())));
  if (!registered) { native().setRecomputeCallback(recompute); registered = true; }
  const outs = noGrad(() => forward(inputs.map((t) => t.detach())));
  const id = nextId++;
  customs.set(id, { backward });
  const linked = native().attachRecompute(inputs.map((t) => t.handle), outs.map((t) => t.handle), id).map((h) => new Tensor(h));
  for (const o of outs) o.dispose();
  return linked;
}
