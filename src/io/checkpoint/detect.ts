/**
 * Content sniffing for checkpoint files: decides between a torch.save zip archive and
 * safetensors, and explains everything else (legacy torch files, raw pickles, images, text).
 */
import * as fs from 'node:fs';
import { CheckpointError } from '../../util/errors.js';

export type CheckpointFormat = 'torch-zip' | 'safetensors';

/** The pickled magic number that starts a legacy (pre-1.6, non-zip) torch.save file. */
const LEGACY_MAGIC = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

const KNOWN: readonly { magic: number[]; what: string }[] = [
  { magic: [0x89, 0x50, 0x4e, 0x47], what: 'a PNG image' },
  { magic: [0xff, 0xd8, 0xff], what: 'a JPEG image' },
  { magic: [0x1f, 0x8b], what: 'a gzip file (e.g. .nii.gz)' },
  { magic: [0x89, 0x48, 0x44, 0x46], what: 'an HDF5 file (e.g. Keras .h5)' },
  { magic: [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59], what: 'a numpy .npy file' },
];

function startsWith(b: Uint8Array, magic: readonly number[]): boolean {
  return b.byteLength >= magic.length && magic.every((m, i) => b[i] === m);
}

/** Read the first bytes of a file (fewer if it is shorter). */
export function readHead(file: string, n: number): { head: Uint8Array; size: number } {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw new CheckpointError(file, `cannot open: ${(e as Error).message}`, e);
  }
  try {
    const size = fs.fstatSync(fd).size;
    const head = new Uint8Array(Math.min(n, size));
    fs.readSync(fd, head, 0, head.byteLength, 0);
    return { head, size };
  } finally {
    fs.closeSync(fd);
  }
}

/** Decide the format from the content, or throw a CheckpointError that says what the file is. */
export function detectCheckpointFormat(file: string): CheckpointFormat {
  const { head, size } = readHead(file, 16);
  if (size === 0) throw new CheckpointError(file, 'empty file, not a checkpoint');
  if (startsWith(head, [0x50, 0x4b, 0x03, 0x04]) || startsWith(head, [0x50, 0x4b, 0x05, 0x06])) return 'torch-zip';
  if (startsWith(head, LEGACY_MAGIC)) {
    throw new CheckpointError(file, 'legacy (pre-1.6, non-zip) torch.save format is not supported; convert it in Python with '
      + "torch.save(torch.load(path), 'converted.pt', _use_new_zipfile_serialization=True)");
  }
  if (head[0] === 0x80 && (head[1] ?? 99) <= 5) {
    throw new CheckpointError(file, 'a bare Python pickle, not a torch.save zip archive or safetensors file');
  }
  if (size >= 10 && head.byteLength >= 9) {
    const headerLen = new DataView(head.buffer).getBigUint64(0, true);
    if (head[8] === 0x7b && headerLen > 1n && headerLen <= BigInt(size - 8)) return 'safetensors'; // '{'
    if (head[8] === 0x7b) {
      throw new CheckpointError(file, `truncated safetensors file: header claims ${headerLen} bytes but the file has ${size}`);
    }
  }
  for (const k of KNOWN) {
    if (startsWith(head, k.magic)) throw new CheckpointError(file, `not a checkpoint: the content looks like ${k.what}`);
  }
  const text = [...head].every((c) => c === 9 || c === 10 || c === 13 || (c >= 32 && c < 127));
  throw new CheckpointError(file, text
    ? 'not a checkpoint: the file is text (expected a torch.save .pt/.pth zip archive or a .safetensors file)'
    : `not a checkpoint: unrecognised content (first bytes ${[...head.subarray(0, 8)].map((c) => c.toString(16).padStart(2, '0')).join(' ')}); `
      + 'expected a torch.save .pt/.pth zip archive or a .safetensors file');
}
