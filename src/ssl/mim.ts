/**
 * Masked image modelling for 3D CT (Chen et al., "Masked Image Modeling Advances 3D Medical Image
 * Analysis", WACV 2023), the MIM baseline of the MIS-FM paper, on a segmentation backbone.
 *
 * The crop is divided into a grid of `blockSize` blocks (edge blocks may be partial, as PyMIC's
 * MaskedImageModeling transform does); a share `ratio` of them is set to 0 and the network
 * restores the crop. Chen et al. follow SimMIM: exactly ceil(ratio · blocks) blocks are masked
 * (a random permutation), the head's output is used as it is (no activation), and the loss is L1
 * over the masked voxels only, Σ mask·|pred − x| / (Σ mask + 1e-5). PyMIC's transform instead masks
 * each block with probability `ratio` and its agent takes the L1 over the whole crop; both are
 * options (ssl.mim.count = 'bernoulli', ssl.mim.loss = 'all'). A conv backbone has no token
 * embedding, so the mask is applied to the input voxels (PyMIC's choice) rather than as a
 * learned mask token.
 */
import type { MimConfig } from '../config/types.js';
import type { Rng } from '../util/rng.js';
import type { Triple3 } from './blocks.js';
import { reconstructionMethod, type Corrupted } from './reconstruction.js';

/** Blocks per axis of the grid (partial edge blocks included). */
export function mimGrid(shape: Triple3, blockSize: Triple3): [number, number, number] {
  return [0, 1, 2].map((a) => Math.ceil(shape[a]! / blockSize[a]!)) as [number, number, number];
}

/** Which grid blocks are masked, in (d, h, w) block order: 1 = masked. */
export function mimBlockMask(nBlocks: number, rng: Rng, o: Pick<MimConfig, 'ratio' | 'count'>): Uint8Array {
  const m = new Uint8Array(nBlocks);
  if (o.count === 'bernoulli') {
    for (let i = 0; i < nBlocks; i++) m[i] = rng.uniform() < o.ratio ? 1 : 0;
    return m;
  }
  m.fill(1, 0, Math.min(nBlocks, Math.ceil(nBlocks * o.ratio)));
  return rng.shuffle(m);
}

/** The voxel mask (1 = masked) of a crop of `shape`. */
export function mimMask(shape: Triple3, rng: Rng, o: Pick<MimConfig, 'ratio' | 'count' | 'blockSize'>): Uint8Array {
  const [gd, gh, gw] = mimGrid(shape, o.blockSize);
  const blocks = mimBlockMask(gd * gh * gw, rng, o);
  const [D, H, W] = shape, [bd, bh, bw] = o.blockSize;
  const out = new Uint8Array(D * H * W);
  for (let d = 0; d < D; d++) {
    for (let h = 0; h < H; h++) {
      const rowBlocks = (Math.floor(d / bd) * gh + Math.floor(h / bh)) * gw;
      const row = (d * H + h) * W;
      for (let w = 0; w < W; w++) out[row + w] = blocks[rowBlocks + Math.floor(w / bw)]!;
    }
  }
  return out;
}

/** The masked crop and, for the masked loss, the mask as voxel weights. */
export function mimCorrupt(crop: Float32Array, shape: Triple3, rng: Rng, o: MimConfig): Corrupted {
  const mask = mimMask(shape, rng, o);
  const image = Float32Array.from(crop);
  for (let i = 0; i < mask.length; i++) if (mask[i] === 1) image[i] = 0;
  return o.loss === 'masked' ? { image, weight: Float32Array.from(mask) } : { image };
}

export const mimMethod = reconstructionMethod('mim',
  'Masked image modelling: restore the masked blocks of a crop',
  'Chen et al., WACV 2023 (SimMIM-style: exact ratio, L1 on masked voxels); PyMIC MaskedImageModeling',
  (cfg) => ({ activation: 'none', corrupt: (crop, shape, rng): Corrupted => mimCorrupt(crop, shape, rng, cfg.ssl.mim) }));
