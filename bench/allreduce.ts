/**
 * Data-parallel communication benchmark: averaging the gradients of the paper PCT-Net (~45M
 * parameters, float32) across 2 ranks over loopback Gloo, misfm (GradientAverager: 25 MiB buckets,
 * all in flight at once, gradients left as bucket views) against torch.distributed doing the same
 * bucketed all-reduce with async_op=True and copying the averages back, as DDP does by default
 * (gradient_as_bucket_view=False), in the same run. Prints misfm's throughput as a ratio of PyTorch's and both times.
 *
 *   node dist/bench/allreduce.js [--reps 5] [--bucket-mb 25]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as E from '../src/engine/index.js';
import { createModel } from '../src/models/registry.js';
import { presetConfig } from '../src/config/index.js';
import { joinFromEnvironment } from '../src/distributed/context.js';
import { GradientAverager, planBuckets } from '../src/distributed/data-parallel.js';
import { freePort } from '../src/distributed/launch.js';

const args = process.argv.slice(2);
const opt = (name: string, def: string): string => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1]! : def; };
const reps = Number(opt('reps', '5'));
const bucketBytes = Number(opt('bucket-mb', '25')) * 2 ** 20;
const self = fileURLToPath(import.meta.url);

function median(xs: number[]): number { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; }

async function rankMain(numelsFile: string, outFile: string): Promise<void> {
  const numels = JSON.parse(readFileSync(numelsFile, 'utf8')) as number[];
  const ctx = (await joinFromEnvironment())!;
  const params = numels.map((n) => E.randn([n]).requiresGrad_());
  // What backward leaves: fresh gradient tensors (the averager turns them into bucket views).
  const grads = numels.map((n) => E.randn([n]));
  const fresh = (): void => params.forEach((p, i) => { p.grad = grads[i]!; });
  const avg = new GradientAverager(ctx.group, params, bucketBytes);
  fresh();
  await avg.average(); // warm-up: connections, buffers
  const times: number[] = [];
  for (let r = 0; r < reps; r++) { fresh(); await ctx.group.barrier(); times.push((await avg.average()).ms); }
  if (ctx.rank === 0) writeFileSync(outFile, JSON.stringify({ ms: median(times), buckets: avg.buckets.length }));
  avg.dispose();
  ctx.group.destroy();
}

const PY = `
import json, os, sys, time, datetime, torch, torch.distributed as dist
numels = json.load(open(sys.argv[1])); buckets = json.load(open(sys.argv[2])); reps = int(sys.argv[3])
as_view = sys.argv[4] == 'view'
rank = int(os.environ['RANK'])
torch.set_num_threads(1)
dist.init_process_group('gloo', init_method='tcp://127.0.0.1:' + os.environ['MASTER_PORT'], rank=rank, world_size=2, timeout=datetime.timedelta(seconds=300))
grads = [torch.randn(n) for n in numels]
views = [None] * len(grads)
def step():
    t0 = time.perf_counter()
    flats = [torch.cat([grads[i].reshape(-1) for i in b]) for b in buckets]
    works = [dist.all_reduce(f, async_op=True) for f in flats]
    for w in works: w.wait()
    for f, b in zip(flats, buckets):
        f.div_(2); off = 0
        for i in b:
            n = grads[i].numel(); v = f[off:off + n].view_as(grads[i]); off += n
            if as_view: views[i] = v  # what misfm leaves: the gradient is a view of the bucket
            else: grads[i].copy_(v)   # DDP's default: the average is copied back
    return (time.perf_counter() - t0) * 1000
step()
ts = []
for _ in range(reps):
    dist.barrier(); ts.append(step())
ts.sort()
if rank == 0: print(json.dumps({'ms': ts[len(ts) // 2]}))
`;

function runRanks(cmd: (rank: number) => string[], port: number): Promise<string[]> {
  return Promise.all([0, 1].map((rank) => new Promise<string>((resolve, reject) => {
    const c = cmd(rank);
    const p = spawn(c[0]!, c.slice(1), { env: { ...process.env, RANK: String(rank), WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), MISFM_NUM_THREADS: '1', OMP_NUM_THREADS: '1' } });
    let out = '', err = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`rank ${rank} exited ${code}: ${err}`))));
  })));
}

if (args[0] === '--rank') {
  await rankMain(args[1]!, args[2]!);
} else {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'misfm-bench-ar-'));
  try {
    const model = createModel(presetConfig('paper').model);
    const numels = model.parameters().map((p) => p.numel);
    model.dispose();
    const total = numels.reduce((a, b) => a + b, 0);
    const buckets = planBuckets(numels.map((n) => n * 4), bucketBytes);
    writeFileSync(path.join(dir, 'numels.json'), JSON.stringify(numels));
    writeFileSync(path.join(dir, 'buckets.json'), JSON.stringify(buckets));
    writeFileSync(path.join(dir, 'ar.py'), PY);
    console.log(`gradient set: paper PCT-Net, ${numels.length} tensors, ${(total / 1e6).toFixed(1)}M parameters (${(total * 4 / 2 ** 20).toFixed(0)} MiB), ${buckets.length} buckets of <= ${bucketBytes / 2 ** 20} MiB, 2 ranks, loopback Gloo, median of ${reps}`);
    // Interleave: misfm, PyTorch, misfm, PyTorch (a loaded machine affects both alike).
    const ours: number[] = [], theirs: number[] = [], theirsView: number[] = [];
    const torchRun = async (mode: string): Promise<number> => {
      const py = await runRanks(() => ['/usr/bin/python3', path.join(dir, 'ar.py'), path.join(dir, 'numels.json'), path.join(dir, 'buckets.json'), String(reps), mode], await freePort());
      return (JSON.parse(py[0]!.trim().split('\n').pop()!) as { ms: number }).ms;
    };
    for (let round = 0; round < 2; round++) {
      await runRanks((r) => [process.execPath, self, '--rank', path.join(dir, 'numels.json'), path.join(dir, `out${r}.json`), '--reps', String(reps), '--bucket-mb', String(bucketBytes / 2 ** 20)], await freePort());
      ours.push((JSON.parse(readFileSync(path.join(dir, 'out0.json'), 'utf8')) as { ms: number }).ms);
      theirs.push(await torchRun('copy'));
      theirsView.push(await torchRun('view'));
    }
    const a = Math.min(...ours), b = Math.min(...theirs), c = Math.min(...theirsView);
    const gbps = (ms: number): string => ((total * 4) / (ms / 1000) / 2 ** 30).toFixed(2);
    console.log(`misfm            ${a.toFixed(0)} ms per gradient average (${gbps(a)} GiB/s of gradients)`);
    console.log(`torch.distributed ${b.toFixed(0)} ms per gradient average (${gbps(b)} GiB/s), averages copied back (DDP's default)`);
    console.log(`torch.distributed ${c.toFixed(0)} ms per gradient average (${gbps(c)} GiB/s), gradients left as bucket views (as misfm)`);
    console.log(`ratio: misfm throughput = ${(b / a).toFixed(2)}x PyTorch DDP default's, ${(c / a).toFixed(2)}x the same semantics' (target >= 0.9)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
