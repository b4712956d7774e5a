/**
 * Build the native addon with node-gyp, where the package lives when that folder is writable,
 * else into the per-user cache that the loader also searches (../engine/native.ts). Works from
 * an npm install: node-gyp is taken from the package's own dependencies when present, else from
 * the npm that runs us (npm ships one), and Node's headers from the system when node-gyp has
 * none cached (no download needed).
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, copyFileSync, cpSync, existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { MisfmError } from '../util/errors.js';
import { packageRoot, userAddonDir } from '../engine/native.js';

/** node-gyp's CLI script: the package's own, npm's bundled one, or undefined. */
export function findNodeGyp(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const require = createRequire(path.join(packageRoot(), 'package.json'));
  try { return require.resolve('node-gyp/bin/node-gyp.js'); } catch { /* not a dependency here */ }
  const candidates: string[] = [];
  const npmCli = env['npm_execpath'];
  if (npmCli !== undefined) candidates.push(path.join(path.dirname(npmCli), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  const prefix = path.dirname(path.dirname(process.execPath));
  candidates.push(path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  candidates.push(path.join(prefix, 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  return candidates.find((c) => existsSync(c));
}

const writable = (dir: string): boolean => {
  try { accessSync(dir, constants.W_OK); return true; } catch { return false; }
};

export interface BuildResult { file: string; where: 'package' | 'user cache'; seconds: number }

/**
 * Compile the addon. `target` 'auto' builds in the package when its native/ folder is writable,
 * else in the user cache. Output of the compiler goes to `log`. Throws a MisfmError (code
 * 'ENGINE') saying what failed.
 */
export function buildAddon(opts: { target?: 'auto' | 'package' | 'user'; log?: (line: string) => void; env?: NodeJS.ProcessEnv } = {}): BuildResult {
  const env = opts.env ?? process.env;
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const srcDir = path.join(packageRoot(), 'native');
  if (!existsSync(path.join(srcDir, 'binding.gyp'))) throw new MisfmError('ENGINE', `the addon's sources are missing (${srcDir}/binding.gyp)`);
  const gyp = findNodeGyp(env);
  if (gyp === undefined) throw new MisfmError('ENGINE', 'node-gyp was not found (neither installed with misfm nor bundled with npm); run: npm install -g node-gyp, then misfm setup again');
  const target = opts.target ?? 'auto';
  const inPackage = target === 'package' || (target === 'auto' && writable(srcDir));
  let buildDir = srcDir;
  const userDir = userAddonDir(env);
  if (!inPackage) {
    buildDir = path.join(userDir, 'build-src');
    rmSync(buildDir, { recursive: true, force: true });
    mkdirSync(buildDir, { recursive: true });
    for (const f of ['binding.gyp', 'config.cjs', 'src']) cpSync(path.join(srcDir, f), path.join(buildDir, f), { recursive: true });
  }
  // binding.gyp asks node for node-addon-api's include folder: make it resolvable from a cache copy too.
  const require = createRequire(path.join(packageRoot(), 'package.json'));
  let addonApiParent: string | undefined;
  try { addonApiParent = path.dirname(path.dirname(require.resolve('node-addon-api/package.json'))); } catch { /* reported by the build */ }
  const childEnv: NodeJS.ProcessEnv = { ...env };
  if (addonApiParent !== undefined) childEnv['NODE_PATH'] = [addonApiParent, env['NODE_PATH']].filter((x) => x !== undefined && x !== '').join(path.delimiter);
  const args = [gyp, 'rebuild', '--jobs', 'max', '--loglevel=error'];
  // Node's headers: node-gyp would download them unless cached or given; the system has them when Node came from a package.
  const cachedHeaders = path.join(env['XDG_CACHE_HOME'] ?? path.join(os.homedir(), '.cache'), 'node-gyp', process.versions.node, 'include', 'node', 'node_api.h');
  const sysPrefix = path.dirname(path.dirname(process.execPath));
  if (env['npm_config_nodedir'] === undefined && !existsSync(cachedHeaders) && existsSync(path.join(sysPrefix, 'include', 'node', 'node_api.h'))) {
    args.push(`--nodedir=${sysPrefix}`);
  }
  log(`building the native addon in ${buildDir} (node-gyp, about a minute)`);
  const t0 = Date.now();
  const r = spawnSync(process.execPath, args, { cwd: buildDir, env: childEnv, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) {
    const tail = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-15).join('\n');
    throw new MisfmError('ENGINE', `building the native addon failed (node-gyp exit ${r.status ?? r.signal}):\n${tail}`);
  }
  const built = path.join(buildDir, 'build', 'Release', 'misfm_native.node');
  if (!existsSync(built)) throw new MisfmError('ENGINE', `node-gyp finished but ${built} is missing`);
  let file = built;
  if (!inPackage) {
    mkdirSync(userDir, { recursive: true });
    file = path.join(userDir, 'misfm_native.node');
    const tmp = `${file}.tmp-${process.pid}`;
    copyFileSync(built, tmp);
    renameSync(tmp, file);
    rmSync(buildDir, { recursive: true, force: true });
  }
  return { file, where: inPackage ? 'package' : 'user cache', seconds: (Date.now() - t0) / 1000 };
}
