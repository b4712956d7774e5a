/**
 * Checkpoint I/O without the engine: PyTorch .pt/.pth (torch.save zip format) and safetensors.
 *
 *   const { stateDict, meta } = await loadCheckpointFile('pctnet_ct10k_volf.pt');
 *   saveTorchCheckpoint('ckpt_100.pt', { model_state_dict: sd, iteration: 100 });
 */
import type { RawTensor } from '../../engine/dtype.js';
import { detectCheckpointFormat, type CheckpointFormat } from './detect.js';
import { PyDict, type PyInput, type PyValue } from './pyvalue.js';
import { readSafetensors } from './safetensors.js';
import { extractStateDict, readTorchArchive, writeTorchFile, type WriteTorchOptions } from './torch-pt.js';

/** What was found besides the tensors. */
export interface CheckpointMeta {
  format: CheckpointFormat;
  /** Top-level key holding the state_dict ('model_state_dict', ...), or null for a bare state_dict. */
  stateDictKey: string | null;
  /** 'module.' when a DataParallel prefix was stripped from every key, else null. */
  strippedPrefix: string | null;
  /** torch archives: the archive folder name and `version` record. */
  archiveStem: string | null;
  archiveVersion: string | null;
  /** safetensors: the `__metadata__` map. */
  metadata: Record<string, string> | null;
  /** torch checkpoints saved by a training loop: the 'iteration' / 'epoch' value when present. */
  iteration: number | null;
}

/** A loaded checkpoint. */
export interface LoadedCheckpoint {
  /** Parameter and buffer tensors in file order, prefix-stripped. */
  stateDict: Map<string, RawTensor>;
  meta: CheckpointMeta;
  /** The whole top-level object (for safetensors: a PyDict of the tensors). */
  raw: PyValue;
}

function iterationOf(v: PyValue): number | null {
  if (!(v instanceof PyDict)) return null;
  const it = v.get('iteration') ?? v.get('epoch');
  return typeof it === 'number' ? it : null;
}

/**
 * Load a checkpoint, choosing the reader from the file content (not the extension).
 * Throws CheckpointError naming the file for anything unreadable, foreign or legacy.
 * (Async so callers need not change if reading becomes streaming; today it is synchronous random access.)
 */
export async function loadCheckpointFile(file: string): Promise<LoadedCheckpoint> {
  const format = detectCheckpointFormat(file);
  if (format === 'safetensors') {
    const { tensors, metadata } = readSafetensors(file);
    const raw = new PyDict(tensors, true);
    const { stateDict, strippedPrefix } = extractStateDict(raw, file);
    return {
      stateDict, raw,
      meta: { format, stateDictKey: null, strippedPrefix, archiveStem: null, archiveVersion: null, metadata, iteration: null },
    };
  }
  const { value, stem, version } = readTorchArchive(file);
  const { stateDict, source, strippedPrefix } = extractStateDict(value, file);
  return {
    stateDict, raw: value,
    meta: {
      format, stateDictKey: source, strippedPrefix, archiveStem: stem, archiveVersion: version, metadata: null,
      iteration: iterationOf(value),
    },
  };
}

/**
 * Save an object with torch.save's format (e.g. `{model_state_dict, optimizer_state_dict, iteration}`),
 * atomically. Pass a PyDict with `ordered = true` to get an OrderedDict in Python.
 */
export function saveTorchCheckpoint(file: string, obj: PyInput, options?: WriteTorchOptions): void {
  writeTorchFile(file, obj, options);
}

export { detectCheckpointFormat, type CheckpointFormat } from './detect.js';
export { PyDict, PyFloat, PyTuple, dictGet, isPyDict, isRawTensor, pyTypeName } from './pyvalue.js';
export type { PyInput, PyKey, PyValue } from './pyvalue.js';
export { readSafetensors, writeSafetensors } from './safetensors.js';
export type { SafetensorsContent, WriteSafetensorsOptions } from './safetensors.js';
export { STATE_DICT_KEYS, extractStateDict, readTorchArchive, readTorchFile, writeTorchFile } from './torch-pt.js';
export type { ExtractedStateDict, ReadTorchOptions, TorchArchive, WriteTorchOptions } from './torch-pt.js';
export { unpickle } from './pickle-read.js';
export { ZipReader, ZipWriter } from './zip.js';
export type { ZipEntry, ZipWriterOptions } from './zip.js';
