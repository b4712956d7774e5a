/**
 * Engine benchmark: misfm (libtorch via N-API) against Debian's PyTorch on the same ops, same run,
 * same thread count. Prints misfm's throughput as a ratio of PyTorch's (>= 1 means misfm is as fast)
 * and the absolute times beside it.
 *
 *   node dist/bench/engine.js [--threads 2] [--reps 5]
 */
import { spawnSync } from 'node:child_process';
import * as E from '../src/engine/index.js';

const args = process.argv.slice(2);
const opt = (name: string, def: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const threads = opt('threads', 2);
const reps = opt('reps', 5);
E.setNumThreads(threads);

function timeIt(fn: () => void): number {
  fn(); // warm-up (oneDNN primitive creation, page faults)
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!; // median
}

const cases: { name: string; run: () => void }[] = [];
const x = E.randn([1, 48, 32, 64, 64]);
const w = E.randn([48, 48, 3, 3, 3]).mul(0.05).requiresGrad_();
const b = E.zeros([48]).requiresGrad_();
cases.push({ name: 'conv3d fwd [1,48,32,64,64] 3x3x3', run: () => E.noGrad(() => E.F.conv3d(x, w, b, { padding: 1 }).dispose()) });
cases.push({
  name: 'conv3d fwd+bwd', run: () => E.tidy(() => {
    const xi = x.detach().requiresGrad_();
    E.F.conv3d(xi, w, b, { padding: 1 }).sum().backward();
    w.grad = null; b.grad = null;
  }),
});
const xcl = x.contiguous('channelsLast3d');
const wcl = w.detach().contiguous('channelsLast3d');
cases.push({ name: 'conv3d fwd channels-last-3d', run: () => E.noGrad(() => E.F.conv3d(xcl, wcl, b.detach(), { padding: 1 }).dispose()) });
const m = E.randn([2048, 2048]);
cases.push({ name: 'matmul 2048x2048', run: () => m.matmul(m).dispose() });
const q = E.randn([864, 216, 32]);
const kt = E.randn([864, 32, 216]);
cases.push({ name: 'bmm [864,216,32]x[864,32,216]', run: () => q.bmm(kt).dispose() });

const PY = `
import torch, time, json, sys
torch.set_num_threads(int(sys.argv[1])); reps = int(sys.argv[2])
def t(fn):
    fn(); ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    ts.sort(); return ts[len(ts)//2]
x = torch.randn(1,48,32,64,64); w = (torch.randn(48,48,3,3,3)*0.05).requires_grad_(); b = torch.zeros(48, requires_grad=True)
def fwd():
    with torch.no_grad(): torch.nn.functional.conv3d(x, w, b, padding=1)
def fb():
    xi = x.detach().requires_grad_(); torch.nn.functional.conv3d(xi, w, b, padding=1).sum().backward(); w.grad = None; b.grad = None
xcl = x.contiguous(memory_format=torch.channels_last_3d); wcl = w.detach().contiguous(memory_format=torch.channels_last_3d)
def fcl():
    with torch.no_grad(): torch.nn.functional.conv3d(xcl, wcl, b.detach(), padding=1)
m = torch.randn(2048,2048); q = torch.randn(864,216,32); kt = torch.randn(864,32,216)
print(json.dumps([t(fwd), t(fb), t(fcl), t(lambda: m@m), t(lambda: torch.bmm(q, kt))]))
`;

const ours = cases.map((c) => timeIt(c.run));
let ref: number[] | undefined;
const py = spawnSync('/usr/bin/python3', ['-c', PY, String(threads), String(reps)], { encoding: 'utf8' });
if (py.status === 0) ref = JSON.parse(py.stdout.trim().split('\n').pop()!) as number[];
else process.stderr.write('PyTorch reference unavailable (/usr/bin/python3 -c "import torch" failed): absolute figures only\n');

console.log(`engine benchmark, ${threads} threads, median of ${reps} (misfm throughput / PyTorch throughput; >= 1 is as fast)`);
cases.forEach((c, i) => {
  const o = ours[i]!;
  const r = ref?.[i];
  const ratio = r === undefined ? '   n/a' : (r / o).toFixed(3);
  console.log(`${c.name.padEnd(36)} ratio ${ratio}   misfm ${(o * 1000).toFixed(1)} ms${r === undefined ? '' : `   pytorch ${(r * 1000).toFixed(1)} ms`}`);
});
