/**
 * Memory stability: a 1,000-step training loop of a small 3D conv net (Adam, BN, PReLU) must hold a
 * steady RSS. Prints RSS every 100 steps, the growth between step 100 and the end, and the live
 * native tensor count.
 *
 *   node dist/bench/rss-loop.js [--steps 1000]
 */
import * as E from '../src/engine/index.js';
import * as nn from '../src/nn/index.js';
import { Adam } from '../src/optim/index.js';

const i = process.argv.indexOf('--steps');
const steps = i >= 0 ? Number(process.argv[i + 1]) : 1000;
E.setNumThreads(2);
E.manualSeed(0);
const net = new nn.Sequential(
  new nn.Conv3d(1, 16, 3, { padding: 1 }), new nn.BatchNorm3d(16), new nn.PReLU(),
  new nn.Conv3d(16, 16, 3, { padding: 1 }), new nn.BatchNorm3d(16), new nn.PReLU(),
  new nn.Conv3d(16, 3, 1),
);
const opt = new Adam(net.parameters(), { lr: 1e-3, weightDecay: 1e-5 });
const x = E.randn([2, 1, 16, 32, 32]);
const y = E.randint(0, 3, [2, 16, 32, 32]);
const mb = (): number => process.memoryUsage().rss / 2 ** 20;
let rss100 = 0;
const t0 = Date.now();
for (let s = 1; s <= steps; s++) {
  E.tidy(() => {
    opt.zeroGrad();
    const loss = E.F.crossEntropy(net.forward(x), y);
    loss.backward();
    opt.step();
  });
  if (s === 100) rss100 = mb();
  if (s % 100 === 0) console.log(`step ${s}: rss ${mb().toFixed(1)} MiB, live tensors ${E.liveTensors()}`);
}
const end = mb();
console.log(`rss at step 100 ${rss100.toFixed(1)} MiB, at step ${steps} ${end.toFixed(1)} MiB: growth ${(end - rss100).toFixed(1)} MiB ` +
  `(${((end / rss100 - 1) * 100).toFixed(1)}%), ${((Date.now() - t0) / steps).toFixed(1)} ms/step`);
