/** Shared helpers for the data tests: temp folders, synthetic caches, reference crops. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Vec3, Volume, VoxelArray } from '../../src/io/volume.js';
import { IDENTITY3 } from '../../src/io/volume.js';
import { writeCacheFile, dtypeOf } from '../../src/data/format.js';
import { sampleForeground, writeForeground } from '../../src/data/foreground.js';
import { emptyManifest, saveManifest, type CaseRecord } from '../../src/data/manifest.js';
import { intensityStats, labelCounts, labelStats } from '../../src/data/stats.js';
import { dataDir } from '../helpers.js';

export const dataPath = (...p: string[]): string => path.join(dataDir, ...p);

export function tempDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `misfm-data-${tag}-`));
}

/** A volume from (D,H,W)-ordered data with unit geometry. */
export function vol(data: VoxelArray, dhw: [number, number, number], spacing: Vec3 = [1, 1, 1]): Volume {
  return { data, size: [dhw[2], dhw[1], dhw[0]], spacing, origin: [0, 0, 0], direction: [...IDENTITY3] };
}

/**
 * Reference crop straight from a (D,H,W) array: voxel by voxel, out-of-range positions padded
 * with `pad` (a number) or mirrored ('reflect', numpy style). Independent of src/data/crop.ts.
 */
export function referenceCrop(data: ArrayLike<number>, shape: readonly number[], start: readonly number[], size: readonly number[], pad: number | 'reflect'): Float64Array {
  const out = new Float64Array(size[0]! * size[1]! * size[2]!);
  let o = 0;
  const refl = (i: number, n: number): number => {
    if (n === 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
    return i;
  };
  for (let z = 0; z < size[0]!; z++) {
    for (let y = 0; y < size[1]!; y++) {
      for (let x = 0; x < size[2]!; x++) {
        let p = [start[0]! + z, start[1]! + y, start[2]! + x];
        const inside = p.every((v, a) => v >= 0 && v < shape[a]!);
        if (!inside && pad !== 'reflect') { out[o++] = pad; continue; }
        if (!inside) p = p.map((v, a) => refl(v, shape[a]!));
        out[o++] = data[(p[0]! * shape[1]! + p[1]!) * shape[2]! + p[2]!]!;
      }
    }
  }
  return out;
}

/** Assert two numeric arrays are equal element by element; reports the first difference (fast on large arrays). */
export function assertSameValues(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  if (a.length !== b.length) throw new Error(`${what}: length ${a.length} vs ${b.length}`);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) throw new Error(`${what}: element ${i} differs: ${a[i]} vs ${b[i]}`);
  }
}

export interface SynthCase {
  id: string;
  image: Volume;
  label?: Volume;
  modality?: 'ct' | 'other';
}

/** Write cases straight into a cache folder (no image files, no itk): fast loader fixtures. */
export function buildCache(dir: string, cases: SynthCase[]): void {
  fs.mkdirSync(dir, { recursive: true });
  const m = emptyManifest({});
  for (const c of cases) {
    const shape: [number, number, number] = [c.image.size[2], c.image.size[1], c.image.size[0]];
    const imgFile = `${c.id}.img.mvol`;
    const bytes = writeCacheFile(path.join(dir, imgFile), c.image, 'image');
    const rec: CaseRecord = {
      id: c.id, status: 'ok', source: { image: `/synthetic/${c.id}` }, fingerprint: 'synthetic', modality: c.modality ?? 'ct',
      image: { file: imgFile, dtype: dtypeOf(c.image.data), shape, bytes }, stats: intensityStats(c.image.data),
    };
    if (c.label !== undefined) {
      const counts = labelCounts(c.label.data);
      const labFile = `${c.id}.lab.mvol`, fgFile = `${c.id}.fg`;
      const lb = writeCacheFile(path.join(dir, labFile), c.label, 'label');
      writeForeground(path.join(dir, fgFile), sampleForeground(c.label.data, shape, counts));
      rec.label = { file: labFile, dtype: dtypeOf(c.label.data), shape, bytes: lb, stats: labelStats(counts, c.label.data.length), foregroundFile: fgFile };
    }
    m.cases.push(rec);
  }
  saveManifest(dir, m);
}

/** A CT-like int16 volume (D,H,W) with a deterministic pattern: value = f(z,y,x) in [-1200, 1500]. */
export function patternCT(dhw: [number, number, number]): Int16Array {
  const [d, h, w] = dhw;
  const a = new Int16Array(d * h * w);
  for (let z = 0; z < d; z++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    a[(z * h + y) * w + x] = ((z * 7919 + y * 104729 + x * 1299709) % 2701) - 1200;
  }
  return a;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
