/**
 * Reading and writing VISTA3D checkpoints. misfm writes a plain ordered state dict with MONAI's
 * names (what the bundle's `model.pt` holds and `VISTA3D.load_state_dict(torch.load(f))` expects);
 * it reads that, safetensors, `{state_dict|model|model_state_dict: ...}` wrappers, `module.`-prefixed
 * multi-GPU saves and the research checkpoint's names (§9). The configuration is read from the
 * weights' shapes; what the weights cannot tell (heads, lastSupported, maxPrompt) takes MONAI's values
 * unless given.
 */
import { existsSync } from 'node:fs';
import type { RawTensor } from '../../engine/dtype.js';
import { loadCheckpointFile, saveTorchCheckpoint, PyDict } from '../../io/checkpoint/index.js';
import { tensorToRaw } from '../../nn/module.js';
import { CheckpointError } from '../../util/errors.js';
import { inferArchitecture } from '../infer-arch.js';
import { VISTA3D } from './model.js';
import { convertVista3dResearchStateDict, inferVista3dConfig, isVista3dStateDict, type ResearchConversion } from './keys.js';
import type { Vista3dOptions } from './options.js';

export interface LoadedVista3d { model: VISTA3D; options: Vista3dOptions; conversion: ResearchConversion; }

/** Load a VISTA3D checkpoint strictly (nothing missing, unexpected or of another shape), in eval mode. */
export async function loadVista3dCheckpoint(file: string, overrides: Partial<Vista3dOptions> = {}): Promise<LoadedVista3d> {
  if (!existsSync(file)) throw new CheckpointError(file, 'no such checkpoint file');
  const ck = await loadCheckpointFile(file);
  if (!isVista3dStateDict(ck.stateDict.keys())) {
    const arch = inferArchitecture(ck.stateDict);
    throw new CheckpointError(file, `is not a VISTA3D checkpoint (${arch.name !== null ? `the weights are a ${arch.name} network` : `unknown keys, e.g. ${[...ck.stateDict.keys()].slice(0, 3).join(', ')}`})`);
  }
  const { stateDict, report } = convertVista3dResearchStateDict<RawTensor>(ck.stateDict);
  const inferred = inferVista3dConfig(new Map([...stateDict].map(([k, t]) => [k, t.shape])));
  const options = { ...inferred.config, ...overrides } as Vista3dOptions;
  let model: VISTA3D;
  try {
    model = new VISTA3D(options);
  } catch (err) {
    throw new CheckpointError(file, `its VISTA3D configuration is invalid: ${(err as Error).message}`);
  }
  try {
    model.loadStateDict(stateDict);
  } catch (err) {
    model.dispose();
    throw new CheckpointError(file, (err as Error).message);
  }
  model.eval();
  return { model, options, conversion: report };
}

/** Write the model's state dict as torch.save would (an OrderedDict of tensors), atomically. */
export function saveVista3dCheckpoint(model: VISTA3D, file: string): void {
  const sd = new PyDict([...model.stateDict()].map(([k, t]) => [k, tensorToRaw(t)]), true);
  saveTorchCheckpoint(file, sd);
}
