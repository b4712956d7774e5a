/** Shared helpers of the checkpoint tests: paths, the Python oracle, canonical values. */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { typedView, type RawTensor } from '../../src/engine/dtype.js';
import { PyDict, PyFloat, PyTuple, isRawTensor, type PyValue } from '../../src/io/checkpoint/pyvalue.js';

/** Repository root: the nearest folder above this file with a package.json (works from dist/ too). */
export const repoRoot: string = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('package.json not found above the test file');
    dir = up;
  }
  return dir;
})();

export const sharedDir = path.resolve(repoRoot, '../shared');
export const fixtureDir = path.join(sharedDir, 'fixtures', 'pctnet_small');
export const PYTHON = '/usr/bin/python3';
export const interopScript = path.join(repoRoot, 'test', 'io', 'py', 'torch_interop.py');

/** A fresh temp folder, removed at process exit. */
export function tempDir(tag: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `misfm-${tag}-`));
  process.on('exit', () => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

/** True when /usr/bin/python3 can import torch (then the interop checks must run). */
export function torchAvailable(): boolean {
  const r = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' });
  return r.status === 0;
}

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Run one job of the Python oracle (see torch_interop.py) and return its JSON answer. */
export function runPython(job: Record<string, unknown>): Record<string, Json> {
  const r = spawnSync(PYTHON, [interopScript, JSON.stringify(job)], { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`python oracle failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, Json>;
}

export function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** The canonical form torch_interop.py's canon() produces, computed from a misfm value. */
export function canonical(v: PyValue): Json {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return v;
  if (v instanceof PyFloat) return canonical(v.value);
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return { float: 'nan' };
    if (!Number.isFinite(v)) return { float: v > 0 ? 'inf' : '-inf' };
    return v;
  }
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : { bigint: String(v) };
  if (v instanceof Uint8Array) return { bytes: Buffer.from(v).toString('hex') };
  if (Array.isArray(v)) return v.map(canonical);
  if (v instanceof PyTuple) return { tuple: v.items.map(canonical) };
  if (v instanceof PyDict) return { dict: [...v].map(([k, x]) => [canonical(k), canonical(x)]), ordered: v.ordered };
  if (v instanceof Set) {
    const items = [...v].map((x) => canonical(x));
    items.sort((a, b) => (typeof a === 'number' && typeof b === 'number' ? a - b : String(a) < String(b) ? -1 : 1));
    return { set: items };
  }
  if (isRawTensor(v)) return { tensor: { dtype: v.dtype, shape: v.shape, sha256: sha256(v.data) } };
  throw new Error('no canonical form');
}

function halfToNumber(h: number, bf16: boolean): number {
  if (bf16) {
    const b = new DataView(new ArrayBuffer(4));
    b.setUint32(0, h << 16);
    return b.getFloat32(0);
  }
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? Number.NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Sum of a tensor's elements in float64. */
export function tensorSum(t: RawTensor): number {
  const a = typedView(t.dtype, t.data);
  let s = 0;
  for (const x of a) {
    if (typeof x === 'bigint') s += Number(x);
    else if (t.dtype === 'float16' || t.dtype === 'bfloat16') s += halfToNumber(x, t.dtype === 'bfloat16');
    else s += x;
  }
  return s;
}

/** Float32 tensor from numbers. */
export function f32(shape: number[], values: number[]): RawTensor {
  return { dtype: 'float32', shape, data: new Uint8Array(Float32Array.from(values).buffer) };
}

/** Int64 tensor from numbers. */
export function i64(shape: number[], values: number[]): RawTensor {
  return { dtype: 'int64', shape, data: new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer) };
}
