// Development check (docs/results/vista3d-real.md, session 11): can VISTA3D-small's point branch
// learn? Stage-1 click rounds (5 per patch, no supervoxels) on a fresh model.
//   node scripts/dev/vista3d-point-fit.mjs              # synthetic 64³ patches: two random spheres (classes 1, 5)
//   node scripts/dev/vista3d-point-fit.mjs CACHE_DIR    # one real 64³ patch of CT 01 around the liver, again and again
// CACHE_DIR: a misfm cache of CT 01 at 3 mm in RAS (experiments/vista3d-real.sh makes OUT/cache-ras).
// Environment: IT (patches, 40), LR (1e-3), TH (threads, 2), FIXED=1 (synthetic: one patch again and again).
const D = new URL('../../dist/src/', import.meta.url).href;
const { fromTypedArray, setNumThreads, manualSeed } = await import(D + 'engine/creation.js');
const { tidy } = await import(D + 'engine/scope.js');
const { createVista3d } = await import(D + 'models/registry.js');
const { AdamW } = await import(D + 'optim/index.js');
const { trainPatch, VISTA3D_STAGES } = await import(D + 'train/vista3d/step.js');
const { Rng } = await import(D + 'util/rng.js');
const { ct01Crop } = await import('./ct01-crop.mjs');
setNumThreads(Number(process.env.TH ?? 2)); manualSeed(0);
const S = 64, vol = S * S * S;

function spheres(r) {
  const img = new Float32Array(vol), lab = new Int32Array(vol);
  const objs = [[1, 0.8], [5, -0.6]].map(([c, v]) => ({ c, v, x: r.randint(16, 47), y: r.randint(16, 47), z: r.randint(16, 47), rad: r.randint(7, 12) }));
  for (let i = 0; i < S; i++) for (let j = 0; j < S; j++) for (let k = 0; k < S; k++) {
    const p = (i * S + j) * S + k; img[p] = 0.1 * r.normal(0, 1);
    for (const o of objs) if ((i - o.x) ** 2 + (j - o.y) ** 2 + (k - o.z) ** 2 < o.rad ** 2) { img[p] += o.v; lab[p] = o.c; }
  }
  return { img, lab };
}

// One real patch around the liver (liver, stomach, right kidney; the cache's (D,H,W) order, which
// does not matter for fitting one patch).
const realPatch = (dir) => ct01Crop(dir, S, 5, { 5: 1, 6: 12, 2: 5 });

const cacheDir = process.argv[2];
const rng = new Rng(1);
const fixed = cacheDir !== undefined ? realPatch(cacheDir.replace(/\/$/, '')) : process.env.FIXED === '1' ? spheres(new Rng(7)) : null;
const labelSet = cacheDir !== undefined ? [0, 1, 5, 12] : [0, 1, 5];
const model = createVista3d('vista3d-small');
const opt = new AdamW(model.parameters(), { lr: Number(process.env.LR ?? 1e-3), weightDecay: 1e-5 });
const stage = { ...VISTA3D_STAGES[1], supervoxels: null };
const t0 = performance.now(); let acc = [];
for (let it = 0; it < Number(process.env.IT ?? 40); it++) {
  const { img, lab } = fixed ?? spheres(rng);
  acc.push(...tidy(() => trainPatch(model, opt, fromTypedArray(img, [1, 1, S, S, S]), lab, labelSet, stage, rng)));
  if ((it + 1) % 5 === 0) { console.log(`patch ${it + 1} mean loss ${(acc.reduce((a, b) => a + b, 0) / acc.length).toFixed(3)} (${acc.length} steps) ${((performance.now() - t0) / 1000).toFixed(0)} s`); acc = []; }
}
