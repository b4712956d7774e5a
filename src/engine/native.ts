/**
 * The one place that knows the native addon: its typed interface and how it is loaded.
 * Everything else talks to libtorch through ./tensor.ts and ./call.ts.
 */
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import os from 'node:os';
import { MisfmError } from '../util/errors.js';

/** Opaque native tensor handle (a napi External). */
export type Handle = { readonly __brand: 'misfm-tensor-handle' };

/** Opaque native c10d process-group handle. */
export type GroupHandle = { readonly __brand: 'misfm-process-group' };

/** Every function the addon exports. Keep in sync with native/src/*.cc. */
export interface NativeBinding {
  opId(name: string, overload: string): number;
  opSchema(id: number): string;
  call(id: number, args: unknown[]): unknown;
  fromBytes(view: ArrayBufferView, dtypeCode: number, shape: readonly number[]): Handle;
  toBytes(h: Handle): ArrayBuffer;
  copyInto(h: Handle, view: ArrayBufferView): void;
  meta(h: Handle): [number[], number, string, boolean, boolean];
  shape(h: Handle): number[];
  dispose(h: Handle): void;
  isDisposed(h: Handle): boolean;
  liveCount(): number;
  setRequiresGrad(h: Handle, flag: boolean): void;
  grad(h: Handle): Handle | null;
  setGrad(h: Handle, g: Handle | null): void;
  setData(h: Handle, source: Handle): void;
  backward(outputs: Handle[], grads: (Handle | null)[], retainGraph: boolean): void;
  setGradEnabled(flag: boolean): boolean;
  isGradEnabled(): boolean;
  manualSeed(seed: number): void;
  getRngState(): Handle;
  setRngState(h: Handle): void;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  setRecomputeCallback(fn: (id: number, inputs: Handle[], grads: (Handle | null)[]) => (Handle | null)[]): void;
  attachRecompute(inputs: Handle[], outputs: Handle[], id: number): Handle[];
  // c10d (native/src/dist.cc): see src/dist/group.ts.
  distInit(o: { host: string; port: number; rank: number; worldSize: number; timeoutMs: number; backend: string }): Promise<GroupHandle>;
  distAllReduce(g: GroupHandle, t: Handle, op: string): Promise<void>;
  distAllReduceBlocking(g: GroupHandle, t: Handle, op: string): void;
  distBroadcast(g: GroupHandle, t: Handle, root: number): Promise<void>;
  distAllGather(g: GroupHandle, t: Handle): Promise<Handle[]>;
  distBarrier(g: GroupHandle): Promise<void>;
  distDestroy(g: GroupHandle): void;
  distBackends(): { gloo: boolean; nccl: boolean };
  /** Start recording PyTorch's legacy op profiler; `profileStop` writes the chrome trace to `path`. */
  profileStart(path: string): void;
  profileStop(): void;
  info(): {
    torchVersion: string; config: string; parallel: string; cudaAvailable: boolean;
    cudaDeviceCount: number; mkldnnAvailable: boolean; numThreads: number;
  };
}

const here = path.dirname(fileURLToPath(import.meta.url));

/** Repository root: this file lives in src/engine (sources) or dist/src/engine (compiled). */
export function packageRoot(): string {
  let dir = here;
  for (let i = 0; i < 5; i++) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    dir = path.dirname(dir);
  }
  return path.resolve(here, '../../..');
}

let binding: NativeBinding | undefined;

/**
 * The per-user folder for an addon built outside the package (a read-only or shared install):
 * $MISFM_CACHE_DIR, else $XDG_CACHE_HOME/misfm, else ~/.cache/misfm; one sub-folder per misfm
 * version, Node ABI and platform, so upgrades and other Node versions never load a stale build.
 */
export function userAddonDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env['MISFM_CACHE_DIR'] ?? path.join(env['XDG_CACHE_HOME'] ?? path.join(os.homedir(), '.cache'), 'misfm');
  return path.join(base, 'native', `${packageVersion()}-node${process.versions.modules}-${process.platform}-${process.arch}`);
}

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version?: string }).version ?? '0';
  } catch {
    return '0';
  }
}

/** Where the loader looks for the addon, in order: $MISFM_NATIVE_ADDON, the package's build folder, the per-user cache. */
export function addonCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  const list = [path.join(packageRoot(), 'native/build/Release/misfm_native.node'), path.join(userAddonDir(env), 'misfm_native.node')];
  const forced = env['MISFM_NATIVE_ADDON'];
  return forced !== undefined && forced !== '' ? [forced, ...list] : list;
}

/** Loads the addon once. Thread count defaults to all cores (MISFM_NUM_THREADS overrides). */
export function native(): NativeBinding {
  if (binding !== undefined) return binding;
  const candidates = addonCandidates();
  const file = candidates.find((f) => existsSync(f));
  if (file === undefined) {
    throw new MisfmError('ENGINE', `the native engine is not built (looked for ${candidates.join(', ')}). Run 'npx misfm setup' ` +
      `(installs libtorch-dev and the other system packages if needed and builds the addon; 'bash scripts/setup.sh' in a clone), ` +
      `or 'npx misfm doctor' to see what is missing.`);
  }
  const require = createRequire(import.meta.url);
  try {
    binding = require(file) as NativeBinding;
  } catch (err) {
    throw new MisfmError('ENGINE', `cannot load the native engine ${file}: ${(err as Error).message}. ` +
      `Is libtorch installed (apt-get install libtorch-dev, or LIBTORCH=/path at build time)?`, { cause: err });
  }
  const env = process.env['MISFM_NUM_THREADS'];
  const n = env !== undefined && /^\d+$/.test(env) ? Number(env) : os.availableParallelism();
  binding.setNumThreads(Math.max(1, n));
  return binding;
}
