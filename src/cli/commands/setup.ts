/**
 * `misfm setup`: what scripts/setup.sh does for a clone, for an npm install: system packages
 * (apt, when root; otherwise the exact command to run), the OpenBLAS choice, and the native
 * addon, built where the package lives or into the per-user cache the loader searches.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readlinkSync, realpathSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Command } from '../command.js';
import { MisfmError } from '../../util/errors.js';
import { addonRequirement, aptCommand, hasDpkg, systemRequirements } from '../../setup/requirements.js';
import { buildAddon } from '../../setup/build-addon.js';

const USAGE = `Usage: misfm setup [--rebuild] [--user-cache] [--dry-run]

Install what misfm needs and build its native engine:
  1. Debian packages: libtorch-dev, libopenblas0-pthread, libjemalloc2, g++, make, python3
     (apt-get when run as root; otherwise prints the exact command to run first).
     LIBTORCH=/path/to/libtorch uses that LibTorch instead of Debian's.
  2. libblas.so.3 pointed at OpenBLAS-pthread (root only; see ARCHITECTURE.md for why).
  3. The native addon (node-gyp, about a minute): built in the package when its folder is
     writable, else in ~/.cache/misfm (MISFM_CACHE_DIR or XDG_CACHE_HOME move it), where misfm
     finds it too.
Idempotent: what is there is kept.

Options:
  --rebuild      build the addon again even if one is found
  --user-cache   build into the per-user cache even if the package folder is writable
  --dry-run      print what would be done and change nothing
`;

const BLAS = '/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3';
const BLAS_LINK = '/etc/alternatives/libblas.so.3-x86_64-linux-gnu';

export async function runSetup(argv: string[], out: (s: string) => void): Promise<number> {
  const { values: v } = parseArgs({ args: argv, options: { rebuild: { type: 'boolean' }, 'user-cache': { type: 'boolean' }, 'dry-run': { type: 'boolean' } }, strict: true });
  const dry = v['dry-run'] === true;
  const root = process.getuid?.() === 0;
  // 1. System packages.
  const missing = systemRequirements().filter((r) => !r.ok);
  const apt = [...new Set(missing.flatMap((r) => r.aptPackages))];
  const other = missing.filter((r) => r.aptPackages.length === 0);
  if (other.length > 0) throw new MisfmError('ENGINE', `cannot continue: ${other.map((r) => r.detail).join('; ')}`);
  if (apt.length > 0) {
    if (!hasDpkg()) {
      throw new MisfmError('ENGINE', `not a Debian/Ubuntu system: install LibTorch (and set LIBTORCH=/path/to/libtorch), a C++ compiler, make and python3, then run misfm setup again (missing: ${apt.join(', ')})`);
    }
    const cmd = aptCommand(apt);
    if (!root) {
      out(`misfm setup: system packages missing: ${apt.join(', ')}\nRun this first (needs root), then 'npx misfm setup' again:\n  ${cmd}\n`);
      return 1;
    }
    out(`misfm setup: installing ${apt.join(', ')} (apt)\n`);
    if (!dry) {
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
      for (const args of [['update', '-qq'], ['install', '-y', '-qq', '--no-install-recommends', ...apt]]) {
        const r = spawnSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env });
        if (r.status !== 0) throw new MisfmError('ENGINE', `apt-get ${args[0]} failed (exit ${r.status}); run it yourself: ${cmd}`);
      }
    }
  } else {
    out('misfm setup: system packages present\n');
  }
  // 2. OpenBLAS-pthread for libblas (as scripts/setup.sh).
  if (process.env['LIBTORCH'] === undefined && existsSync(BLAS)) {
    let current = '';
    try { current = realpathSync(readlinkSync(BLAS_LINK)); } catch { /* no alternative yet */ }
    if (current !== BLAS) {
      const cmd = `update-alternatives --set libblas.so.3-x86_64-linux-gnu ${BLAS}`;
      if (!root) out(`misfm setup: note: libblas is not OpenBLAS-pthread (matrix products will be slow); as root run: ${cmd}\n`);
      else {
        out('misfm setup: pointing libblas at OpenBLAS-pthread\n');
        if (!dry && spawnSync('update-alternatives', ['--set', 'libblas.so.3-x86_64-linux-gnu', BLAS], { stdio: 'ignore' }).status !== 0) {
          out(`misfm setup: warning: could not run ${cmd}\n`);
        }
      }
    }
  }
  // 3. The addon.
  const addon = addonRequirement();
  if (addon.ok && v.rebuild !== true) {
    out(`misfm setup: native addon present (${addon.detail})\n`);
  } else if (dry) {
    out(`misfm setup: would build the native addon (${v['user-cache'] === true ? 'user cache' : 'package folder if writable, else user cache'})\n`);
  } else {
    const b = buildAddon({ target: v['user-cache'] === true ? 'user' : 'auto', log: (l) => out(`misfm setup: ${l}\n`) });
    out(`misfm setup: built ${b.file} (${b.where}) in ${b.seconds.toFixed(0)} s\n`);
  }
  if (dry) return 0;
  // 4. Check it loads (in a child: a failed dlopen must not take this process with it).
  const check = spawnSync(process.execPath, ['--input-type=module', '-e',
    `const m = await import(${JSON.stringify(new URL('../../engine/native.js', import.meta.url).href)}); console.log(m.native().info().torchVersion);`], { encoding: 'utf8' });
  if (check.status !== 0) throw new MisfmError('ENGINE', `the addon was built but does not load: ${(check.stderr || check.stdout).trim().split('\n').slice(-3).join(' ')}`);
  out(`misfm setup: ready (libtorch ${check.stdout.trim()}); 'npx misfm doctor' shows the details\n`);
  return 0;
}

export const setupCommand: Command = {
  name: 'setup',
  summary: 'install the system packages misfm needs (apt, as root) and build its native engine',
  usage: USAGE,
  run: (argv) => runSetup(argv, (s) => process.stdout.write(s)),
};
