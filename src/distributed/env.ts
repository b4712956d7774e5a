/**
 * The launch contract: torchrun's and SLURM's environment variables, read the same way by every
 * misfm command. A process with no WORLD_SIZE (or WORLD_SIZE=1) is a plain single process.
 */
import { MisfmError } from '../util/errors.js';

/** Where this process stands in a distributed run. */
export interface DistEnv {
  rank: number;
  worldSize: number;
  /** Rank on this node (chooses the GPU on CUDA). */
  localRank: number;
  localWorldSize: number;
  /** Rendezvous: rank 0 hosts the TCPStore at masterAddr:masterPort. */
  masterAddr: string;
  masterPort: number;
}

export const DEFAULT_MASTER_PORT = 29500;

function intVar(env: NodeJS.ProcessEnv, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d+$/.test(raw.trim()) || Number(raw) < min || Number(raw) > max) {
    throw new MisfmError('DISTRIBUTED', `environment variable ${name}=${JSON.stringify(raw)} must be an integer from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : ''}`);
  }
  return Number(raw);
}

/**
 * Reads RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT. Under SLURM
 * (srun) the SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID/SLURM_NTASKS_PER_NODE equivalents are used
 * when the torchrun names are absent. Returns null for a single process.
 */
export function readDistEnv(env: NodeJS.ProcessEnv = process.env): DistEnv | null {
  const slurm = env['SLURM_PROCID'] !== undefined && env['WORLD_SIZE'] === undefined && env['SLURM_NTASKS'] !== undefined;
  const get = (torch: string, sl: string): string | undefined => env[torch] ?? (slurm ? env[sl] : undefined);
  const view: NodeJS.ProcessEnv = {
    WORLD_SIZE: get('WORLD_SIZE', 'SLURM_NTASKS'), RANK: get('RANK', 'SLURM_PROCID'), LOCAL_RANK: get('LOCAL_RANK', 'SLURM_LOCALID'),
    LOCAL_WORLD_SIZE: get('LOCAL_WORLD_SIZE', 'SLURM_NTASKS_PER_NODE')?.replace(/\(.*$/, ''), MASTER_PORT: env['MASTER_PORT'],
  };
  const worldSize = intVar(view, 'WORLD_SIZE', 1);
  if (worldSize === undefined || worldSize === 1) return null;
  const rank = intVar(view, 'RANK', 0, worldSize - 1);
  if (rank === undefined) throw new MisfmError('DISTRIBUTED', `WORLD_SIZE=${worldSize} is set but RANK is not (use 'misfm launch', torchrun or srun)`);
  const localRank = intVar(view, 'LOCAL_RANK', 0) ?? rank;
  const localWorldSize = intVar(view, 'LOCAL_WORLD_SIZE', 1) ?? worldSize;
  const masterAddr = env['MASTER_ADDR'] ?? (worldSize === localWorldSize ? '127.0.0.1' : undefined);
  if (masterAddr === undefined || masterAddr === '') {
    throw new MisfmError('DISTRIBUTED', 'MASTER_ADDR is not set: a run over several nodes needs the address of the node that hosts rank 0');
  }
  const masterPort = intVar(view, 'MASTER_PORT', 1, 65535) ?? DEFAULT_MASTER_PORT;
  return { rank, worldSize, localRank, localWorldSize, masterAddr, masterPort };
}
