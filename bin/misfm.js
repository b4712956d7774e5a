#!/usr/bin/env node
// Thin launcher: the CLI is compiled TypeScript under dist/.
//
// Allocator settings must be in place before the process starts, so the launcher re-executes
// itself once with them (unless the user chose their own, or set MISFM_NO_MALLOC_TUNING):
// - jemalloc (Debian libjemalloc2, installed by scripts/setup.sh) with purging off: freed 3D
//   activations are reused without fresh page faults, and its size classes keep a training run's
//   footprint flat (small-preset pretraining: ~1.6 GB, steady).
// - otherwise glibc with the mmap/trim thresholds raised: as fast (glibc would mmap and zero every
//   large activation again on each op: 3.4x slower PCT-Net training), but its heap fragments and
//   grows over a long run (measured 2 GB -> 16 GB over 300 small-preset iterations).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { allocatorEnv } from './allocator.js';

if (process.env.MISFM_ALLOCATOR_SET === undefined && process.env.MISFM_NO_MALLOC_TUNING === undefined) {
  const env = { ...process.env, ...allocatorEnv(process.env, existsSync), MISFM_ALLOCATOR_SET: '1' };
  const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit', env });
  if (r.error) throw r.error;
  process.exit(r.status ?? (r.signal ? 128 + 15 : 1));
}
const { main } = await import('../dist/src/cli/main.js');
process.exitCode = await main(process.argv.slice(2));
