/**
 * `misfm launch`: start the local ranks of a distributed run, as torchrun does, and watch them.
 *
 * Each worker is `node bin/misfm.js <command...>` with RANK, WORLD_SIZE, LOCAL_RANK,
 * LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT and MISFM_NUM_THREADS set. Signals to the launcher
 * are forwarded to every worker (each finishes its iteration and rank 0 saves a checkpoint). When
 * a worker fails, the launcher names its rank, stops the others and exits non-zero; the surviving
 * ranks' pending collectives fail within the group timeout in any case, so nothing hangs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { packageRoot } from '../engine/native.js';
import { MisfmError } from '../util/errors.js';
import { DEFAULT_MASTER_PORT } from './env.js';

export interface LaunchOptions {
  /** Processes on this node. */
  nproc: number;
  /** Nodes in the run (default 1) and this node's index (default 0). */
  nnodes?: number;
  nodeRank?: number;
  /** Rendezvous host:port (rank 0's node). Default 127.0.0.1 and a free port for one node. */
  master?: { host: string; port: number };
  /** libtorch threads per worker. Default: this machine's cores / nproc (at least 1). */
  threads?: number;
  /** The misfm command line each worker runs, e.g. ['pretrain', '--data', ...]. */
  command: string[];
  /** Grace period after SIGTERM before the remaining workers are killed (ms). Default 30000. */
  killAfterMs?: number;
  /** Where the launcher's own lines go. Default stderr. */
  log?: (line: string) => void;
}

export interface LaunchResult {
  exitCode: number;
  /** The first rank that failed, if any. */
  failedRank: number | null;
}

/** A TCP port that is free on loopback now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a !== null ? a.port : DEFAULT_MASTER_PORT;
      s.close(() => resolve(port));
    });
  });
}

/** Parse 'HOST:PORT' (IPv6 in brackets). */
export function parseMaster(s: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(s.trim());
  if (m === null || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new MisfmError('ARGUMENT', `--master must be HOST:PORT, got '${s}'`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal !== null ? `was killed by ${signal}` : `exited with code ${code}`;
}

/** Run the workers of this node until all have ended. */
export async function launch(o: LaunchOptions): Promise<LaunchResult> {
  const nnodes = o.nnodes ?? 1, nodeRank = o.nodeRank ?? 0;
  if (!Number.isInteger(o.nproc) || o.nproc < 1) throw new MisfmError('ARGUMENT', `--nproc must be a positive integer, got ${o.nproc}`);
  if (!Number.isInteger(nnodes) || nnodes < 1) throw new MisfmError('ARGUMENT', `--nnodes must be a positive integer, got ${nnodes}`);
  if (!Number.isInteger(nodeRank) || nodeRank < 0 || nodeRank >= nnodes) throw new MisfmError('ARGUMENT', `--node-rank must be in 0..${nnodes - 1}, got ${nodeRank}`);
  if (nnodes > 1 && o.master === undefined) throw new MisfmError('ARGUMENT', '--master HOST:PORT is required with --nnodes > 1 (the address of node 0)');
  if (o.command.length === 0) throw new MisfmError('ARGUMENT', 'nothing to launch: give the misfm command after --, e.g. misfm launch --nproc 2 -- pretrain --data ...');
  if (o.command[0] === 'launch') throw new MisfmError('ARGUMENT', 'misfm launch cannot launch itself');
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const master = o.master ?? { host: '127.0.0.1', port: await freePort() };
  const threads = o.threads ?? Math.max(1, Math.floor(os.availableParallelism() / o.nproc));
  const world = nnodes * o.nproc;
  const bin = path.join(packageRoot(), 'bin', 'misfm.js');
  log(`misfm launch: ${o.nproc} rank(s) on this node (node ${nodeRank} of ${nnodes}, world size ${world}), ${threads} thread(s) each, rendezvous ${master.host}:${master.port}`);

  const children: { rank: number; proc: ChildProcess; done: boolean }[] = [];
  let failed: { rank: number; code: number } | null = null;
  let signalled = 0;
  let killTimer: NodeJS.Timeout | null = null;

  const stopOthers = (): void => {
    for (const c of children) if (!c.done) c.proc.kill('SIGTERM');
    killTimer ??= setTimeout(() => { for (const c of children) if (!c.done) c.proc.kill('SIGKILL'); }, o.killAfterMs ?? 30_000);
  };
  const onSignal = (sig: NodeJS.Signals): void => {
    signalled++;
    for (const c of children) if (!c.done) c.proc.kill(signalled > 1 ? 'SIGKILL' : sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    const exits: Promise<void>[] = [];
    for (let local = 0; local < o.nproc; local++) {
      const rank = nodeRank * o.nproc + local;
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        RANK: String(rank), WORLD_SIZE: String(world), LOCAL_RANK: String(local), LOCAL_WORLD_SIZE: String(o.nproc),
        MASTER_ADDR: master.host, MASTER_PORT: String(master.port), MISFM_NUM_THREADS: String(threads),
        OMP_NUM_THREADS: String(threads),
      };
      const proc = spawn(process.execPath, [bin, ...o.command], { env, stdio: 'inherit' });
      const entry = { rank, proc, done: false };
      children.push(entry);
      log(`misfm launch: rank ${rank} started (pid ${proc.pid})`);
      exits.push(new Promise((resolve) => {
        proc.on('exit', (code, signal) => {
          entry.done = true;
          if ((code !== 0 || signal !== null) && failed === null && signalled === 0) {
            failed = { rank, code: code ?? 128 + (signal !== null ? os.constants.signals[signal] ?? 1 : 1) };
            log(`misfm launch: rank ${rank} (pid ${proc.pid}) ${describeExit(code, signal)}; stopping the other ranks`);
            stopOthers();
          } else if (signalled > 0 && failed === null && code !== 0 && code !== 130) {
            failed = { rank, code: code ?? 1 };
          }
          resolve();
        });
        proc.on('error', (err) => {
          entry.done = true;
          if (failed === null) { failed = { rank, code: 1 }; log(`misfm launch: rank ${rank} could not start: ${err.message}`); stopOthers(); }
          resolve();
        });
      }));
    }
    await Promise.all(exits);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (killTimer !== null) clearTimeout(killTimer);
  }
  const f = failed as { rank: number; code: number } | null;
  if (f !== null) return { exitCode: f.code === 0 ? 1 : f.code, failedRank: f.rank };
  return { exitCode: signalled > 0 ? 130 : 0, failedRank: null };
}
