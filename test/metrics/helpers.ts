/** Shared helpers of the metrics tests: repo root, shared fixtures, brute-force references. */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Shape3, Spacing3 } from '../../src/metrics/types.js';

/** Repository root: the nearest ancestor of this file holding package.json (works from dist/ too). */
export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'src'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error('repository root not found');
    dir = up;
  }
}

export function sharedPath(...parts: string[]): string {
  return path.resolve(repoRoot(), '../shared', ...parts);
}

/** A float32 0/1 fixture volume as a Uint8Array mask. */
export function readMaskFixture(file: string): Uint8Array {
  const buf = readFileSync(file);
  const f = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  const m = new Uint8Array(f.length);
  for (let i = 0; i < f.length; i++) m[i] = f[i] !== 0 ? 1 : 0;
  return m;
}

/** Deterministic PRNG (mulberry32) so random tests are reproducible. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** O(N * F) reference: Euclidean distance from each voxel to the nearest feature voxel. */
export function bruteForceEdt(feature: Uint8Array, shape: Shape3, spacing: Spacing3): Float64Array {
  const [D, H, W] = shape;
  const pts: [number, number, number][] = [];
  for (let z = 0, i = 0; z < D; z++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++, i++) if (feature[i] !== 0) pts.push([z, y, x]);
  const out = new Float64Array(D * H * W).fill(Infinity);
  for (let z = 0, i = 0; z < D; z++) {
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++, i++) {
        let best = Infinity;
        for (const [pz, py, px] of pts) {
          const dz = (z - pz) * spacing[0], dy = (y - py) * spacing[1], dx = (x - px) * spacing[2];
          const d = dz * dz + dy * dy + dx * dx;
          if (d < best) best = d;
        }
        out[i] = Math.sqrt(best);
      }
    }
  }
  return out;
}

/** Relative difference |a-b| / max(|b|, tiny). */
export function relDiff(a: number, b: number): number {
  return Math.abs(a - b) / Math.max(Math.abs(b), 1e-300);
}
