// Environment for the allocator misfm runs under (see bin/misfm.js). Shared by the launcher,
// scripts/test.sh (through `node bin/allocator.js`) and the benchmarks.

/** Where Debian's libjemalloc2 puts the library (amd64, arm64). */
export const JEMALLOC_PATHS = ['/usr/lib/x86_64-linux-gnu/libjemalloc.so.2', '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2'];

/** jemalloc: never purge dirty pages (like glibc's raised trim threshold), no separate arena for big blocks. */
export const JEMALLOC_CONF = 'oversize_threshold:0,dirty_decay_ms:-1,muzzy_decay_ms:-1';

/** glibc: serve every allocation from the heap and never trim it. */
export const GLIBC_TUNED = { MALLOC_MMAP_THRESHOLD_: '17179869184', MALLOC_TRIM_THRESHOLD_: '17179869184' };

/**
 * Variables to add to `env`: nothing when the user already chose (LD_PRELOAD, MALLOC_CONF or the
 * glibc thresholds set), jemalloc when present, else the tuned glibc thresholds.
 * @param {NodeJS.ProcessEnv} env
 * @param {(p: string) => boolean} exists
 * @returns {Record<string, string>}
 */
export function allocatorEnv(env, exists) {
  if (env.LD_PRELOAD || env.MALLOC_CONF !== undefined || env.MALLOC_MMAP_THRESHOLD_ !== undefined) return {};
  const je = JEMALLOC_PATHS.find((p) => exists(p));
  if (je !== undefined) return { LD_PRELOAD: je, MALLOC_CONF: JEMALLOC_CONF };
  return { ...GLIBC_TUNED };
}

// `node bin/allocator.js` prints the variables as shell exports (used by scripts/test.sh).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const [k, v] of Object.entries(allocatorEnv(process.env, existsSync))) process.stdout.write(`export ${k}='${v}'\n`);
}
