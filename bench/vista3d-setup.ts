/**
 * What the VISTA3D benches share: their command-line options and a random-weight checkpoint of the
 * chosen preset written to a temporary folder, with the CT and the session options; or, with
 * `--model CKPT`, a trained checkpoint (its network, not `--preset`). The network's time does not
 * depend on the weights, but Algorithm 1's does: random weights give noise-like point predictions
 * whose clicked components can fill half a window, a trained model organ-sized ones. The caller
 * opens sessions and removes `dir` when done.
 */
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { manualSeed } from '../src/engine/creation.js';
import { readImage } from '../src/io/image/index.js';
import type { Volume } from '../src/io/volume.js';
import { createVista3d } from '../src/models/registry.js';
import { saveVista3dCheckpoint } from '../src/models/vista3d/checkpoint.js';

export interface Vista3dBenchArgs { preset: string; roi: string; spacing: string; classes: string; threads: string; input: string; json?: string; model?: string; click: string; 'reuse-windows'?: string }

/** Parse the benches' options (`threads` defaults differ: the profile wants a clean 1-thread split). */
export function parseVista3dBenchArgs(defaultThreads: string): Vista3dBenchArgs {
  const { values } = parseArgs({ options: {
    preset: { type: 'string', default: 'vista3d-cpu' }, roi: { type: 'string', default: '64' }, spacing: { type: 'string', default: '3' },
    classes: { type: 'string', default: 'liver,spleen' }, threads: { type: 'string', default: defaultThreads }, json: { type: 'string' }, model: { type: 'string' }, click: { type: 'string', default: '10,10,10' }, 'reuse-windows': { type: 'string' },
    input: { type: 'string', default: path.resolve('../shared/data/01_totalseg_abdomen_ct/ct.nii.gz') },
  } });
  return values as Vista3dBenchArgs;
}

export async function prepareVista3dBench(v: Vista3dBenchArgs, tag: string): Promise<{
  dir: string; ckpt: string; image: Volume;
  opts: { threads: number; roi: readonly [number, number, number]; spacing: [number, number, number]; reuseWindows?: number };
}> {
  const roi = Number(v.roi), sp = Number(v.spacing);
  const dir = mkdtempSync(path.join(os.tmpdir(), `misfm-${tag}-`));
  try {
    let ckpt: string;
    if (v.model !== undefined) {
      ckpt = path.resolve(v.model);
    } else {
      manualSeed(0);
      const net = createVista3d(v.preset);
      ckpt = path.join(dir, 'model.pt');
      saveVista3dCheckpoint(net, ckpt);
      net.dispose();
    }
    const image = await readImage(v.input);
    const reuse = v['reuse-windows'] === undefined ? {} : { reuseWindows: Number(v['reuse-windows']) };
    return { dir, ckpt, image, opts: { threads: Number(v.threads), roi: [roi, roi, roi] as const, spacing: [sp, sp, sp], ...reuse } };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * The benches' two clicks from `--click X,Y,Z` (image voxel): a positive click there, and a second
 * click that adds a negative one two voxels away. Near a corner both centred windows clamp to the same
 * window; inside the image MONAI centres a new one (what `--reuse-windows` avoids).
 */
export function benchClicks(v: Vista3dBenchArgs, size: readonly number[]): { c1: [number, number, number]; c2: [number, number, number] } {
  const c = v.click.split(',').map(Number);
  if (c.length !== 3 || c.some((x, a) => !Number.isInteger(x) || x < 0 || x + 2 >= size[a]!)) {
    throw new Error(`--click ${v.click}: three voxel indices inside the image (size ${size.join('x')}), two voxels from its far faces`);
  }
  return { c1: [c[0]!, c[1]!, c[2]!], c2: [c[0]! + 2, c[1]! + 1, c[2]!] };
}
