#!/usr/bin/env node
// Thin launcher: the CLI is compiled TypeScript under dist/.
//
// glibc serves allocations above its mmap threshold with fresh mmap'ed pages, so every large 3D
// activation is page-faulted and zeroed again on each op: measured 3.4x slower PCT-Net training
// (PyTorch suffers the same). Raising the thresholds must happen before the process starts, so the
// launcher re-executes itself once with them unless the user set them.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

if (process.env.MALLOC_MMAP_THRESHOLD_ === undefined && process.env.MISFM_NO_MALLOC_TUNING === undefined) {
  const env = { ...process.env, MALLOC_MMAP_THRESHOLD_: '17179869184', MALLOC_TRIM_THRESHOLD_: '17179869184' };
  const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit', env });
  if (r.error) throw r.error;
  process.exit(r.status ?? (r.signal ? 128 + 15 : 1));
}
const { main } = await import('../dist/src/cli/main.js');
process.exitCode = await main(process.argv.slice(2));
