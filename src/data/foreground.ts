/**
 * Foreground locations for class-balanced patch sampling, stored per case beside the label cache
 * (`<id>.fg`), as nnU-Net does: for each non-zero class a uniform random sample of its voxels
 * (all of them for small classes; otherwise max(10000, 1% of the class) voxels), so the loader
 * can centre a crop on a random voxel of a chosen class without scanning the label.
 *
 * File layout (little-endian): "MISFMFG\0", u32 version, u32 class count, u32 D,H,W, u32 CRC-32
 * of the class table; then per class { i32 value, u32 stored samples, f64 total voxels }; then the
 * flat (D,H,W) C-order voxel indices as u32, class after class, ascending within a class.
 */
import * as fs from 'node:fs';
import { crc32 } from 'node:zlib';
import { MisfmError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import type { VoxelArray } from '../io/volume.js';
import { missingOrUnreadable, readExact, writeAll } from './format.js';
import { writeAtomicWith } from '../util/atomic.js';

const MAGIC = 'MISFMFG\0';
const VERSION = 1;
const HEAD = 32;
const ROW = 16;

export interface ForegroundClass {
  value: number;
  /** All voxels of this class in the volume. */
  count: number;
  /** Sampled flat voxel indices (z*H*W + y*W + x), ascending. */
  indices: Uint32Array;
}

export interface ForegroundSamples {
  shape: [number, number, number];
  classes: ForegroundClass[];
}

export interface ForegroundSampling {
  /** Samples kept per class at least (all voxels if fewer). Default 10000. */
  minSamples?: number;
  /** Fraction of a class's voxels kept when that is more than minSamples. Default 0.01. */
  fraction?: number;
  /** Seed of the sampling (prepare is deterministic). Default 0. */
  seed?: number;
}

/**
 * Sample foreground voxel locations per non-zero class. `counts` are the label's voxel counts
 * per value (from labelCounts). Two passes over the label; selection sampling keeps each
 * class's sample uniform without holding all its indices.
 */
export function sampleForeground(label: VoxelArray, shape: [number, number, number], counts: Map<number, number>, opts: ForegroundSampling = {}): ForegroundSamples {
  const n = label.length;
  if (n >= 2 ** 32) throw new MisfmError('ARGUMENT', `volume of ${n} voxels is too large for 32-bit foreground indices`);
  const minS = opts.minSamples ?? 10000, frac = opts.fraction ?? 0.01;
  const root = new Rng(opts.seed ?? 0);
  const values = [...counts.keys()].filter((v) => v !== 0);
  const slot = new Map<number, number>();
  const want: number[] = [], seen: number[] = [], got: number[] = [], rngs: Rng[] = [], out: Uint32Array[] = [];
  values.forEach((v, i) => {
    const c = counts.get(v)!;
    const k = Math.min(c, Math.max(minS, Math.ceil(c * frac)));
    slot.set(v, i);
    want.push(k); seen.push(0); got.push(0); rngs.push(root.fork(i)); out.push(new Uint32Array(k));
  });
  for (let i = 0; i < n; i++) {
    const v = label[i]!;
    if (v === 0) continue;
    const s = slot.get(v);
    if (s === undefined) continue;
    const remaining = counts.get(v)! - seen[s]!;
    const need = want[s]! - got[s]!;
    // Knuth's selection sampling: take this voxel with probability need / remaining.
    if (need > 0 && (need >= remaining || rngs[s]!.uniform() * remaining < need)) out[s]![got[s]!++] = i;
    seen[s]!++;
  }
  return { shape, classes: values.map((v, i) => ({ value: v, count: counts.get(v)!, indices: out[i]!.subarray(0, got[i]!) })) };
}

/** Write a foreground sidecar atomically. */
export function writeForeground(file: string, fg: ForegroundSamples): void {
  const table = Buffer.alloc(ROW * fg.classes.length);
  fg.classes.forEach((c, i) => {
    table.writeInt32LE(c.value, ROW * i);
    table.writeUInt32LE(c.indices.length, ROW * i + 4);
    table.writeDoubleLE(c.count, ROW * i + 8);
  });
  const head = Buffer.alloc(HEAD);
  head.write(MAGIC, 0, 'latin1');
  head.writeUInt32LE(VERSION, 8);
  head.writeUInt32LE(fg.classes.length, 12);
  fg.shape.forEach((s, i) => head.writeUInt32LE(s, 16 + 4 * i));
  head.writeUInt32LE(crc32(table), 28);
  writeAtomicWith(file, (fd) => {
    writeAll(fd, head);
    writeAll(fd, table);
    for (const c of fg.classes) writeAll(fd, new Uint8Array(c.indices.buffer, c.indices.byteOffset, c.indices.byteLength));
  }, (_stage, err) => new MisfmError('DATA', `cannot write foreground file: ${err instanceof Error ? err.message : String(err)}`, { file, cause: err }));
}

function corrupt(file: string, what: string): MisfmError {
  return new MisfmError('DATA', `corrupt foreground file: ${what}; delete the case's cache files and run \`misfm prepare\` again`, { file });
}

/** Read and validate a foreground sidecar. */
export function readForeground(file: string): ForegroundSamples {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    throw missingOrUnreadable(file, err);
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size < HEAD) throw corrupt(file, `truncated: ${size} bytes`);
    const head = Buffer.alloc(HEAD);
    readExact(fd, head, 0, HEAD, 0, file);
    if (head.subarray(0, 8).toString('latin1') !== MAGIC) throw corrupt(file, 'bad magic (not a misfm foreground file)');
    if (head.readUInt32LE(8) !== VERSION) throw corrupt(file, `unsupported version ${head.readUInt32LE(8)}`);
    const nc = head.readUInt32LE(12);
    const shape: [number, number, number] = [head.readUInt32LE(16), head.readUInt32LE(20), head.readUInt32LE(24)];
    if (size < HEAD + ROW * nc) throw corrupt(file, `truncated: ${size} bytes for ${nc} classes`);
    const table = Buffer.alloc(ROW * nc);
    readExact(fd, table, 0, table.length, HEAD, file);
    if (crc32(table) !== head.readUInt32LE(28)) throw corrupt(file, 'class table checksum mismatch');
    let total = 0;
    for (let i = 0; i < nc; i++) total += table.readUInt32LE(ROW * i + 4);
    if (size !== HEAD + ROW * nc + 4 * total) throw corrupt(file, `${size} bytes, expected ${HEAD + ROW * nc + 4 * total}`);
    const all = new Uint32Array(total);
    readExact(fd, new Uint8Array(all.buffer), 0, 4 * total, HEAD + ROW * nc, file);
    const classes: ForegroundClass[] = [];
    let off = 0;
    for (let i = 0; i < nc; i++) {
      const k = table.readUInt32LE(ROW * i + 4);
      classes.push({ value: table.readInt32LE(ROW * i), count: table.readDoubleLE(ROW * i + 8), indices: all.subarray(off, off + k) });
      off += k;
    }
    return { shape, classes };
  } finally {
    fs.closeSync(fd);
  }
}
