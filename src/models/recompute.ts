/**
 * Activation checkpointing by recomputation, built from the engine's public pieces: no custom
 * autograd node is needed because the backward pass is driven segment by segment from TS.
 *
 * A network is described as a list of segments (named inputs -> named outputs). The forward pass
 * runs every segment but the last without autograd, keeping only the segment outputs. The last
 * segment runs with autograd from leaf copies of its inputs, so the caller computes the loss and
 * calls loss.backward() as usual; then `backward()` replays the earlier segments in reverse, each
 * with autograd enabled, and back-propagates the gradients that reached its outputs. Parameter
 * gradients accumulate exactly as in one ordinary backward pass.
 *
 * Replays are exact: the RNG state before each segment is restored (same dropout / DropPath
 * masks), and BatchNorm running statistics are saved before and restored after a replay, so they
 * are updated once per step as without checkpointing. The RNG state after the forward pass is
 * restored at the end of backward(), so a run's random stream does not depend on checkpointing.
 *
 * Limits: only the segment boundary tensors are stored, so peak memory is the boundaries plus the
 * largest single segment's autograd graph. Each segment but the last is computed twice.
 */
import type { Tensor } from '../engine/tensor.js';
import { native } from '../engine/native.js';
import { enableGrad, getRngState, noGrad, setRngState } from '../engine/creation.js';
import { keep, dispose } from '../engine/scope.js';
import { Module } from '../nn/module.js';
import { BatchNorm3d } from '../nn/layers/norm.js';
import { MisfmError } from '../util/errors.js';

/** One recomputable piece of a network. */
export interface Segment {
  name: string;
  /** Names of the values it reads ('input' is the network input). */
  inputs: readonly string[];
  /** Names of the values it produces. */
  outputs: readonly string[];
  /** Modules it runs (their BatchNorm statistics are protected during replays). */
  modules: readonly Module[];
  /** Compute the outputs from the inputs (in the order declared). */
  run(inputs: Tensor[]): Tensor[];
}

/** A checkpointed forward pass in progress. */
export interface RecomputeHandle {
  /** Outputs of the last segment (with autograd); the caller owns them. */
  outputs: Tensor[];
  /** After loss.backward(): back-propagate through the earlier segments. Frees the stored values. */
  backward(): void;
  /** Free stored values without a backward pass (e.g. on error). Safe to call twice. */
  dispose(): void;
}

function bnBuffers(modules: readonly Module[]): Tensor[] {
  const out: Tensor[] = [];
  for (const root of modules) {
    for (const [, m] of root.namedModules()) {
      if (m instanceof BatchNorm3d) for (const [, b] of m.namedBuffers()) out.push(b);
    }
  }
  return out;
}

function accumulate(grads: Map<string, Tensor>, name: string, g: Tensor): void {
  const prev = grads.get(name);
  if (prev === undefined) { grads.set(name, keep(g)); return; }
  grads.set(name, keep(noGrad(() => prev.add(g))));
  prev.dispose(); g.dispose();
}

/**
 * Run `segments` on `input` with recomputation. Segments must be in forward (topological) order
 * and each value produced once.
 */
export function recomputeForward(segments: readonly Segment[], input: Tensor): RecomputeHandle {
  if (segments.length === 0) throw new MisfmError('ARGUMENT', 'recomputeForward: no segments');
  const values = new Map<string, Tensor>([['input', input]]);
  const rng: Tensor[] = [];
  const leaves = new Map<string, Tensor>();
  let disposed = false;
  const get = (seg: Segment, n: string): Tensor => {
    const v = values.get(n);
    if (v === undefined) throw new MisfmError('ARGUMENT', `recompute segment '${seg.name}' reads '${n}', which no earlier segment produced`);
    return v;
  };
  const freeAll = (): void => {
    if (disposed) return;
    disposed = true;
    for (const [n, v] of values) if (n !== 'input') v.dispose();
    dispose(rng);
    dispose([...leaves.values()]);
  };
  let outputs: Tensor[];
  try {
    for (const seg of segments.slice(0, -1)) {
      rng.push(keep(getRngState()));
      const outs = noGrad(() => seg.run(seg.inputs.map((n) => get(seg, n))));
      seg.outputs.forEach((n, i) => values.set(n, keep(outs[i]!)));
    }
    const last = segments[segments.length - 1]!;
    const ins = last.inputs.map((n) => {
      if (n === 'input') return input;
      const leaf = keep(get(last, n).detach().requiresGrad_(true));
      leaves.set(n, leaf);
      return leaf;
    });
    outputs = enableGrad(() => last.run(ins));
  } catch (err) {
    freeAll();
    throw err;
  }
  const afterForward = keep(getRngState());

  const backward = (): void => {
    if (disposed) throw new MisfmError('ARGUMENT', 'recompute backward: already run or disposed');
    const grads = new Map<string, Tensor>();
    try {
      for (const [n, leaf] of leaves) { const g = leaf.grad; if (g !== null) accumulate(grads, n, g); }
      for (let s = segments.length - 2; s >= 0; s--) {
        const seg = segments[s]!;
        const outGrads = seg.outputs.map((n) => grads.get(n) ?? null);
        if (outGrads.every((g) => g === null)) continue;
        const inLeaves = seg.inputs.map((n) => (n === 'input' ? input : keep(get(seg, n).detach().requiresGrad_(true))));
        const saved = noGrad(() => bnBuffers(seg.modules).map((b) => [b, keep(b.clone())] as const));
        setRngState(rng[s]!);
        const outs = enableGrad(() => seg.run(inLeaves));
        try {
          const pairs = outs.map((o, i) => [o, outGrads[i]] as const).filter(([o, g]) => g !== null && o.requiresGrad);
          if (pairs.length > 0) native().backward(pairs.map(([o]) => o.handle), pairs.map(([, g]) => g!.handle), false);
        } finally {
          noGrad(() => { for (const [b, c] of saved) { b.copy_(c); c.dispose(); } });
          dispose(outs);
        }
        seg.outputs.forEach((n) => { grads.get(n)?.dispose(); grads.delete(n); values.get(n)?.dispose(); values.delete(n); });
        seg.inputs.forEach((n, i) => {
          if (n === 'input') return;
          const leaf = inLeaves[i]!;
          const g = leaf.grad;
          if (g !== null) accumulate(grads, n, g);
          leaf.dispose();
        });
      }
      setRngState(afterForward);
    } catch (err) {
      throw new MisfmError('NATIVE', `recompute backward failed: ${(err as Error).message}`, { cause: err });
    } finally {
      dispose([...grads.values()]);
      afterForward.dispose();
      freeAll();
    }
  };
  return { outputs, backward, dispose: () => { afterForward.dispose(); freeAll(); } };
}
