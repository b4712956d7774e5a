/** `misfm launch`: start the local ranks of a distributed (c10d) training run. */
import { parseArgs } from 'node:util';
import type { Command } from '../command.js';
import { launch, parseMaster } from '../../distributed/launch.js';
import { MisfmError } from '../../util/errors.js';
import { positiveInt } from '../args.js';

const USAGE = `Usage: misfm launch --nproc N [--nnodes M --node-rank R --master HOST:PORT] [--threads T] -- COMMAND [ARGS...]

Starts N processes of 'misfm COMMAND ARGS...' on this node as ranks of one data-parallel run
(PyTorch's c10d: Gloo on CPU, NCCL in CUDA builds), with the variables torchrun sets (RANK,
WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT). Ctrl-C is passed to every
rank (rank 0 saves a checkpoint); when a rank dies, the others are stopped and the exit status
names it. 'misfm pretrain --nproc N' and 'misfm train --nproc N' are shortcuts for one node.

Options:
  --nproc N            processes on this node
  --nnodes M           nodes in the run (default 1); run the same command on every node
  --node-rank R        this node's index, 0..M-1 (default 0; node 0 hosts the rendezvous)
  --master HOST:PORT   address of node 0 (default 127.0.0.1 and a free port on one node)
  --threads T          libtorch threads per process (default: cores / N)

Example, two nodes with two processes each (run on both, with --node-rank 0 and 1):
  misfm launch --nproc 2 --nnodes 2 --node-rank 0 --master 10.0.0.1:29500 -- pretrain --data /shared/cache --out /shared/runs/volf`;

export const launchCommand: Command = {
  name: 'launch',
  summary: 'run pretrain/train on several processes or nodes (c10d data parallel)',
  usage: USAGE,
  async run(argv) {
    const sep = argv.indexOf('--');
    const own = sep >= 0 ? argv.slice(0, sep) : argv;
    const command = sep >= 0 ? argv.slice(sep + 1) : [];
    const { values } = parseArgs({
      args: own, strict: true,
      options: { nproc: { type: 'string' }, nnodes: { type: 'string' }, 'node-rank': { type: 'string' }, master: { type: 'string' }, threads: { type: 'string' } },
    });
    if (values.nproc === undefined) throw new MisfmError('ARGUMENT', '--nproc is required');
    if (process.env['WORLD_SIZE'] !== undefined && process.env['WORLD_SIZE'] !== '1') {
      throw new MisfmError('ARGUMENT', `misfm launch is running inside a distributed run already (WORLD_SIZE=${process.env['WORLD_SIZE']})`);
    }
    const r = await launch({
      nproc: positiveInt('nproc', values.nproc), command,
      ...(values.nnodes !== undefined ? { nnodes: positiveInt('nnodes', values.nnodes) } : {}),
      ...(values['node-rank'] !== undefined ? { nodeRank: Number.isSafeInteger(Number(values['node-rank'])) && Number(values['node-rank']) >= 0 ? Number(values['node-rank']) : (() => { throw new MisfmError('ARGUMENT', `--node-rank must be a non-negative integer, got '${values['node-rank']}'`); })() } : {}),
      ...(values.master !== undefined ? { master: parseMaster(values.master) } : {}),
      ...(values.threads !== undefined ? { threads: positiveInt('threads', values.threads) } : {}),
    });
    return r.exitCode;
  },
};

/**
 * `--nproc N` on pretrain/train: re-run the same command line under `misfm launch` on this node.
 * Returns null when the command should run in this process (no --nproc, N = 1, or already a rank).
 */
export async function runWithNproc(command: string, argv: string[], nproc: string | undefined): Promise<number | null> {
  if (nproc === undefined) return null;
  const n = positiveInt('nproc', nproc);
  if (process.env['WORLD_SIZE'] !== undefined && process.env['WORLD_SIZE'] !== '1') {
    throw new MisfmError('ARGUMENT', `--nproc is for starting a run; this process is already rank ${process.env['RANK'] ?? '?'} of ${process.env['WORLD_SIZE']}`);
  }
  if (n === 1) return null;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--nproc') { i++; continue; }
    if (a.startsWith('--nproc=')) continue;
    rest.push(a);
  }
  const threadsAt = rest.indexOf('--threads');
  const threads = threadsAt >= 0 ? positiveInt('threads', rest[threadsAt + 1] ?? '') : undefined;
  return (await launch({ nproc: n, command: [command, ...rest], ...(threads !== undefined ? { threads } : {}) })).exitCode;
}
