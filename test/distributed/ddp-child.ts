/**
 * One process of the data-parallel equivalence test: trains a small conv net (no BatchNorm, CE
 * loss, so one process with batch W*b and W processes with batch b are the same maths) for a few
 * steps on a deterministic sample stream, then rank 0 writes its parameters as JSON to argv[2].
 * Run as a single process (no WORLD_SIZE) with batch 2, or as 2 ranks with batch 1.
 */
import { writeFileSync } from 'node:fs';
import * as E from '../../src/engine/index.js';
import * as nn from '../../src/nn/index.js';
import { train, type BatchSource, type TrainableModel } from '../../src/train/trainer.js';
import { presetConfig, applyOverrides } from '../../src/config/index.js';
import { Rng } from '../../src/util/rng.js';
import { joinFromEnvironment } from '../../src/distributed/context.js';
import { createModel } from '../../src/models/registry.js';
import { DropPath } from '../../src/nn/layers/activation.js';

class Net extends nn.Module implements TrainableModel {
  readonly net: nn.Sequential;
  constructor() {
    super();
    this.net = this.registerModule('net', new nn.Sequential(new nn.Conv3d(1, 6, 3, { padding: 1 }), new nn.PReLU(), new nn.Conv3d(6, 3, 1)));
  }
  forward(x: E.Tensor): E.Tensor { return this.net.forward(x); }
}

// DDP_TEST_NET=pctnet: a small PCT-Net (BatchNorm everywhere) without dropout, for SyncBatchNorm.
const pct = process.env['DDP_TEST_NET'] === 'pctnet';
const DHW = pct ? [16, 32, 32] : [4, 8, 8];
// DDP_TEST_DTYPE=float64: the whole run in double precision, where float32 rounding noise cannot
// hide a difference in the maths.
const dtype = process.env['DDP_TEST_DTYPE'] === 'float64' ? 'float64' : 'float32';

/** Global sample s is a function of s alone; rank r of W takes samples t*W*b + k*W + r. */
function sample(s: number): { img: Float32Array; lab: Int32Array } {
  const rng = new Rng(99).fork(s);
  const n = DHW[0]! * DHW[1]! * DHW[2]!;
  const img = new Float32Array(n).map(() => rng.normal());
  const lab = new Int32Array(n).map((_, i) => (img[i]! > 0.5 ? 2 : img[i]! < -0.5 ? 1 : 0));
  return { img, lab };
}

function source(rank: number, world: number, batch: number): BatchSource {
  let it = 0;
  return {
    async next() {
      const imgs: Float32Array[] = [], labs: Int32Array[] = [];
      for (let k = 0; k < batch; k++) { const x = sample(it * world * batch + k * world + rank); imgs.push(x.img); labs.push(x.lab); }
      it++;
      const img = new Float32Array(imgs.reduce((a, b) => a + b.length, 0)); let o = 0; for (const a of imgs) { img.set(a, o); o += a.length; }
      const lab = new Int32Array(img.length); o = 0; for (const a of labs) { lab.set(a, o); o += a.length; }
      const image32 = E.fromTypedArray(img, [batch, 1, ...DHW]);
      const l = E.fromTypedArray(lab, [batch, ...DHW]);
      const target32 = E.F.oneHot(l, pct ? 5 : 3);
      l.dispose();
      const image = image32.to(dtype), target = target32.to(dtype);
      image32.dispose(); target32.dispose();
      return { image, target };
    },
    position: () => it,
    async close() { /* nothing held */ },
  };
}

const out = process.argv[2]!;
const runDir = process.argv[3]!;
const dist = await joinFromEnvironment();
const world = dist?.worldSize ?? 1, rank = dist?.rank ?? 0;
const batch = Number(process.env['DDP_TEST_BATCH'] ?? (world === 1 ? 2 : 1));
// Different seeds per rank: the broadcast from rank 0 must make the starting weights equal.
E.manualSeed(7 + rank);
const config = applyOverrides(presetConfig('small'), [
  ...(pct ? ['training.optimizer="sgd"', 'training.momentum=0.9', 'data.patchSize=[16,32,32]', 'model.inputSize=[16,32,32]', 'model.featureChns=[4,8,16,32,64]', 'model.dropout=[0,0,0,0,0]', 'model.multiscalePred=false'] : []),
  ...(process.env['DDP_TEST_SYNC_BN'] === '1' ? ['training.syncBatchNorm=true'] : []),
  'training.iterations=3', 'training.validEvery=100', 'training.saveEvery=100', `output.dir=${JSON.stringify(runDir)}`,
  'training.deepSupervision.enabled=false', 'training.lr=0.01', 'training.lossWeights={"dice":0,"ce":1}',
  'training.scheduler.kind="constant"',
]);
const model = pct ? createModel(config.model) as unknown as TrainableModel : new Net();
// PCT-Net's stochastic depth (drop path 0.2, fixed by the reference) draws per sample from each
// process's generator: one process and two cannot draw the same masks, so it is off here.
const noDropPath = (m: nn.Module): void => { if (m instanceof DropPath) (m as unknown as { p: number }).p = 0; for (const c of m.children()) noDropPath(c); };
noDropPath(model);
(model as unknown as nn.Module).toDtype(dtype);
await train({ model, config, makeSource: async () => source(rank, world, batch), runDir, quiet: true, distributed: dist });
if (rank === 0) {
  const params: Record<string, number[]> = {};
  for (const [k, v] of model.stateDict()) params[k] = Array.from(v.data() as unknown as ArrayLike<number | bigint>, Number);
  writeFileSync(out, JSON.stringify(params));
}
dist?.group.destroy();
