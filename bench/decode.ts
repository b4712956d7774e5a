/**
 * Decoding a 512x512x200-class CT .nii.gz: misfm (itk-wasm) against nibabel in the same run when
 * `/usr/bin/python3 -c "import nibabel"` works (Debian: python3-nibabel). The test volume is built
 * from real CT data (the bundled abdomen CT, resampled in-plane to 512x512 and tiled to 200 slices)
 * in a temporary folder, never committed.
 *
 *   node dist/bench/decode.js [--reps 3]
 */
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { readImage, writeImage } from '../src/io/image/index.js';
import { packageRoot } from '../src/engine/native.js';
import type { Volume } from '../src/io/volume.js';

const i = process.argv.indexOf('--reps');
const reps = i >= 0 ? Number(process.argv[i + 1]) : 3;

async function buildVolume(): Promise<Volume> {
  const src = await readImage(path.join(packageRoot(), 'data/sample/images/abdomen_ct.nii.gz'));
  const [sx, sy, sz] = src.size;
  const nx = 512, ny = 512, nz = 200;
  const out = new Int16Array(nx * ny * nz);
  for (let z = 0; z < nz; z++) {
    const k = z % sz;
    for (let y = 0; y < ny; y++) {
      const j = Math.min(sy - 1, Math.floor((y * sy) / ny));
      for (let x = 0; x < nx; x++) {
        const ii = Math.min(sx - 1, Math.floor((x * sx) / nx));
        out[x + nx * (y + ny * z)] = Number(src.data[ii + sx * (j + sy * k)]);
      }
    }
  }
  return { data: out, size: [nx, ny, nz], spacing: [0.78, 0.78, 1.5], origin: src.origin, direction: src.direction };
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'misfm-decode-'));
try {
  const file = path.join(dir, 'ct512.nii.gz');
  await writeImage(file, await buildVolume());
  const mb = statSync(file).size / 2 ** 20;
  await readImage(file); // warm-up: wasm compile, caches
  const ours: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    const v = await readImage(file);
    ours.push((performance.now() - t0) / 1000);
    if (v.size[2] !== 200) throw new Error('unexpected size');
  }
  ours.sort((a, b) => a - b);
  const med = ours[Math.floor(ours.length / 2)]!;
  const py = spawnSync('/usr/bin/python3', ['-c', `
import nibabel, time, sys, numpy
f = sys.argv[1]; r = int(sys.argv[2]); ts = []
numpy.asarray(nibabel.load(f).dataobj)
for _ in range(r):
    t0 = time.perf_counter(); a = numpy.asarray(nibabel.load(f).dataobj); ts.append(time.perf_counter() - t0)
ts.sort(); print(ts[len(ts)//2])`, file, String(reps)], { encoding: 'utf8' });
  const ref = py.status === 0 ? Number(py.stdout.trim().split('\n').pop()) : undefined;
  console.log(`decode 512x512x200 int16 .nii.gz (${mb.toFixed(1)} MB), median of ${reps}`);
  console.log(`misfm/itk-wasm ${med.toFixed(2)} s` + (ref !== undefined
    ? `   nibabel ${ref.toFixed(2)} s   throughput ratio misfm/nibabel ${(ref / med).toFixed(2)}`
    : '   (nibabel unavailable: install python3-nibabel for the same-run comparison)'));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
