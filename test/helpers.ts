/** Shared test utilities: paths to ../shared, PyTorch oracle, numeric comparison. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';

const here = path.dirname(fileURLToPath(import.meta.url));
/** Repository root (tests run from dist/test/...). */
export const repoRoot = ((): string => {
  let d = here;
  for (let i = 0; i < 6; i++) { if (existsSync(path.join(d, 'package.json'))) return d; d = path.dirname(d); }
  throw new Error('repo root not found');
})();
/** ../shared beside the checkout (CI provides it). */
export const sharedDir = path.resolve(repoRoot, '../shared');
export const fixturesDir = path.join(sharedDir, 'fixtures');
export const dataDir = path.join(sharedDir, 'data');

/** Read a fixture .bin described in a tensors.json as Float32Array (or the dtype given). */
export function readFixtureF32(file: string): Float32Array {
  const b = readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

let pyOk: boolean | undefined;
/** Whether Debian's PyTorch can be used as an oracle. */
export function hasPythonTorch(): boolean {
  if (pyOk === undefined) pyOk = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
  return pyOk;
}
/** Run a Python script with torch and parse its last stdout line as JSON. */
export function runPython(script: string, args: string[] = []): unknown {
  const r = spawnSync('/usr/bin/python3', ['-c', script, ...args], { encoding: 'utf8', maxBuffer: 256 << 20, env: { ...process.env, OMP_NUM_THREADS: '1' } });
  if (r.status !== 0) throw new Error(`python failed (${r.status}): ${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!);
}

/** Assert |a-b| <= atol + rtol*|b| elementwise, reporting the worst element. */
export function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, rtol = 1e-5, atol = 1e-6, what = 'values'): void {
  assert.equal(a.length, b.length, `${what}: length ${a.length} vs ${b.length}`);
  let worst = -1, worstErr = 0;
  for (let i = 0; i < a.length; i++) {
    const err = Math.abs(a[i]! - b[i]!) - (atol + rtol * Math.abs(b[i]!));
    if (!(err <= 0) && (worst < 0 || err > worstErr || Number.isNaN(err))) { worst = i; worstErr = err; }
  }
  if (worst >= 0) assert.fail(`${what}: element ${worst} differs: ${a[worst]} vs ${b[worst]} (rtol ${rtol}, atol ${atol})`);
}
