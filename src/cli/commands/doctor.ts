/** `misfm doctor`: what engine misfm runs on and what this machine offers. */
import os from 'node:os';
import type { Command } from '../command.js';
import { native } from '../../engine/native.js';
import { VERSION } from '../../version.js';
import { cpuBf16Support, resolvePrecision } from '../../engine/precision.js';
import { addonRequirement, fixCommand, systemRequirements, type Requirement } from '../../setup/requirements.js';

export interface DoctorReport {
  misfm: string;
  node: string;
  torch: string;
  buildType: string;
  cpuCapability: string;
  onednn: string;
  openmp: boolean;
  cuda: { available: boolean; devices: number };
  threads: { intraOp: number; cores: number };
  cpu: string;
  /** The memory allocator of this process (see bin/misfm.js). */
  allocator: string;
  /** What --precision auto picks here, and why (MISFM_CPU_BF16=0/1 overrides the CPU detection). */
  precision: { auto: 'fp32' | 'bf16'; reason: string; cpuBf16: string[] };
  /** c10d backends this addon can create (misfm launch / --nproc). */
  distributed: { gloo: boolean; nccl: boolean };
}

/** Collect the engine facts (loads the addon). */
export function doctorReport(): DoctorReport {
  const n = native();
  const info = n.info();
  const cfg = info.config;
  const grab = (re: RegExp): string => re.exec(cfg)?.[1]?.trim() ?? 'unknown';
  return {
    misfm: VERSION,
    node: process.version,
    torch: info.torchVersion,
    buildType: grab(/BUILD_TYPE=([^,\n]+)/),
    cpuCapability: grab(/CPU capability usage:\s*([^\n]+)/),
    onednn: info.mkldnnAvailable ? grab(/(?:Intel\(R\) MKL-DNN|oneDNN)\s*v?([\d.]+[^\n(]*)/) : 'not available',
    openmp: /OpenMP/.test(info.parallel),
    cuda: { available: info.cudaAvailable, devices: info.cudaDeviceCount },
    threads: { intraOp: n.getNumThreads(), cores: os.availableParallelism() },
    cpu: os.cpus()[0]?.model ?? 'unknown',
    allocator: allocatorInUse(process.env),
    precision: autoPrecision(info.cudaAvailable),
    distributed: n.distBackends(),
  };
}

/** What `--precision auto` resolves to on this machine (CPU unless a CUDA device exists). */
export function autoPrecision(cuda: boolean, env: NodeJS.ProcessEnv = process.env): DoctorReport['precision'] {
  const cpu = cpuBf16Support(env);
  const r = resolvePrecision('auto', cuda ? 'cuda' : 'cpu', env);
  return { auto: r.precision, reason: r.reason, cpuBf16: cpu.flags };
}

/** What misfm needs and does not find (empty when ready). */
export function missingRequirements(): Requirement[] {
  return [...systemRequirements(), addonRequirement()].filter((r) => !r.ok);
}

/** Which allocator this process runs under (bin/misfm.js chooses it at start-up). */
export function allocatorInUse(env: NodeJS.ProcessEnv): string {
  if (env['LD_PRELOAD']?.includes('jemalloc') === true) return `jemalloc (${env['MALLOC_CONF'] ?? 'default settings'})`;
  if (env['MALLOC_MMAP_THRESHOLD_'] !== undefined) return `glibc, mmap threshold ${env['MALLOC_MMAP_THRESHOLD_']}, trim threshold ${env['MALLOC_TRIM_THRESHOLD_'] ?? 'default'}`;
  return 'glibc defaults (large tensors are mmap-ed and page-faulted on every op: slower; see bin/misfm.js)';
}

export const doctorCommand: Command = {
  name: 'doctor',
  summary: 'show the engine (libtorch version, build, devices, threads, CPU capability)',
  usage: 'Usage: misfm doctor [--json]\n\nChecks what misfm needs (system packages, the native addon) and, when something is missing,\nsays what and prints the one command that fixes it (exit 1). Otherwise prints the libtorch\nversion and build type, CPU vector capability (AVX2/AVX-512), oneDNN availability, CUDA devices\nand the intra-op thread count (MISFM_NUM_THREADS overrides).',
  async run(argv) {
    const missing = missingRequirements();
    if (missing.length > 0) {
      const fix = fixCommand(missing);
      if (argv.includes('--json')) {
        process.stdout.write(JSON.stringify({ ok: false, missing: missing.map((m) => ({ name: m.name, detail: m.detail, aptPackages: m.aptPackages })), fix }, null, 2) + '\n');
        return 1;
      }
      process.stdout.write(`misfm ${VERSION}: not ready\n${missing.map((m) => `  missing: ${m.detail}`).join('\n')}\nfix: ${fix}\n`);
      return 1;
    }
    const r = doctorReport();
    if (argv.includes('--json')) { process.stdout.write(JSON.stringify(r, null, 2) + '\n'); return 0; }
    const rows: [string, string][] = [
      ['misfm', r.misfm], ['node', r.node], ['libtorch', `${r.torch} (${r.buildType})`],
      ['cpu', `${r.cpu}; capability ${r.cpuCapability}`], ['oneDNN', r.onednn], ['OpenMP', r.openmp ? 'yes' : 'no'],
      ['cuda', r.cuda.available ? `${r.cuda.devices} device(s)` : 'not available in this libtorch build'],
      ['threads', `${r.threads.intraOp} intra-op (of ${r.threads.cores} cores)`],
      ['allocator', r.allocator],
      ['precision', `auto = ${r.precision.auto} (${r.precision.reason}); default fp32`],
      ['addon', addonRequirement().detail],
      ['distributed', `c10d ${[r.distributed.gloo ? 'Gloo (CPU)' : '', r.distributed.nccl ? 'NCCL (CUDA)' : ''].filter((x) => x !== '').join(', ') || 'none'}` +
        `${r.distributed.nccl ? '' : '; NCCL needs a CUDA LibTorch build (README, GPU section)'}`],
    ];
    const w = Math.max(...rows.map(([k]) => k.length));
    for (const [k, v] of rows) process.stdout.write(`${k.padEnd(w)}  ${v}\n`);
    return 0;
  },
};
