/**
 * Benchmark of the volume cache and loader.
 *
 * 1. `prepare` time per case on the real CTs in ../shared/data (NIfTI, DICOM) and on a large
 *    synthetic CT: 512x512x200 int16, built by stacking the real 512x512x20 DICOM series 02 ten
 *    times (alternate copies mirrored in z so that there are no seams), written as .nii to a temp
 *    folder (deleted afterwards, never committed).
 * 2. Random 64x128x128 crop reads from that cache in this thread, per read pattern (rows,
 *    slabs, block, auto).
 * 3. The loader: random 64x128x128 pretraining crops per second (ct-window + flips, float32 out)
 *    with 2 worker threads, batch 2, consumer doing nothing else.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/cache.js [--seconds S] [--workers N]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readImage, writeImage } from '../src/io/image/index.js';
import type { Volume } from '../src/io/volume.js';
import { prepare } from '../src/data/prepare.js';
import { CacheVolume, type ReadStrategy } from '../src/data/reader.js';
import { Loader } from '../src/data/loader.js';
import { readyCases } from '../src/data/manifest.js';
import { Rng } from '../src/util/rng.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const DATA = path.resolve(here, '../../../shared/data');
const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const SECONDS = arg('--seconds', 5);
const WORKERS = arg('--workers', 2);
const CROP: [number, number, number] = [64, 128, 128];

/** 512x512x200 int16 CT: the 20-slice DICOM series stacked 10 times, every other copy mirrored in z. */
function tileCT(src: Volume, copies: number): Volume {
  const [nx, ny, nz] = src.size;
  const plane = nx * ny;
  const s = src.data;
  const out = new Int16Array(plane * nz * copies);
  for (let c = 0; c < copies; c++) {
    for (let k = 0; k < nz; k++) {
      const from = (c % 2 === 0 ? k : nz - 1 - k) * plane;
      for (let i = 0; i < plane; i++) out[(c * nz + k) * plane + i] = s[from + i]!;
    }
  }
  return { ...src, data: out, size: [nx, ny, nz * copies] };
}

function line(label: string, value: string): void {
  process.stdout.write(`${label.padEnd(58)} ${value}\n`);
}

async function main(): Promise<void> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'misfm-bench-cache-'));
  try {
    process.stdout.write(`machine: ${os.cpus()[0]?.model ?? '?'}, ${os.availableParallelism()} cores, node ${process.version}\n`);
    const dcm = await readImage(path.join(DATA, '02_totalseg_ct_dicom', 'uncompressed'));
    const big = tileCT(dcm, 10);
    const inDir = path.join(tmp, 'in');
    fs.mkdirSync(inDir);
    const bigFile = path.join(inDir, 'synthetic_512x512x200.nii');
    await writeImage(bigFile, big);
    line('synthetic CT', `${big.size.join('x')} int16, ${(fs.statSync(bigFile).size / 2 ** 20).toFixed(0)} MiB (.nii)`);

    // 1. prepare, one case at a time, in this thread and in a worker.
    const cacheDir = path.join(tmp, 'cache');
    const cases = [
      ['01 CT NIfTI 122x101x112', path.join(DATA, '01_totalseg_abdomen_ct', 'ct.nii.gz')],
      ['02 CT DICOM 512x512x20', path.join(DATA, '02_totalseg_ct_dicom', 'uncompressed')],
      ['03 CTA NIfTI 120x126x164', path.join(DATA, '03_totalseg_chest_cta', 'ct.nii.gz')],
      ['04 head CT NIfTI 256x256x108', path.join(DATA, '04_invesalius_head_ct', 'ct.nii.gz')],
      ['synthetic CT .nii 512x512x200', bigFile],
    ] as const;
    // Warm-up: the first case in a thread pays for loading itk-wasm (~1-2 s).
    await prepare([cases[0][1]], path.join(tmp, 'warm'), { workers: 0, progress: false });
    for (const [name, src] of cases) {
      const r = await prepare([src], cacheDir, { workers: 0, progress: false });
      line(`prepare ${name} (main thread, warm)`, `${r.report.msPerCase.toFixed(0)} ms/case`);
    }
    const all = await prepare(cases.slice(0, 4).map((c) => c[1]), path.join(tmp, 'cache2'), { workers: 2, progress: false });
    line('prepare 4 real CTs, 2 workers (incl. worker start-up)', `${all.report.msPerCase.toFixed(0)} ms/case wall, ${all.report.seconds.toFixed(1)} s total`);

    // 2. Read patterns, this thread, warm page cache.
    const bigCase = readyCases(cacheDir).find((c) => c.id === 'synthetic_512x512x200')!;
    const cv = CacheVolume.open(bigCase.imageFile);
    const [D, H, W] = cv.shape;
    for (const s of ['rows', 'slabs', 'block', 'auto'] as ReadStrategy[]) {
      const rng = new Rng(1);
      const t0 = performance.now();
      let n = 0;
      while (performance.now() - t0 < Math.min(2000, SECONDS * 400)) {
        cv.readBox([rng.randint(0, D - CROP[0]), rng.randint(0, H - CROP[1]), rng.randint(0, W - CROP[2])], CROP, undefined, s);
        n++;
      }
      line(`raw 64x128x128 int16 reads, pattern ${s}, 1 thread`, `${(n / ((performance.now() - t0) / 1000)).toFixed(0)} crops/s`);
    }
    cv.close();

    // 3. Loader throughput.
    const loader = await Loader.open({ cache: cacheDir, caseIds: ['synthetic_512x512x200'], cropSize: CROP, batchSize: 2, workers: WORKERS, seed: 0 });
    for (let i = 0; i < 4; i++) await loader.next(); // warm-up (worker start, JIT)
    const s0 = loader.stats();
    const t0 = performance.now();
    let crops = 0;
    while (performance.now() - t0 < SECONDS * 1000) {
      const r = await loader.next();
      crops += r.value!.samples.length;
    }
    const sec = (performance.now() - t0) / 1000;
    const s1 = loader.stats();
    await loader.close();
    line(`loader: random 64x128x128 crops, ${WORKERS} workers, float32 + window + flips`, `${(crops / sec).toFixed(1)} crops/s`);
    line('loader: worker time per crop', `${((s1.workMs - s0.workMs) / (s1.samples - s0.samples)).toFixed(1)} ms`);
    line('loader: consumer wait per batch (consumer does nothing)', `${((s1.waitMs - s0.waitMs) / (s1.batches - s0.batches)).toFixed(1)} ms`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
