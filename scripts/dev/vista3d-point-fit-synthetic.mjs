// Development check (docs/results/vista3d-real.md, session 11): node scripts/dev/vista3d-point-fit-synthetic.mjs; env IT, LR, TH, FIXED=1.
// Can VISTA3D-small's point branch learn anything? Synthetic 64^3 patches, stage-1 rounds.
const D = new URL('../../dist/src/', import.meta.url).href;
const { fromTypedArray, setNumThreads, manualSeed } = await import(D + 'engine/creation.js');
const { tidy } = await import(D + 'engine/scope.js');
const { createVista3d } = await import(D + 'models/registry.js');
const { AdamW } = await import(D + 'optim/index.js');
const { trainPatch, VISTA3D_STAGES } = await import(D + 'train/vista3d/step.js');
const { Rng } = await import(D + 'util/rng.js');
setNumThreads(Number(process.env.TH ?? 1)); manualSeed(0);
const lr = Number(process.env.LR ?? 1e-3), iters = Number(process.env.IT ?? 40), fixed = process.env.FIXED === '1';
const model = createVista3d('vista3d-small');
const opt = new AdamW(model.parameters(), { lr, weightDecay: 1e-5 });
const stage = { ...VISTA3D_STAGES[1], supervoxels: null };
const rng = new Rng(1);
const S = 64, vol = S * S * S;
function makePatch(r) {
  const img = new Float32Array(vol), lab = new Int32Array(vol);
  // two blobs of different brightness at random places, noise background
  const objs = [[1, 0.8], [5, -0.6]].map(([c, v]) => ({ c, v, x: r.randint(16, 47), y: r.randint(16, 47), z: r.randint(16, 47), rad: r.randint(7, 12) }));
  for (let i = 0; i < S; i++) for (let j = 0; j < S; j++) for (let k = 0; k < S; k++) {
    const p = (i * S + j) * S + k; img[p] = 0.1 * r.normal(0, 1);
    for (const o of objs) if ((i - o.x) ** 2 + (j - o.y) ** 2 + (k - o.z) ** 2 < o.rad ** 2) { img[p] += o.v; lab[p] = o.c; }
  }
  return { img, lab };
}
const fixedPatch = makePatch(new Rng(7));
const t0 = performance.now(); let acc = [];
for (let it = 0; it < iters; it++) {
  const { img, lab } = fixed ? fixedPatch : makePatch(rng);
  const losses = tidy(() => { const x = fromTypedArray(img, [1, 1, S, S, S]); return trainPatch(model, opt, x, lab, [0, 1, 5], stage, rng); });
  acc.push(...losses);
  if ((it + 1) % 5 === 0) { console.log(`patch ${it + 1} mean loss ${(acc.reduce((a, b) => a + b, 0) / acc.length).toFixed(3)} (${acc.length} steps) ${((performance.now() - t0) / 1000).toFixed(0)} s`); acc = []; }
}
