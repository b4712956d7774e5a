/**
 * What misfm needs on a machine, checked without loading the engine: the system packages
 * (libtorch, OpenBLAS, jemalloc, a C++ tool chain), Node.js, and a built native addon in one of
 * the places the loader looks (../engine/native.ts). `misfm doctor` reports these and the one
 * command that fixes them; `misfm setup` installs and builds what is missing.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { addonCandidates, packageRoot } from '../engine/native.js';

export interface Requirement {
  name: string;
  ok: boolean;
  /** What was found, or what is missing. */
  detail: string;
  /** Debian packages that provide it (installed by `misfm setup` as root). */
  aptPackages: string[];
}

const dpkgInstalled = (pkg: string): boolean => spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' }).stdout?.includes('install ok installed') === true;
const hasCommand = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

/** Whether this is a Debian-like system whose packages misfm can name. */
export function hasDpkg(): boolean {
  return hasCommand('dpkg-query');
}

/** The system requirements (apt packages and tools). LIBTORCH=/path replaces Debian's libtorch. */
export function systemRequirements(env: NodeJS.ProcessEnv = process.env): Requirement[] {
  const out: Requirement[] = [];
  const node = Number(process.versions.node.split('.')[0]);
  out.push({ name: 'Node.js >= 20', ok: node >= 20, detail: `node ${process.version}`, aptPackages: [] });
  const dpkg = hasDpkg();
  const pkg = (name: string, what: string, packages: string[], ok?: boolean): void => {
    const good = ok ?? (dpkg && packages.every(dpkgInstalled));
    out.push({ name, ok: good, detail: good ? `${what}: installed` : `${what}: missing (${packages.join(', ')})`, aptPackages: good ? [] : packages });
  };
  const libtorch = env['LIBTORCH'];
  if (libtorch !== undefined && libtorch !== '') {
    const ok = existsSync(path.join(libtorch, 'lib', 'libtorch.so'));
    out.push({ name: 'libtorch', ok, detail: ok ? `LIBTORCH=${libtorch}` : `LIBTORCH=${libtorch} has no lib/libtorch.so`, aptPackages: [] });
  } else {
    pkg('libtorch', 'libtorch (Debian libtorch-dev)', ['libtorch-dev']);
    pkg('OpenBLAS', 'OpenBLAS, pthread build (fast matrix products for libtorch)', ['libopenblas0-pthread']);
  }
  pkg('jemalloc', 'jemalloc (flat memory over long runs)', ['libjemalloc2']);
  pkg('C++ compiler', 'g++ and make (to build the addon)', ['g++', 'make'], hasCommand('g++') && hasCommand('make'));
  pkg('python3', 'python3 (node-gyp runs it)', ['python3'], hasCommand('python3'));
  return out;
}

/** The addon: where it was found, or every place the loader looks. */
export function addonRequirement(): Requirement {
  const c = addonCandidates();
  const found = c.find((f) => existsSync(f));
  return found !== undefined
    ? { name: 'native addon', ok: true, detail: found, aptPackages: [] }
    : { name: 'native addon', ok: false, detail: `not built (looked in ${c.join(', ')})`, aptPackages: [] };
}

/** Whether misfm runs from a git clone (scripts/setup.sh beside it) rather than an npm install. */
export function isClone(): boolean {
  return existsSync(path.join(packageRoot(), 'scripts', 'setup.sh')) && existsSync(path.join(packageRoot(), '.git'));
}

/** The apt command that installs `packages` (sudo unless root). */
export function aptCommand(packages: readonly string[]): string {
  const sudo = process.getuid?.() === 0 ? '' : 'sudo ';
  return `${sudo}apt-get update && ${sudo}DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${packages.join(' ')}`;
}

/** The one command that fixes `missing` (apt first when not root, then the build). */
export function fixCommand(missing: readonly Requirement[]): string {
  const setup = isClone() ? 'bash scripts/setup.sh' : 'npx misfm setup';
  const apt = [...new Set(missing.flatMap((r) => r.aptPackages))];
  if (apt.length > 0 && process.getuid?.() !== 0) return `${aptCommand(apt)} && ${setup}`;
  return setup;
}
