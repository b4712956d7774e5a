/**
 * torch.save / torch.load compatible files (the zip format PyTorch writes since 1.6):
 * `<stem>/data.pkl` (pickle), `<stem>/data/<key>` (raw little-endian storages), `<stem>/version`.
 */
import * as path from 'node:path';
import type { RawTensor } from '../../engine/dtype.js';
import { ITEMSIZE } from '../../engine/dtype.js';
import { CheckpointError } from '../../util/errors.js';
import { writeFileAtomic } from './atomic.js';
import { detectCheckpointFormat } from './detect.js';
import { PyGlobal, StorageRef, tupleItems, type VmValue } from './pickle-objects.js';
import { STORAGE_DTYPES } from './pickle-globals.js';
import { unpickle } from './pickle-read.js';
import { pickleForTorch } from './pickle-write.js';
import { PyDict, isRawTensor, pyTypeName, type PyInput, type PyValue } from './pyvalue.js';
import { ZipReader, ZipWriter, type ZipWriterOptions } from './zip.js';

/** A torch archive's top-level object plus facts about the archive. */
export interface TorchArchive {
  value: PyValue;
  /** Archive folder name (the file stem when it was saved). */
  stem: string;
  /** Content of `<stem>/version`, trimmed, or null when absent. */
  version: string | null;
}

/** Options of readTorchFile(). */
export interface ReadTorchOptions {
  /** Check each entry's CRC-32 (default true). */
  verifyCrc?: boolean;
}

/** Read a torch.save file and return its top-level object (see pyvalue.ts for the mapping). */
export function readTorchFile(file: string, options: ReadTorchOptions = {}): PyValue {
  return readTorchArchive(file, options).value;
}

/** Like readTorchFile, with the archive stem and version. */
export function readTorchArchive(file: string, options: ReadTorchOptions = {}): TorchArchive {
  if (detectCheckpointFormat(file) !== 'torch-zip') {
    throw new CheckpointError(file, 'this is a safetensors file, not a torch.save archive (use loadCheckpointFile or readSafetensors)');
  }
  const verify = options.verifyCrc ?? true;
  const zip = ZipReader.open(file);
  try {
    const pkl = zip.entries.find((e) => /^[^/]+\/data\.pkl$/.test(e.name));
    if (pkl === undefined) {
      const names = zip.entries.slice(0, 5).map((e) => e.name).join(', ');
      throw new CheckpointError(file, `a zip archive but not a torch.save file: no <name>/data.pkl entry (entries: ${names || 'none'})`);
    }
    const stem = pkl.name.slice(0, -'/data.pkl'.length);
    if (zip.entry(`${stem}/constants.pkl`) !== undefined || zip.entries.some((e) => e.name.startsWith(`${stem}/code/`))) {
      throw new CheckpointError(file, 'this is a TorchScript archive (torch.jit.save), not a torch.save checkpoint; in Python run '
        + "torch.save(torch.jit.load(path).state_dict(), 'weights.pt') and load that");
    }
    const byteorder = zip.entry(`${stem}/byteorder`);
    if (byteorder !== undefined && new TextDecoder().decode(zip.read(byteorder)).trim() !== 'little') {
      throw new CheckpointError(file, 'big-endian torch archives are not supported');
    }
    const ver = zip.entry(`${stem}/version`);
    const version = ver === undefined ? null : new TextDecoder().decode(zip.read(ver)).trim();
    const storages = new Map<string, StorageRef>();
    const persistentLoad = (pid: VmValue): VmValue => {
      const t = tupleItems(pid);
      const [kind, type, key, , numel] = t ?? [];
      if (kind !== 'storage' || !(type instanceof PyGlobal) || typeof key !== 'string' || typeof numel !== 'number') {
        throw new CheckpointError(file, `unsupported persistent id in ${pkl.name} (expected ('storage', type, key, location, numel))`);
      }
      const dtype = type.module === 'torch' ? STORAGE_DTYPES.get(type.name) : undefined;
      if (dtype === undefined) throw new CheckpointError(file, `unsupported storage type ${type.qualname}`);
      const cached = storages.get(key);
      if (cached !== undefined) return cached.dtype === dtype ? cached : new StorageRef(key, dtype, cached.bytes);
      const name = `${stem}/data/${key}`;
      const entry = zip.entry(name);
      if (entry === undefined) throw new CheckpointError(file, `storage '${name}' referenced by ${pkl.name} is missing from the archive`);
      const nbytes = type.name === 'UntypedStorage' ? numel : numel * ITEMSIZE[dtype];
      if (entry.size !== nbytes) {
        throw new CheckpointError(file, `storage '${name}' has ${entry.size} bytes, expected ${nbytes} (${numel} x ${dtype})`);
      }
      const ref = new StorageRef(key, dtype, zip.read(entry, verify));
      storages.set(key, ref);
      return ref;
    };
    const value = unpickle(zip.read(pkl, verify), { file, entry: pkl.name, persistentLoad });
    return { value, stem, version };
  } finally {
    zip.close();
  }
}

/** Options of writeTorchFile(). */
export interface WriteTorchOptions {
  /** Archive folder name; defaults to the file stem, as torch.save does. */
  stem?: string;
  /** Passed to the zip writer (forceZip64 exists for tests). */
  zip?: ZipWriterOptions;
}

/**
 * Write `value` in torch.save's zip format (loadable with torch.load, including
 * `weights_only=True` when it holds only tensors and plain data). Atomic: temp file + rename.
 */
export function writeTorchFile(file: string, value: PyInput, options: WriteTorchOptions = {}): void {
  const stem = options.stem ?? path.basename(file, path.extname(file));
  const { pickle, storages } = pickleForTorch(value, file);
  writeFileAtomic(file, (fd) => {
    const zip = new ZipWriter(fd, options.zip);
    zip.add(`${stem}/data.pkl`, [pickle]);
    zip.add(`${stem}/byteorder`, [new TextEncoder().encode('little')]);
    for (const s of storages) zip.add(`${stem}/data/${s.key}`, [s.data]);
    zip.add(`${stem}/version`, [new TextEncoder().encode('3\n')]);
    zip.finish();
  });
}

/** A state_dict pulled out of a checkpoint. */
export interface ExtractedStateDict {
  stateDict: Map<string, RawTensor>;
  /** Top-level key it was found under ('model_state_dict', ...), or null for a bare state_dict. */
  source: string | null;
  /** 'module.' when a DataParallel prefix was removed from every key, else null. */
  strippedPrefix: string | null;
}

/** Keys under which training scripts (PyMIC, Lightning-style, timm) store the model weights. */
export const STATE_DICT_KEYS = ['model_state_dict', 'state_dict', 'model'] as const;

function tensorDict(d: PyDict, file: string, where: string): Map<string, RawTensor> {
  const out = new Map<string, RawTensor>();
  for (const [k, v] of d) {
    if (typeof k !== 'string') throw new CheckpointError(file, `${where} has a non-string key ${String(k)}`);
    if (!isRawTensor(v)) throw new CheckpointError(file, `${where} entry '${k}' is a ${pyTypeName(v)}, not a tensor`);
    out.set(k, v);
  }
  return out;
}

function looksLikeStateDict(v: PyValue | undefined): v is PyDict {
  if (!(v instanceof PyDict) || v.size === 0) return false;
  for (const [k, t] of v) if (typeof k !== 'string' || !isRawTensor(t)) return false;
  return true;
}

/**
 * Find the model state_dict in a checkpoint object: the object itself when it maps names to
 * tensors, else the dict under 'model_state_dict', 'state_dict' or 'model'. A 'module.' prefix
 * on every key (nn.DataParallel) is removed and reported. Key order is the file's order.
 */
export function extractStateDict(value: PyValue, file: string): ExtractedStateDict {
  let source: string | null = null;
  let dict: PyDict;
  if (looksLikeStateDict(value)) {
    dict = value;
  } else if (value instanceof PyDict) {
    const key = STATE_DICT_KEYS.find((k) => value.get(k) instanceof PyDict);
    if (key === undefined) {
      const keys = [...value.keys()].slice(0, 12).map((k) => JSON.stringify(typeof k === 'bigint' ? String(k) : k)).join(', ');
      throw new CheckpointError(file, `no state_dict found: the top-level dict has keys [${keys}], `
        + `none of them tensors or ${STATE_DICT_KEYS.map((k) => `'${k}'`).join('/')}`);
    }
    source = key;
    dict = value.get(key) as PyDict;
  } else {
    throw new CheckpointError(file, `no state_dict found: the top-level object is a ${pyTypeName(value)}, not a dict`);
  }
  const sd = tensorDict(dict, file, source === null ? 'state_dict' : `'${source}'`);
  if (sd.size === 0) throw new CheckpointError(file, `the state_dict${source === null ? '' : ` under '${source}'`} is empty`);
  const prefix = 'module.';
  if ([...sd.keys()].every((k) => k.startsWith(prefix))) {
    const stripped = new Map<string, RawTensor>();
    for (const [k, t] of sd) stripped.set(k.slice(prefix.length), t);
    return { stateDict: stripped, source, strippedPrefix: prefix };
  }
  return { stateDict: sd, source, strippedPrefix: null };
}
