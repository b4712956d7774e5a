/**
 * Patch Swapping (context restoration; Chen et al., Medical Image Analysis 2019), as PyMIC's
 * `PatchSwaping` transform and `SelfSupPatchSwapping` agent run it: randint(blockCount) times,
 * two blocks of `blockSize` at random corners exchange their contents; the network restores the
 * original crop through tanh with an L1 loss (PyMIC MAELoss, loss_acti_func = tanh).
 *
 * Two modes (config ssl.patchSwap.mode):
 * - 'disjoint' (default): the paper's procedure. The second block of a pair is redrawn until it
 *   does not overlap the first, and each swap acts on the current image, so every swap is a
 *   permutation of voxels and the crop keeps its intensity histogram exactly.
 * - 'pymic': PyMIC's transform as written: both blocks are copied from the *uncorrupted* crop and
 *   may overlap each other or earlier pairs, so a voxel can end up duplicated or lost. No weights
 *   depend on this, hence not the default.
 */
import type { PatchSwapConfig } from '../config/types.js';
import { MisfmError } from '../util/errors.js';
import type { Rng } from '../util/rng.js';
import { checkFits, overlaps, randomCorner, readBlock, writeBlock, type Triple3 } from './blocks.js';
import { reconstructionMethod, type Corrupted } from './reconstruction.js';

/** Tries to place a disjoint partner block before giving up (the crop has room, so this is astronomically rare). */
const MAX_TRIES = 10_000;

/** Swap blocks of `crop` (not modified); returns the corrupted copy. */
export function patchSwap(crop: Float32Array, shape: Triple3, rng: Rng, o: PatchSwapConfig): Float32Array {
  checkFits('ssl.patchSwap.blockSize', shape, o.blockSize);
  const size = o.blockSize;
  if (o.mode === 'disjoint' && ![0, 1, 2].some((a) => shape[a]! >= 2 * size[a]!)) {
    throw new MisfmError('CONFIG', `ssl.patchSwap: two disjoint blocks of [${size.join(',')}] need twice the block size on some axis of the crop [${shape.join(',')}]`);
  }
  const out = Float32Array.from(crop);
  const n = rng.randint(o.blockCount[0], o.blockCount[1]);
  for (let t = 0; t < n; t++) {
    const a = randomCorner(rng, shape, size);
    let b = randomCorner(rng, shape, size);
    if (o.mode === 'pymic') {
      const ba = readBlock(crop, shape, b, size), aa = readBlock(crop, shape, a, size);
      writeBlock(out, shape, a, size, ba);
      writeBlock(out, shape, b, size, aa);
      continue;
    }
    let tries = 0;
    while (overlaps(a, b, size)) {
      if (++tries > MAX_TRIES) throw new MisfmError('DATA', `ssl.patchSwap: no disjoint block pair found in ${MAX_TRIES} draws`);
      b = randomCorner(rng, shape, size);
    }
    const ba = readBlock(out, shape, b, size), aa = readBlock(out, shape, a, size);
    writeBlock(out, shape, a, size, ba);
    writeBlock(out, shape, b, size, aa);
  }
  return out;
}

export const patchSwapMethod = reconstructionMethod('patch-swap',
  'Patch Swapping: restore a crop whose block pairs were swapped (context restoration)',
  'Chen et al., MedIA 2019; PyMIC PatchSwaping + SelfSupPatchSwapping (MAE, tanh)',
  (cfg) => ({
    activation: 'tanh',
    corrupt: (crop, shape, rng): Corrupted => ({ image: patchSwap(crop, shape, rng, cfg.ssl.patchSwap) }),
  }));
