/**
 * Exporting a trained model for distribution: the weights and the run record that prediction
 * needs (config with its preprocessing, best score, validation history), without the optimizer
 * state, the generator state and the loader position that only resuming needs. Optionally the
 * floating-point weights are stored as float16, which halves the file; they are cast back to the
 * module's dtype when loaded (Module.loadStateDict).
 *
 * The result is still a misfm training checkpoint (format misfm-train-1), so `predict`, `serve`,
 * `inspect` and `train --init` read it as they read any run's checkpoint; `train --resume` refuses
 * it because it has no optimizer state.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { PyDict, saveTorchCheckpoint } from '../io/checkpoint/index.js';
import { rawToTensor, tensorToRaw } from '../nn/module.js';
import type { RawTensor } from '../engine/dtype.js';
import { CheckpointError } from '../util/errors.js';
import type { KEEP_LARGEST_MODES } from '../config/types.js';
import { CHECKPOINT_FORMAT, loadTrainingCheckpoint } from './state.js';

export interface ExportOptions {
  /**
   * Store float32 weights as float16 (buffers that are not float32, e.g. int64 counters, are kept).
   * A tensor whose float16 rounding would exceed `HALF_TOLERANCE` of its largest magnitude (tiny
   * values near float16's subnormal range, e.g. the conv biases in front of a BatchNorm) stays float32.
   */
  half?: boolean;
  /**
   * Post-processing that predict should apply by default with this model (stored in the config's
   * inference section; predict's --keep-largest still overrides it).
   */
  keepLargest?: (typeof KEEP_LARGEST_MODES)[number];
  /** Extra provenance recorded under misfm.export (JSON). */
  note?: Record<string, unknown>;
}

export interface ExportResult {
  file: string;
  bytes: number;
  tensors: number;
  /** Number of tensors stored as float16. */
  halved: number;
  /** Float32 tensors kept in float32 under `half` because float16 would round them too coarsely. */
  keptFloat32: number;
  iteration: number;
  /** Largest relative rounding error of a halved tensor (max |w16 - w| / max |w|), 0 without half. */
  maxRelativeError: number;
  /** sha256 of the source checkpoint (16 hex digits). */
  sourceSha256: string;
}

/** Largest float16 rounding error, relative to the tensor's largest magnitude, accepted by export. */
export const HALF_TOLERANCE = 1e-3;

function toHalf(raw: RawTensor): { raw: RawTensor; relErr: number } {
  const t = rawToTensor(raw);
  const h = t.to('float16');
  const back = h.to('float32');
  const diff = back.sub(t).abs().max();
  const scale = t.abs().max();
  const s = scale.item();
  const relErr = s > 0 ? diff.item() / s : 0;
  const out = tensorToRaw(h);
  for (const x of [t, h, back, diff, scale]) x.dispose();
  return { raw: out, relErr };
}

/** Write an inference-ready copy of the training checkpoint `src` to `dst` (atomically). */
export function exportModel(src: string, dst: string, o: ExportOptions = {}): ExportResult {
  const t = loadTrainingCheckpoint(src);
  if (t.config === null || typeof t.config !== 'object') throw new CheckpointError(src, 'has no run config: nothing to export but weights (use the file as it is)');
  const config = structuredClone(t.config) as Record<string, unknown>;
  if (o.keepLargest !== undefined) {
    const inf = config['inference'];
    if (inf === null || typeof inf !== 'object') throw new CheckpointError(src, 'its run config has no inference section to record --keep-largest in');
    (inf as Record<string, unknown>)['keepLargest'] = o.keepLargest;
  }
  const model = new PyDict(undefined, true);
  let halved = 0, keptFloat32 = 0;
  let maxRelativeError = 0;
  for (const [k, raw] of t.stateDict) {
    if (o.half === true && raw.dtype === 'float32') {
      const h = toHalf(raw);
      if (!Number.isFinite(h.relErr)) throw new CheckpointError(src, `tensor ${k} does not fit float16 (overflow); export without half`);
      if (h.relErr > HALF_TOLERANCE) { model.set(k, raw); keptFloat32++; continue; }
      model.set(k, h.raw);
      halved++;
      maxRelativeError = Math.max(maxRelativeError, h.relErr);
    } else {
      model.set(k, raw);
    }
  }
  const sourceSha256 = createHash('sha256').update(readFileSync(src)).digest('hex').slice(0, 16);
  const misfm = new PyDict([
    ['format', CHECKPOINT_FORMAT],
    ['config', JSON.stringify(config)],
    ['loader', 'null'],
    ['best', JSON.stringify(t.best)],
    ['history', JSON.stringify(t.history)],
    ['export', JSON.stringify({ source: sourceSha256, weights: o.half === true ? 'float16' : 'as trained', iteration: t.iteration, ...o.note })],
  ]);
  saveTorchCheckpoint(dst, new PyDict([['model_state_dict', model], ['iteration', t.iteration], ['misfm', misfm]]));
  return { file: dst, bytes: statSync(dst).size, tensors: t.stateDict.size, halved, keptFloat32, iteration: t.iteration, maxRelativeError, sourceSha256 };
}
