import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { repoRoot, hasPythonTorch } from '../helpers.js';
import { freePort } from '../../src/distributed/launch.js';
import { readDistEnv } from '../../src/distributed/env.js';
import { GradientAverager, planBuckets } from '../../src/distributed/data-parallel.js';
import type { ProcessGroup } from '../../src/distributed/group.js';
import * as E from '../../src/engine/index.js';
import { MisfmError } from '../../src/util/errors.js';

const child = path.join(repoRoot, 'dist/test/distributed/group-child.js');

/** Run one command per rank with the torchrun variables set; resolves with each one's stdout. */
function runRanks(cmds: string[][], port: number, extraEnv: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; out: string; err: string }[]> {
  return Promise.all(cmds.map((cmd, rank) => new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
    const p = spawn(cmd[0]!, cmd.slice(1), {
      env: { ...process.env, RANK: String(rank), WORLD_SIZE: String(cmds.length), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), MISFM_DIST_TIMEOUT_MS: '20000', ...extraEnv },
    });
    let out = '', err = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    p.on('exit', (code) => resolve({ code, out, err }));
  })));
}

test('collectives over Gloo: all-reduce (sum, max), broadcast, all-gather, barrier, many in flight', async () => {
  const port = await freePort();
  const rs = await runRanks([[process.execPath, child, 'collectives'], [process.execPath, child, 'collectives']], port);
  for (const r of rs) assert.equal(r.code, 0, r.err);
  for (const r of rs) {
    const o = JSON.parse(r.out.trim().split('\n').pop()!) as Record<string, unknown>;
    assert.deepEqual(o['sum'], [3, 30]);
    assert.deepEqual(o['max'], [1]);
    assert.deepEqual(o['bcast'], [7, 8]);
    assert.deepEqual(o['gather'], [[100], [101]]);
    // tensor i holds i + rank on each rank: the sum is 2i + 1
    assert.deepEqual(o['many'], Array.from({ length: 8 }, (_, i) => 2 * i + 1));
  }
});

test('a rank that dies makes the others\' collective fail with a DISTRIBUTED error, not hang', async () => {
  const port = await freePort();
  const t0 = Date.now();
  const [r0, r1] = await runRanks([[process.execPath, child, 'peer-dies'], [process.execPath, child, 'peer-dies']], port);
  assert.equal(r1!.code, 3);
  assert.equal(r0!.code, 0, r0!.err);
  const o = JSON.parse(r0!.out.trim().split('\n').pop()!) as { error: string | null; code: string };
  assert.ok(o.error !== null, 'the all-reduce with a dead peer must fail');
  assert.equal(o.code, 'DISTRIBUTED');
  assert.match(o.error!, /rank 0: allReduce failed/);
  assert.ok(Date.now() - t0 < 20_000, `took ${Date.now() - t0} ms (timeout is 20 s)`);
});

test('interoperability: a misfm rank and a torch.distributed (Gloo) rank form one group', { skip: !hasPythonTorch() && 'python3-torch not installed' }, async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'misfm-dist-py-'));
  try {
    const py = path.join(dir, 'rank1.py');
    writeFileSync(py, [
      'import datetime, json, os, torch, torch.distributed as dist',
      "dist.init_process_group('gloo', init_method=f\"tcp://127.0.0.1:{os.environ['MASTER_PORT']}\", rank=1, world_size=2, timeout=datetime.timedelta(seconds=20))",
      't = torch.tensor([2.0, 20.0]); dist.all_reduce(t)',
      'b = torch.zeros(2); dist.broadcast(b, 0)',
      'g = [torch.zeros(1, dtype=torch.int32) for _ in range(2)]; dist.all_gather(g, torch.tensor([101], dtype=torch.int32))',
      'dist.barrier()',
      "print(json.dumps({'sum': t.tolist(), 'bcast': b.tolist(), 'gather': [x.tolist() for x in g]}))",
    ].join('\n'));
    const port = await freePort();
    const [js, pyr] = await runRanks([[process.execPath, child, 'interop'], ['/usr/bin/python3', py]], port, { OMP_NUM_THREADS: '1' });
    assert.equal(pyr!.code, 0, pyr!.err);
    assert.equal(js!.code, 0, js!.err);
    const j = JSON.parse(js!.out.trim().split('\n').pop()!) as Record<string, unknown>;
    assert.deepEqual(j['sum'], [3, 30]);
    assert.deepEqual(j['gather'], [[100], [101]]);
    const p = JSON.parse(pyr!.out.trim().split('\n').pop()!) as Record<string, unknown>;
    assert.deepEqual(p['sum'], [3, 30]);
    assert.deepEqual(p['bcast'], [7, 8]);
    assert.deepEqual(p['gather'], [[100], [101]]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the launch contract: torchrun variables, SLURM fallback, clear errors', () => {
  assert.equal(readDistEnv({}), null);
  assert.equal(readDistEnv({ WORLD_SIZE: '1', RANK: '0' }), null);
  assert.deepEqual(readDistEnv({ WORLD_SIZE: '4', RANK: '3', LOCAL_RANK: '1', LOCAL_WORLD_SIZE: '2', MASTER_ADDR: 'n0', MASTER_PORT: '1234' }),
    { rank: 3, worldSize: 4, localRank: 1, localWorldSize: 2, masterAddr: 'n0', masterPort: 1234 });
  assert.deepEqual(readDistEnv({ SLURM_PROCID: '1', SLURM_NTASKS: '2', SLURM_LOCALID: '1', SLURM_NTASKS_PER_NODE: '2', MASTER_ADDR: 'h' }),
    { rank: 1, worldSize: 2, localRank: 1, localWorldSize: 2, masterAddr: 'h', masterPort: 29500 });
  assert.throws(() => readDistEnv({ WORLD_SIZE: '2', RANK: '2' }), (e: unknown) => e instanceof MisfmError && /RANK="2" must be an integer from 0 to 1/.test(e.message));
  assert.throws(() => readDistEnv({ WORLD_SIZE: '2' }), /RANK is not/);
  assert.throws(() => readDistEnv({ WORLD_SIZE: '4', RANK: '0', LOCAL_WORLD_SIZE: '2' }), /MASTER_ADDR is not set/);
  assert.throws(() => readDistEnv({ WORLD_SIZE: 'two', RANK: '0' }), /WORLD_SIZE="two"/);
});

test('gradient buckets: reverse parameter order, bounded size, an oversized tensor alone', () => {
  assert.deepEqual(planBuckets([4, 4, 4, 4], 8), [[3, 2], [1, 0]]);
  assert.deepEqual(planBuckets([4, 100, 4], 8), [[2], [1], [0]]);
  assert.deepEqual(planBuckets([1, 1, 1], 1000), [[2, 1, 0]]);
  assert.deepEqual(planBuckets([], 8), []);
});


/** A stand-in group of 2 whose peer holds the same gradients as this rank, except where `peerUsed` says it has none. */
function twinGroup(peerUsed: (i: number) => boolean): ProcessGroup {
  return {
    size: 2,
    allReduce: async (t: E.Tensor) => {
      // The used-parameter map (one flag per parameter; no bucket here has 3 elements): the peer
      // adds its own flags. Any other tensor: the peer adds the same values.
      if (t.numel === 3) {
        const flags = E.fromTypedArray(Float32Array.from([0, 1, 2], (i) => (peerUsed(i) ? 1 : 0)), [3]);
        E.noGrad(() => t.add_(flags)); flags.dispose();
      } else E.noGrad(() => t.mul_(2));
    },
  } as unknown as ProcessGroup;
}

test('gradient averaging: the mean over ranks, gradients left as bucket views, a parameter no rank used keeps no gradient, any float dtype', async () => {
  for (const dtype of ['float32', 'float64'] as const) {
    const params = [E.randn([2, 3]), E.randn([4]), E.randn([5])].map((p) => p.to(dtype).requiresGrad_());
    const g0 = E.randn([2, 3]).to(dtype);
    params[0]!.grad = g0;
    // Parameter 1: no gradient here, but the peer has one (its contribution is what arrives).
    // Parameter 2: unused on both ranks.
    const avg = new GradientAverager(twinGroup((i) => i !== 2), params, 16);
    assert.equal(avg.buckets.length, 3);
    const stats = await avg.average();
    assert.equal(stats.bytes, 15 * (dtype === 'float64' ? 8 : 4));
    const g = params[0]!.grad!;
    assert.equal(g.dtype, dtype);
    assert.deepEqual(Array.from(g.data() as Float64Array), Array.from(g0.data() as Float64Array), 'twin ranks: the mean is the gradient itself');
    assert.notEqual(params[1]!.grad, null, 'used on the peer: gets the averaged gradient');
    assert.equal(params[2]!.grad, null, 'used on no rank: no gradient, as in one process');
    // A view of the bucket: a second average without a new backward sees the same values.
    await avg.average();
    assert.deepEqual(Array.from(params[0]!.grad!.data() as Float64Array), Array.from(g0.data() as Float64Array));
    avg.dispose();
  }
  assert.throws(() => new GradientAverager(twinGroup(() => true), [E.randn([2]), E.randn([2]).to('float64')]), /one dtype/);
});
