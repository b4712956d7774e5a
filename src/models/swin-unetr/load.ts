/**
 * Loading released VoCo / SwinUNETR weights for fine-tuning, the way VoCo's own loader does it
 * (Large-Scale-Medical Downstream/monai/BTCV/models/models.py:load, spec 5) but with a report:
 *
 *  1. the state dict is `state_dict`, else `network_weights`, `net`, `student`, else the file's
 *     top-level dict (misfm's `model_state_dict` is accepted too);
 *  2. `module.` is removed from every key when the first key contains it;
 *  3. `backbone.` is removed from every key (unconditional in VoCo, too);
 *  4. `swin_vit` becomes `swinViT` when the first key contains it;
 *  5. tensors are copied where the name exists in the model and the shape is equal.
 *
 * VoCo's loader says nothing about what step 5 dropped. Here every skipped key is listed:
 * mismatched shapes (e.g. another in_channels drops patch_embed / encoder1 conv1/conv3), checkpoint
 * keys the model lacks (student/teacher projectors), and model keys left at their initial values
 * (the decoder and output head: VoCo releases only the encoder).
 */
import { isPyDict, isRawTensor, loadCheckpointFile, readTorchArchive, type PyValue } from '../../io/checkpoint/index.js';
import { detectCheckpointFormat } from '../../io/checkpoint/detect.js';
import type { RawTensor } from '../../engine/dtype.js';
import type { Tensor } from '../../engine/tensor.js';
import { CheckpointError } from '../../util/errors.js';
import { loadPretrained, type PretrainedReport } from '../pretrained.js';
import type { SegmentationNetwork } from '../types.js';

/** Keys VoCo's loader looks under, in its order; misfm's own training checkpoints last. */
const VOCO_DICT_KEYS = ['state_dict', 'network_weights', 'net', 'student', 'model_state_dict'] as const;

export interface VoCoLoadReport extends PretrainedReport {
  /** The dict the tensors came from ('' = the top level). */
  source: string;
  /** Key rewrites applied (steps 2-4). */
  renamed: string[];
}

/** VoCo's key rewrites (steps 2-4) on a name -> tensor map. */
export function normaliseVoCoStateDict<T>(sd: ReadonlyMap<string, T>): { stateDict: Map<string, T>; renamed: string[] } {
  const keys = [...sd.keys()];
  const first = keys[0] ?? '';
  const renamed: string[] = [];
  const stripModule = first.includes('module.');
  const swinVit = first.replace('module.', '').replace('backbone.', '').includes('swin_vit');
  if (stripModule) renamed.push("removed 'module.'");
  if (keys.some((k) => k.includes('backbone.'))) renamed.push("removed 'backbone.'");
  if (swinVit) renamed.push("renamed 'swin_vit' to 'swinViT'");
  const out = new Map<string, T>();
  for (const [k0, v] of sd) {
    let k = stripModule ? k0.replaceAll('module.', '') : k0;
    k = k.replaceAll('backbone.', '');
    if (swinVit) k = k.replaceAll('swin_vit', 'swinViT');
    out.set(k, v);
  }
  return { stateDict: out, renamed };
}

function tensorsOf(v: PyValue): Map<string, RawTensor> | null {
  if (!isPyDict(v) || v.size === 0) return null;
  const out = new Map<string, RawTensor>();
  for (const [k, t] of v) { if (typeof k !== 'string' || !isRawTensor(t)) return null; out.set(k, t); }
  return out;
}

/** The state dict VoCo's loader would pick from a checkpoint file. */
export async function readVoCoStateDict(file: string): Promise<{ stateDict: Map<string, RawTensor>; source: string }> {
  if (detectCheckpointFormat(file) === 'safetensors') {
    const ck = await loadCheckpointFile(file);
    return { stateDict: new Map(ck.stateDict), source: '' };
  }
  const { value } = readTorchArchive(file);
  if (isPyDict(value)) {
    for (const key of VOCO_DICT_KEYS) {
      const sd = tensorsOf(value.get(key) as PyValue);
      if (sd !== null) return { stateDict: sd, source: key };
    }
  }
  const top = tensorsOf(value);
  if (top !== null) return { stateDict: top, source: '' };
  throw new CheckpointError(file, `no state dict found: expected a dict of tensors at the top level or under ${VOCO_DICT_KEYS.map((k) => `'${k}'`).join('/')}`);
}

/** Apply VoCo's loading rule to a SwinUNETR (or any network with MONAI names) and report everything. */
export function loadVoCoStateDict(model: SegmentationNetwork, sd: ReadonlyMap<string, RawTensor | Tensor>, source = ''): VoCoLoadReport {
  const { stateDict, renamed } = normaliseVoCoStateDict(sd);
  const r = loadPretrained(model, stateDict, { reinitHeads: false });
  return { ...r, source, renamed };
}

/** Read a checkpoint file and load it into `model` with VoCo's rule. */
export async function loadSwinUNETRPretrained(model: SegmentationNetwork, file: string): Promise<VoCoLoadReport> {
  const { stateDict, source } = await readVoCoStateDict(file);
  return loadVoCoStateDict(model, stateDict, source);
}
