/**
 * Compute precision: an autocast-like policy chosen per op by the engine, not by casting the model.
 *
 * Under 'bf16' the compute-heavy ops (convolutions, transposed convolutions, linear layers,
 * matmul/bmm) take float32 inputs, run in bfloat16 and hand back float32. Everything else (batch /
 * layer / instance norm statistics, softmax, losses, pooling, accumulators) never sees a bfloat16
 * tensor, so it stays float32 exactly as autocast would keep it. Parameters and optimizer state stay
 * float32: the cast is part of the autograd graph, so gradients arrive in float32 (master weights).
 *
 * Why per op: whole-model bfloat16 fails in libtorch 1.13 (max_pool3d has no bfloat16 kernel) and
 * torch.cpu.amp.autocast stops at PCT-Net's layer_norm (engine-notes.md). Returning float32 after
 * each heavy op costs two memory-bound casts per op, small next to the op itself at 3D sizes.
 *
 * The policy is process-wide state (like grad mode). `withPrecision` restores it afterwards, also
 * for async functions; while such a function awaits, other code of the process runs under the same
 * policy, so one pipeline at a time should set it (the CLI commands do).
 */
import { readFileSync } from 'node:fs';
import { MisfmError } from '../util/errors.js';
import type { Tensor } from './tensor.js';

/** What ops compute in. */
export type Precision = 'fp32' | 'bf16';
/** What a user asks for: a precision, or 'auto' (bf16 only where the hardware has it natively). */
export type PrecisionChoice = Precision | 'auto';
export const PRECISION_CHOICES: readonly PrecisionChoice[] = ['fp32', 'bf16', 'auto'];

let active: Precision = 'fp32';

/** The precision heavy ops run in now. */
export function computePrecision(): Precision { return active; }

/** Set the policy; returns the previous one (restore it yourself, or use withPrecision). */
export function setComputePrecision(p: Precision): Precision {
  if (p !== 'fp32' && p !== 'bf16') throw new MisfmError('ARGUMENT', `precision must be fp32 or bf16, got '${String(p)}'`);
  const prev = active;
  active = p;
  return prev;
}

/** Run fn under precision p and restore the previous policy when it returns (or its promise settles). */
export function withPrecision<T>(p: Precision, fn: () => T): T {
  const prev = setComputePrecision(p);
  let result: T;
  try {
    result = fn();
  } catch (err) {
    active = prev;
    throw err;
  }
  if (result instanceof Promise) {
    return result.finally(() => { active = prev; }) as T;
  }
  active = prev;
  return result;
}

/** True when a float32 tensor entering a heavy op should be computed in bfloat16. */
export function lowPrecisionFor(dtype: string): boolean {
  return active === 'bf16' && dtype === 'float32';
}

/**
 * Run a heavy op in bfloat16: cast the (float32) tensor arguments, call `run` with the casts, and
 * return its result as float32. The casts are released at once (autograd keeps what it needs).
 */
export function runInBf16(inputs: readonly (Tensor | null)[], run: (cast: (Tensor | null)[]) => Tensor): Tensor {
  const cast = inputs.map((t) => (t === null ? null : t.dtype === 'bfloat16' ? t : t.to('bfloat16')));
  try {
    const y = run(cast);
    try { return y.to('float32'); } finally { y.dispose(); }
  } finally {
    cast.forEach((c, i) => { if (c !== null && c !== inputs[i]) c.dispose(); });
  }
}

/** Native bfloat16 support of this CPU, as `auto` sees it. */
export interface Bf16Support {
  native: boolean;
  /** The CPU flags found (avx512_bf16, amx_bf16), or the override. */
  flags: string[];
  reason: string;
}

let cpuFlagsCache: string[] | null = null;
function cpuFlags(): string[] {
  if (cpuFlagsCache !== null) return cpuFlagsCache;
  let flags: string[] = [];
  try {
    const text = readFileSync('/proc/cpuinfo', 'utf8');
    const line = /^flags\s*:(.*)$/m.exec(text)?.[1] ?? '';
    flags = line.trim().split(/\s+/);
  } catch {
    flags = []; // not Linux: no way to tell, treated as no native bf16
  }
  cpuFlagsCache = flags;
  return flags;
}

/**
 * Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16). The environment variable
 * MISFM_CPU_BF16=0 (or 1) overrides the detection, e.g. to check the fp32 fallback of `auto` on a
 * machine that has bf16.
 */
export function cpuBf16Support(env: NodeJS.ProcessEnv = process.env): Bf16Support {
  const o = env['MISFM_CPU_BF16'];
  if (o === '0' || o === '1') {
    return { native: o === '1', flags: [`MISFM_CPU_BF16=${o}`], reason: `MISFM_CPU_BF16=${o} overrides the CPU detection` };
  }
  const found = cpuFlags().filter((f) => f === 'avx512_bf16' || f === 'amx_bf16');
  return found.length > 0
    ? { native: true, flags: found, reason: `the CPU has ${found.join(' and ')}` }
    : { native: false, flags: [], reason: 'the CPU has neither avx512_bf16 nor amx_bf16 (bfloat16 would be emulated, slower than fp32)' };
}

/** The precision a choice resolves to on `device`, and why. */
export function resolvePrecision(choice: PrecisionChoice, device = 'cpu', env: NodeJS.ProcessEnv = process.env): { precision: Precision; reason: string } {
  if (choice === 'fp32' || choice === 'bf16') return { precision: choice, reason: `requested ${choice}` };
  if (choice !== 'auto') throw new MisfmError('ARGUMENT', `--precision must be fp32, bf16 or auto, got '${String(choice)}'`);
  if (device.startsWith('cuda')) return { precision: 'bf16', reason: 'auto: CUDA device' };
  const s = cpuBf16Support(env);
  return { precision: s.native ? 'bf16' : 'fp32', reason: `auto: ${s.reason}` };
}

/** Parse a `--precision` value (fp32, bf16, auto); throws an ARGUMENT error naming the flag. */
export function parsePrecision(text: string, flag = 'precision'): PrecisionChoice {
  if ((PRECISION_CHOICES as readonly string[]).includes(text)) return text as PrecisionChoice;
  throw new MisfmError('ARGUMENT', `--${flag} must be fp32, bf16 or auto, got '${text}'`);
}

/** One line of usage for commands that take --precision (shared so the commands read alike). */
export const PRECISION_USAGE =
  '  --precision P          fp32 (default), bf16 (convolutions/matmuls in bfloat16, norms, softmax, losses\n' +
  '                         and accumulators in fp32, fp32 weights) or auto (bf16 where the CPU has\n' +
  '                         avx512_bf16/amx_bf16, or on CUDA; `misfm doctor` says which)\n';
