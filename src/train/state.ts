/**
 * Training checkpoints: everything a run needs to continue exactly, in one PyTorch-readable file.
 *
 * Layout (a torch.save'd dict, so `torch.load(f)['model_state_dict']` works as for PyMIC/MIS-FM):
 *   model_state_dict      OrderedDict of the model's tensors (PyTorch names)
 *   optimizer_state_dict  {state: {i: {...}}, param_groups: [...]} as torch.optim writes it
 *   scheduler_state_dict  {last_epoch}
 *   iteration             int
 *   misfm                 {format, config (JSON text of the resolved run config), rng_torch (uint8
 *                          tensor), loader (JSON text), best (JSON text), history (JSON text)}
 * Files are written atomically (temp + rename), so a crash never leaves a torn checkpoint.
 */
import { existsSync } from 'node:fs';
import type { Module } from '../nn/module.js';
import { tensorToRaw, rawToTensor } from '../nn/module.js';
import type { Optimizer, OptimizerStateDict, ParamState } from '../optim/optimizer.js';
import type { LRScheduler } from '../optim/schedulers.js';
import { Tensor } from '../engine/tensor.js';
import { getRngState, setRngState } from '../engine/creation.js';
import { PyDict, PyFloat, PyTuple, isPyDict, isRawTensor, readTorchFile, saveTorchCheckpoint, extractStateDict, type PyValue } from '../io/checkpoint/index.js';
import { CheckpointError, MisfmError } from '../util/errors.js';
import type { RawTensor } from '../engine/dtype.js';

export const CHECKPOINT_FORMAT = 'misfm-train-1';

/** What a checkpoint restores besides the model weights. */
export interface TrainingMeta {
  iteration: number;
  /** Resolved run configuration (opaque here; validated by the caller). */
  config: unknown;
  /** Data-loader position, opaque JSON. */
  loader: unknown;
  /** Best validation score so far and where it was reached. */
  best: { score: number; iteration: number } | null;
  /** Validation history [{iteration, score, ...}]. */
  history: unknown[];
}

export interface SaveParts extends TrainingMeta {
  model: Module;
  optimizer?: Optimizer;
  scheduler?: LRScheduler;
}

function optimizerToPy(sd: OptimizerStateDict): PyDict {
  const state = new PyDict();
  for (const [i, s] of sd.state) {
    const entry = new PyDict();
    for (const [k, v] of Object.entries(s)) {
      // PyTorch 1.13 keeps Adam's step as a float tensor; a float scalar reads back the same way.
      entry.set(k, typeof v === 'number' ? new PyFloat(v) : tensorToRaw(v));
    }
    state.set(i, entry);
  }
  // Hyper-parameters that PyTorch holds as floats stay floats even when integral (lr = 1, wd = 0).
  const floats = new Set(['lr', 'initial_lr', 'eps', 'weight_decay', 'momentum', 'dampening']);
  const groups = sd.paramGroups.map((g) => new PyDict(Object.entries(g).map(([k, v]): [string, PyValue] => {
    if (Array.isArray(v)) return [k, k === 'betas' ? new PyTuple(v) : v];
    return [k, typeof v === 'number' && floats.has(k) ? new PyFloat(v) : v];
  })));
  return new PyDict([['state', state], ['param_groups', groups]]);
}

function optimizerFromPy(v: PyValue | undefined, file: string): OptimizerStateDict {
  if (!isPyDict(v)) throw new CheckpointError(file, 'optimizer_state_dict is missing or not a dict');
  const stateV = v.get('state'), groupsV = v.get('param_groups');
  if (!isPyDict(stateV) || !Array.isArray(groupsV)) throw new CheckpointError(file, 'optimizer_state_dict lacks state/param_groups');
  const state = new Map<number, ParamState>();
  for (const [k, s] of stateV) {
    if (!isPyDict(s)) continue;
    const entry: ParamState = {};
    for (const [name, val] of s) {
      if (isRawTensor(val)) entry[String(name)] = val.shape.length === 0 && name === 'step' ? Number(rawScalar(val)) : rawToTensor(val);
      else if (typeof val === 'number') entry[String(name)] = val;
      else if (val instanceof PyFloat) entry[String(name)] = val.value;
    }
    state.set(Number(k), entry);
  }
  const paramGroups = groupsV.map((g) => {
    const out: Record<string, number | boolean | number[]> = {};
    if (!isPyDict(g)) return out;
    for (const [k, val] of g) {
      if (typeof val === 'number' || typeof val === 'boolean') out[String(k)] = val;
      else if (val instanceof PyFloat) out[String(k)] = val.value;
      else if (val instanceof PyTuple) out[String(k)] = val.items.map(Number);
      else if (Array.isArray(val)) out[String(k)] = val.map(Number);
    }
    return out;
  });
  return { state, paramGroups };
}

function rawScalar(r: RawTensor): number {
  const t = rawToTensor(r);
  try { return t.item(); } finally { t.dispose(); }
}

/** Write a full training checkpoint atomically. */
export function saveTrainingCheckpoint(file: string, p: SaveParts): void {
  const model = new PyDict([...p.model.stateDict()].map(([k, t]) => [k, tensorToRaw(t)]), true);
  const rng = getRngState();
  const misfm = new PyDict([
    ['format', CHECKPOINT_FORMAT],
    ['config', JSON.stringify(p.config)],
    ['rng_torch', tensorToRaw(rng)],
    ['loader', JSON.stringify(p.loader ?? null)],
    ['best', JSON.stringify(p.best)],
    ['history', JSON.stringify(p.history)],
  ]);
  rng.dispose();
  const top = new PyDict([
    ['model_state_dict', model],
    ['iteration', p.iteration],
    ['misfm', misfm],
  ]);
  if (p.optimizer !== undefined) top.set('optimizer_state_dict', optimizerToPy(p.optimizer.stateDict()));
  if (p.scheduler !== undefined) top.set('scheduler_state_dict', new PyDict([['last_epoch', p.scheduler.lastEpoch]]));
  saveTorchCheckpoint(file, top);
}

export interface LoadedTraining extends TrainingMeta {
  stateDict: Map<string, RawTensor>;
  optimizer: OptimizerStateDict | null;
  scheduler: { last_epoch: number } | null;
  rngTorch: RawTensor | null;
}

function jsonField(d: PyDict, key: string, file: string): unknown {
  const v = d.get(key);
  if (typeof v !== 'string') return null;
  try { return JSON.parse(v) as unknown; } catch { throw new CheckpointError(file, `misfm.${key} is not valid JSON`); }
}

/** Read a misfm training checkpoint (throws a CheckpointError naming the file if it is not one). */
export function loadTrainingCheckpoint(file: string): LoadedTraining {
  if (!existsSync(file)) throw new CheckpointError(file, 'no such checkpoint file');
  const top = readTorchFile(file);
  if (!isPyDict(top)) throw new CheckpointError(file, 'not a training checkpoint (top level is not a dict)');
  const m = top.get('misfm');
  if (!isPyDict(m) || m.get('format') !== CHECKPOINT_FORMAT) {
    throw new CheckpointError(file, `not a misfm training checkpoint (no 'misfm' record of format ${CHECKPOINT_FORMAT}); ` +
      'to start from plain pretrained weights use it as an init checkpoint instead of resuming');
  }
  const { stateDict } = extractStateDict(top, file);
  const it = top.get('iteration');
  const sched = top.get('scheduler_state_dict');
  const rng = m.get('rng_torch');
  return {
    stateDict,
    iteration: typeof it === 'number' ? it : 0,
    config: jsonField(m, 'config', file),
    loader: jsonField(m, 'loader', file),
    best: jsonField(m, 'best', file) as TrainingMeta['best'],
    history: (jsonField(m, 'history', file) as unknown[] | null) ?? [],
    optimizer: top.has('optimizer_state_dict') ? optimizerFromPy(top.get('optimizer_state_dict'), file) : null,
    scheduler: isPyDict(sched) && typeof sched.get('last_epoch') === 'number' ? { last_epoch: sched.get('last_epoch') as number } : null,
    rngTorch: isRawTensor(rng) ? rng : null,
  };
}

/** Put the model, optimizer, scheduler and torch generator back to a loaded state. */
export function restoreTraining(t: LoadedTraining, parts: { model: Module; optimizer?: Optimizer; scheduler?: LRScheduler }, file: string): void {
  parts.model.loadStateDict(t.stateDict);
  if (parts.optimizer !== undefined) {
    if (t.optimizer === null) throw new CheckpointError(file, 'has no optimizer state: cannot resume exactly');
    try {
      parts.optimizer.loadStateDict(t.optimizer);
    } catch (err) {
      // The optimizer does not know the file; name it (one line, as every bad-input error).
      if (err instanceof MisfmError && err.code === 'CHECKPOINT' && err.file === undefined) throw new CheckpointError(file, err.message, err);
      throw err;
    }
    for (const s of t.optimizer.state.values()) for (const v of Object.values(s)) if (v instanceof Tensor) v.dispose();
  }
  if (parts.scheduler !== undefined && t.scheduler !== null) parts.scheduler.loadStateDict(t.scheduler);
  if (t.rngTorch !== null) {
    const r = rawToTensor(t.rngTorch);
    setRngState(r);
    r.dispose();
  }
}
