/**
 * What the VISTA3D benches share: their command-line options and a random-weight checkpoint of the
 * chosen preset written to a temporary folder (timing does not depend on the weights), with the CT
 * and the session options. The caller opens sessions and removes `dir` when done.
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

export interface Vista3dBenchArgs { preset: string; roi: string; spacing: string; classes: string; threads: string; input: string; json?: string }

/** Parse the benches' options (`threads` defaults differ: the profile wants a clean 1-thread split). */
export function parseVista3dBenchArgs(defaultThreads: string): Vista3dBenchArgs {
  const { values } = parseArgs({ options: {
    preset: { type: 'string', default: 'vista3d-cpu' }, roi: { type: 'string', default: '64' }, spacing: { type: 'string', default: '3' },
    classes: { type: 'string', default: 'liver,spleen' }, threads: { type: 'string', default: defaultThreads }, json: { type: 'string' },
    input: { type: 'string', default: path.resolve('../shared/data/01_totalseg_abdomen_ct/ct.nii.gz') },
  } });
  return values as Vista3dBenchArgs;
}

export async function prepareVista3dBench(v: Vista3dBenchArgs, tag: string): Promise<{
  dir: string; ckpt: string; image: Volume;
  opts: { threads: number; roi: readonly [number, number, number]; spacing: [number, number, number] };
}> {
  const roi = Number(v.roi), sp = Number(v.spacing);
  const dir = mkdtempSync(path.join(os.tmpdir(), `misfm-${tag}-`));
  try {
    manualSeed(0);
    const net = createVista3d(v.preset);
    const ckpt = path.join(dir, 'model.pt');
    saveVista3dCheckpoint(net, ckpt);
    net.dispose();
    const image = await readImage(v.input);
    return { dir, ckpt, image, opts: { threads: Number(v.threads), roi: [roi, roi, roi] as const, spacing: [sp, sp, sp] } };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
