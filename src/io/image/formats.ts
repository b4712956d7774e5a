/**
 * File formats by name, and cheap header checks run before itk-wasm sees a file.
 *
 * The checks exist because itk-wasm is silent or cryptic on bad input: a truncated .nii.gz or
 * .nii reads "successfully" with zero-filled or garbage voxels, and a missing or foreign file
 * surfaces as a bare number (a C++ exception pointer). Each check reads only the header (and for
 * gzip the 4-byte size trailer), so it costs well under a millisecond on healthy files.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { ImageIOError } from '../../util/errors.js';
import { checkGzipRange, gunzipHead } from './gzip.js';

export type ImageFormat = 'nifti' | 'nrrd' | 'meta' | 'dicom';

/** Recognised file endings (lower case), longest first so `.nii.gz` wins over `.gz`. */
const ENDINGS: ReadonlyArray<[string, ImageFormat]> = [
  ['.nii.gz', 'nifti'], ['.nii', 'nifti'], ['.hdr', 'nifti'],
  ['.nrrd', 'nrrd'], ['.nhdr', 'nrrd'],
  ['.mha', 'meta'], ['.mhd', 'meta'],
  ['.dcm', 'dicom'], ['.dicom', 'dicom'],
];

/** Endings that readImage/writeImage accept, for messages. */
export const SUPPORTED_ENDINGS = '.nii, .nii.gz, .hdr, .nrrd, .nhdr, .mha, .mhd (and DICOM: a folder or a .dcm file)';

/** The format and matched ending of a file name, or undefined for an unknown ending. */
export function formatOf(file: string): { format: ImageFormat; ending: string } | undefined {
  const lower = file.toLowerCase();
  for (const [ending, format] of ENDINGS) if (lower.endsWith(ending)) return { format, ending };
  return undefined;
}

async function readHead(file: string, n: number): Promise<{ head: Buffer; size: number }> {
  const fh = await fs.open(file, 'r');
  try {
    const { size } = await fh.stat();
    const head = Buffer.alloc(Math.min(n, size));
    if (head.length > 0) await fh.read(head, 0, head.length, 0);
    return { head, size };
  } finally {
    await fh.close();
  }
}

/** Bytes per voxel of each NIfTI datatype misfm accepts; the others get a named error. */
const NIFTI_SCALAR: Readonly<Record<number, string>> = {
  2: 'uint8', 4: 'int16', 8: 'int32', 16: 'float32', 64: 'float64', 256: 'int8', 512: 'uint16', 768: 'uint32', 1024: 'int64', 1280: 'uint64',
};
const NIFTI_OTHER: Readonly<Record<number, string>> = {
  32: 'complex64', 128: 'RGB24', 1536: 'float128', 1792: 'complex128', 2048: 'complex256', 2304: 'RGBA32', 1: 'binary (1 bit)',
};

interface NiftiHeader { dims: number[]; datatype: number; bitpix: number; voxOffset: number }

/** Parse the fixed part of a NIfTI-1 / NIfTI-2 header (either byte order). */
function parseNiftiHeader(h: Buffer, file: string, single: boolean): NiftiHeader {
  if (h.length < 4) throw new ImageIOError(file, `not a NIfTI file: only ${h.length} bytes`);
  const le1 = h.readInt32LE(0), be1 = h.readInt32BE(0);
  const n1 = le1 === 348 || be1 === 348, n2 = le1 === 540 || be1 === 540;
  if (!n1 && !n2) {
    throw new ImageIOError(file, `not a NIfTI file: header size field is ${le1}, expected 348 (NIfTI-1) or 540 (NIfTI-2)`);
  }
  const le = n1 ? le1 === 348 : le1 === 540;
  const need = n1 ? 348 : 540;
  if (h.length < need) throw new ImageIOError(file, `NIfTI header truncated: ${h.length} of ${need} bytes`);
  const i16 = (o: number): number => (le ? h.readInt16LE(o) : h.readInt16BE(o));
  if (n1) {
    const magic = h.subarray(344, 347).toString('latin1');
    // A .hdr may be an Analyze 7.5 header (no magic), which ITK reads; a .nii must say n+1.
    if (single && magic !== 'n+1') throw new ImageIOError(file, `not a single-file NIfTI-1 image: magic is ${JSON.stringify(magic)}, expected "n+1"`);
    const dims = Array.from({ length: 8 }, (_, k) => i16(40 + 2 * k));
    const vox = le ? h.readFloatLE(108) : h.readFloatBE(108);
    return { dims, datatype: i16(70), bitpix: i16(72), voxOffset: magic === 'n+1' ? Math.max(352, Math.round(vox)) : 0 };
  }
  const magic = h.subarray(4, 7).toString('latin1');
  if (magic !== (single ? 'n+2' : 'ni2')) throw new ImageIOError(file, `not a NIfTI-2 file: magic is ${JSON.stringify(magic)}`);
  const i64 = (o: number): number => Number(le ? h.readBigInt64LE(o) : h.readBigInt64BE(o));
  const dims = Array.from({ length: 8 }, (_, k) => i64(16 + 8 * k));
  return { dims, datatype: i16(12), bitpix: i16(14), voxOffset: magic === 'n+2' ? i64(168) : 0 };
}

/** Reject NIfTI headers misfm cannot use; returns the voxel data size in bytes. */
function checkNiftiHeader(hd: NiftiHeader, file: string): number {
  const nd = hd.dims[0] ?? 0;
  if (nd < 1 || nd > 7) throw new ImageIOError(file, `corrupt NIfTI header: dim[0] = ${nd} (must be 1..7)`);
  const dims = hd.dims.slice(1, nd + 1);
  if (dims.some((d) => d <= 0)) throw new ImageIOError(file, `image has an empty axis: dimensions ${dims.join('x')}`);
  if (nd < 3) throw new ImageIOError(file, `${nd}D image (${dims.join('x')}): misfm needs a 3D volume`);
  const extra = dims.slice(3).reduce((a, b) => a * b, 1);
  if (extra > 1) {
    throw new ImageIOError(file, `${nd}D image (${dims.join('x')}) holds ${extra} volumes or components: misfm needs a single 3D volume; extract one first`);
  }
  if (NIFTI_OTHER[hd.datatype] !== undefined) {
    throw new ImageIOError(file, `unsupported pixel type: NIfTI datatype ${hd.datatype} (${NIFTI_OTHER[hd.datatype]}); only scalar images are supported`);
  }
  if (NIFTI_SCALAR[hd.datatype] === undefined) throw new ImageIOError(file, `unknown NIfTI datatype ${hd.datatype}`);
  const n = dims.reduce((a, b) => a * b, 1);
  return n * (hd.bitpix / 8);
}

async function checkNifti(file: string, gz: boolean, full: boolean): Promise<void> {
  const { head, size } = await readHead(file, gz ? 65536 : 544);
  if (gz) {
    if (head[0] !== 0x1f || head[1] !== 0x8b) {
      throw new ImageIOError(file, 'not gzip-compressed (no gzip signature), although the name ends in .gz');
    }
    const plain = gunzipHead(head, file);
    if (plain.length < 348) {
      throw new ImageIOError(file, `truncated or corrupt gzip data: the NIfTI header needs 348 bytes, only ${plain.length} decompress from this ${size}-byte file`);
    }
    const hd = parseNiftiHeader(plain, file, true);
    const bytes = checkNiftiHeader(hd, file);
    await checkGzipRange(file, 0, size, hd.voxOffset + bytes, file, full);
    return;
  }
  const pair = file.toLowerCase().endsWith('.hdr');
  const hd = parseNiftiHeader(head, file, !pair);
  const bytes = checkNiftiHeader(hd, file);
  if (pair) {
    const stem = file.slice(0, -4);
    const candidates = ['.img', '.img.gz', '.IMG'].map((e) => stem + e);
    let found = false;
    for (const c of candidates) if (await exists(c)) found = true;
    if (!found) throw new ImageIOError(file, `NIfTI/Analyze header without its data file ${path.basename(stem)}.img`);
    return;
  }
  if (size < hd.voxOffset + bytes) {
    throw new ImageIOError(file, `truncated NIfTI file: ${size} bytes, header needs ${hd.voxOffset + bytes} (${hd.voxOffset} header + ${bytes} voxel data)`);
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    return (await fs.stat(p)).isFile();
  } catch {
    return false;
  }
}

/** Bytes per element of NRRD type names. */
function nrrdTypeBytes(type: string): number | undefined {
  const t = type.trim().toLowerCase().replace(/_t$/, '');
  if (/^(signed char|int8|uchar|unsigned char|uint8)$/.test(t)) return 1;
  if (/^(short|short int|signed short|signed short int|int16|ushort|unsigned short|unsigned short int|uint16)$/.test(t)) return 2;
  if (/^(int|signed int|int32|uint|unsigned int|uint32|float)$/.test(t)) return 4;
  if (/^(longlong|long long|long long int|signed long long|signed long long int|int64|ulonglong|unsigned long long|unsigned long long int|uint64|double)$/.test(t)) return 8;
  return undefined;
}

/** Header fields of a text header, keys lower-cased; the byte offset where data would start. */
function textFields(head: Buffer, sep: RegExp, stopKey?: string): { fields: Map<string, string>; end: number | undefined } {
  const fields = new Map<string, string>();
  let pos = 0;
  while (pos < head.length) {
    let nl = head.indexOf(0x0a, pos);
    if (nl < 0) nl = head.length;
    const line = head.subarray(pos, nl).toString('latin1').replace(/\r$/, '');
    pos = nl + 1;
    if (line === '' && stopKey === undefined) return { fields, end: pos };
    if (line.startsWith('#')) continue;
    const m = sep.exec(line);
    if (m === null) continue;
    const key = line.slice(0, m.index).trim().toLowerCase();
    fields.set(key, line.slice(m.index + m[0].length).trim());
    if (stopKey !== undefined && key === stopKey) return { fields, end: pos };
  }
  return { fields, end: undefined };
}

async function checkDataSize(file: string, dataFile: string, start: number, size: number, expected: number, encoding: 'raw' | 'gzip', full: boolean): Promise<void> {
  if (encoding === 'raw') {
    if (size - start < expected) {
      throw new ImageIOError(file, `truncated voxel data${dataFile !== file ? ` in ${dataFile}` : ''}: ${size - start} bytes, header needs ${expected}`);
    }
    return;
  }
  await checkGzipRange(dataFile, start, size, expected, file, full);
}

async function checkNrrd(file: string, full: boolean): Promise<void> {
  const { head, size } = await readHead(file, 65536);
  if (!/^NRRD000\d/.test(head.subarray(0, 8).toString('latin1'))) {
    throw new ImageIOError(file, 'not a NRRD file (no "NRRD000x" magic line)');
  }
  const { fields, end } = textFields(head, /:=?\s*/);
  const dimension = Number(fields.get('dimension'));
  const sizes = (fields.get('sizes') ?? '').split(/\s+/).filter((s) => s !== '').map(Number);
  if (!(dimension >= 1) || sizes.length !== dimension || sizes.some((s) => !Number.isInteger(s))) {
    throw new ImageIOError(file, `corrupt NRRD header: dimension ${fields.get('dimension') ?? '(missing)'}, sizes ${fields.get('sizes') ?? '(missing)'}`);
  }
  if (sizes.some((s) => s <= 0)) throw new ImageIOError(file, `image has an empty axis: sizes ${sizes.join(' ')}`);
  const type = fields.get('type');
  if (type === undefined) throw new ImageIOError(file, 'corrupt NRRD header: no "type" field');
  const bytes = nrrdTypeBytes(type);
  if (bytes === undefined) throw new ImageIOError(file, `unsupported NRRD type "${type}"`);
  const enc = (fields.get('encoding') ?? '').toLowerCase();
  const skip = Number(fields.get('byte skip') ?? fields.get('byteskip') ?? 0) !== 0 || Number(fields.get('line skip') ?? fields.get('lineskip') ?? 0) !== 0;
  const expected = sizes.reduce((a, b) => a * b, 1) * bytes;
  const encoding = enc === 'raw' ? 'raw' : enc === 'gzip' || enc === 'gz' ? 'gzip' : undefined;
  const detached = fields.get('data file') ?? fields.get('datafile');
  if (detached !== undefined) {
    // LIST and printf-style patterns name several files: leave those to ITK.
    if (detached.startsWith('LIST') || /%|\s/.test(detached)) return;
    const dataFile = path.resolve(path.dirname(file), detached);
    if (!(await exists(dataFile))) throw new ImageIOError(file, `NRRD data file ${detached} not found (looked for ${dataFile})`);
    if (encoding !== undefined && !skip) await checkDataSize(file, dataFile, 0, (await fs.stat(dataFile)).size, expected, encoding, full);
    return;
  }
  if (end === undefined) {
    if (size <= head.length) throw new ImageIOError(file, 'NRRD header has no blank line before the data and no "data file": no voxel data');
    return;
  }
  if (encoding !== undefined && !skip) await checkDataSize(file, file, end, size, expected, encoding, full);
}

const META_BYTES: Readonly<Record<string, number>> = {
  MET_UCHAR: 1, MET_CHAR: 1, MET_SHORT: 2, MET_USHORT: 2, MET_INT: 4, MET_UINT: 4, MET_FLOAT: 4, MET_DOUBLE: 8,
  MET_LONG_LONG: 8, MET_ULONG_LONG: 8,
};

async function checkMeta(file: string): Promise<void> {
  const { head, size } = await readHead(file, 65536);
  const { fields, end } = textFields(head, /\s*=\s*/, 'elementdatafile');
  const need = ['ndims', 'dimsize', 'elementtype', 'elementdatafile'];
  const missing = need.filter((k) => !fields.has(k));
  if (missing.length === need.length) throw new ImageIOError(file, 'not a MetaImage file (no NDims / DimSize / ElementType / ElementDataFile header)');
  if (missing.length > 0) throw new ImageIOError(file, `corrupt MetaImage header: missing ${missing.join(', ')}`);
  const objectType = fields.get('objecttype');
  if (objectType !== undefined && objectType.toLowerCase() !== 'image') throw new ImageIOError(file, `MetaImage ObjectType is ${objectType}, not Image`);
  const dims = (fields.get('dimsize') ?? '').split(/\s+/).filter((s) => s !== '').map(Number);
  if (dims.length !== Number(fields.get('ndims')) || dims.some((d) => !Number.isInteger(d))) {
    throw new ImageIOError(file, `corrupt MetaImage header: NDims ${fields.get('ndims') ?? ''}, DimSize ${fields.get('dimsize') ?? ''}`);
  }
  if (dims.some((d) => d <= 0)) throw new ImageIOError(file, `image has an empty axis: DimSize ${dims.join(' ')}`);
  const channels = Number(fields.get('elementnumberofchannels') ?? 1);
  const bytes = META_BYTES[(fields.get('elementtype') ?? '').toUpperCase()];
  const compressed = (fields.get('compresseddata') ?? 'false').toLowerCase() === 'true';
  const headerSize = Number(fields.get('headersize') ?? 0);
  const dataName = fields.get('elementdatafile') ?? '';
  const expected = bytes === undefined ? undefined : dims.reduce((a, b) => a * b, 1) * bytes * channels;
  const compressedSize = fields.has('compresseddatasize') ? Number(fields.get('compresseddatasize')) : undefined;
  let dataFile = file, start = end ?? size, dataSize = size;
  if (dataName.toUpperCase() !== 'LOCAL') {
    if (dataName.startsWith('LIST') || /%|\s/.test(dataName)) return;
    dataFile = path.resolve(path.dirname(file), dataName);
    if (!(await exists(dataFile))) throw new ImageIOError(file, `MetaImage data file ${dataName} not found (looked for ${dataFile})`);
    start = 0;
    dataSize = (await fs.stat(dataFile)).size;
  }
  if (headerSize !== 0) return;
  const available = dataSize - start;
  const where = dataFile !== file ? ` in ${dataFile}` : '';
  if (compressed) {
    if (compressedSize !== undefined && available < compressedSize) {
      throw new ImageIOError(file, `truncated compressed voxel data${where}: ${available} bytes, header says ${compressedSize}`);
    }
  } else if (expected !== undefined && available < expected) {
    throw new ImageIOError(file, `truncated voxel data${where}: ${available} bytes, header needs ${expected}`);
  }
}

/**
 * Check that `file` exists and looks like a readable image of `format`. Throws ImageIOError
 * naming the file and the problem (missing, not an image, truncated, 2D/4D, RGB, ...).
 * `verifyGzip` also checks the CRC of gzip data (one extra decompression).
 */
export async function precheckImageFile(file: string, format: Exclude<ImageFormat, 'dicom'>, verifyGzip = false): Promise<void> {
  let st;
  try {
    st = await fs.stat(file);
  } catch {
    throw new ImageIOError(file, 'file not found');
  }
  if (!st.isFile()) throw new ImageIOError(file, 'not a regular file');
  if (st.size === 0) throw new ImageIOError(file, 'file is empty');
  try {
    if (format === 'nifti') await checkNifti(file, file.toLowerCase().endsWith('.gz'), verifyGzip);
    else if (format === 'nrrd') await checkNrrd(file, verifyGzip);
    else await checkMeta(file);
  } catch (err) {
    if (err instanceof ImageIOError) throw err;
    throw new ImageIOError(file, `cannot read header: ${err instanceof Error ? err.message : String(err)}`, err);
  }
}
