/**
 * readImage: any supported file (NIfTI, NRRD, MetaImage) or DICOM folder / file -> Volume.
 */
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { Volume } from '../volume.js';
import { ImageIOError } from '../../util/errors.js';
import { reasonOf } from './errors.js';
import { formatOf, precheckImageFile, SUPPORTED_ENDINGS, type ImageFormat } from './formats.js';
import { imageToVolume, loadImageIo, PipelineFailure, quietly } from './itk.js';
import { readDicom, type DicomReadOptions } from './dicom-read.js';
import { gunzipHead } from './gzip.js';
import { checkNiftiGeometry } from './nifti-geometry.js';

export interface ReadImageOptions extends DicomReadOptions {
  /**
   * Reject float images holding NaN or ±Inf (default true); one fast pass over the voxels, pass
   * false to skip it. Note: ITK's NIfTI reader (niftilib) already replaces non-finite floats
   * with 0, so this fires for NRRD, MetaImage and DICOM, not for NIfTI.
   */
  checkFinite?: boolean;
  /**
   * Fully verify gzip data (CRC) before decoding; default false. Truncation is always detected
   * (from the gzip length trailer); this also catches damage inside a complete-length file, at
   * the cost of one extra decompression.
   */
  verifyGzip?: boolean;
}

type FileFormat = Exclude<ImageFormat, 'dicom'>;

/** Captured ITK output that means the voxel data are not what the file holds. */
const FATAL_OUTPUT = /fail|error|not read completely|cannot|unable|corrupt|truncat/i;

/**
 * A NIfTI whose stored geometry ITK cannot use (see nifti-geometry.ts) is read from a temporary
 * uncompressed copy with a patched header, with a warning saying what was wrong and what was used.
 */
async function readNifti(file: string): Promise<Volume> {
  const gz = file.toLowerCase().endsWith('.gz');
  const fh = await fs.open(file, 'r');
  let head: Buffer;
  try {
    const b = Buffer.alloc(gz ? 65536 : 348);
    const { bytesRead } = await fh.read(b, 0, b.length, 0);
    head = gz ? gunzipHead(b.subarray(0, bytesRead), file) : b.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
  const fix = checkNiftiGeometry(head);
  if (fix === undefined) return readWithItk(file, 'nifti');
  const note = `${fix.problem}; read with ${fix.used}`;
  if (file.toLowerCase().endsWith('.hdr')) throw new ImageIOError(file, `unusable geometry: ${fix.problem}; fix the header (e.g. set sform_code to 0)`);
  const raw = await fs.readFile(file);
  const bytes = gz ? gunzipSync(raw) : raw;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'misfm-nifti-'));
  try {
    const copy = path.join(dir, 'image.nii');
    await fs.writeFile(copy, Buffer.concat([fix.header, bytes.subarray(fix.header.length)]));
    const v = await readWithItk(copy, 'nifti', file);
    process.emitWarning(`${file}: ${note}`, 'ImageIOWarning');
    return v;
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** Read with itk-wasm; `shownAs` is the name used in messages (the user's file for a patched copy). */
async function readWithItk(file: string, format: FileFormat, shownAs = file): Promise<Volume> {
  const io = await loadImageIo();
  // Real path: itk-wasm mounts the file's folder and cannot follow a symlink out of it.
  const abs = await fs.realpath(file);
  const call = format === 'nifti' ? io.niftiReadImageNode : format === 'nrrd' ? io.nrrdReadImageNode : io.metaReadImageNode;
  const name = format === 'meta' ? 'MetaImage' : format === 'nifti' ? 'NIfTI' : 'NRRD';
  let res;
  try {
    res = await quietly(() => call(abs));
  } catch (err) {
    // A bare number is an uncaught C++ exception: itk-wasm release builds carry no message.
    const why = err instanceof PipelineFailure && err.output === '' && typeof err.cause === 'number'
      ? `ITK's ${name} reader failed without a message (damaged data or an unsupported ${name} feature)` : reasonOf(err);
    throw new ImageIOError(shownAs, `cannot read image: ${why}`, err);
  }
  const { couldRead, image } = res.value;
  if (couldRead !== true || image === undefined || image === null) {
    const why = res.output !== '' ? `: ${res.output}` : '';
    throw new ImageIOError(shownAs, `not a readable ${name} image${why}`);
  }
  // ITK's MetaIO/NRRD readers report some data errors on stderr and still return an image.
  if (FATAL_OUTPUT.test(res.output)) throw new ImageIOError(shownAs, `cannot read image: ${res.output}`);
  if (res.output !== '') process.emitWarning(`${shownAs}: itk-wasm: ${res.output}`, 'ImageIOWarning');
  return imageToVolume(image, shownAs);
}

/** Index of the first NaN/±Inf voxel of a float volume, or -1. */
export function firstNonFinite(v: Volume): number {
  const d = v.data;
  if (!(d instanceof Float32Array) && !(d instanceof Float64Array)) return -1;
  for (let i = 0; i < d.length; i++) {
    const x = d[i]!;
    // x - x is 0 for finite x and NaN for NaN and ±Inf: one test covers both.
    if (x - x !== 0) return i;
  }
  return -1;
}

function assertFinite(v: Volume, file: string): void {
  const i = firstNonFinite(v);
  if (i < 0) return;
  let count = 0;
  for (const x of v.data as Float32Array | Float64Array) if (x - x !== 0) count++;
  const nx = v.size[0], ny = v.size[1];
  const ijk = [i % nx, Math.floor(i / nx) % ny, Math.floor(i / (nx * ny))];
  throw new ImageIOError(file, `${count} voxel(s) are NaN or infinite, first at voxel (${ijk.join(', ')}) = ${v.data[i]}; ` +
    'fix the file or read with checkFinite: false');
}

async function looksLikeDicom(file: string): Promise<boolean> {
  const fh = await fs.open(file, 'r');
  try {
    const b = Buffer.alloc(132);
    const { bytesRead } = await fh.read(b, 0, 132, 0);
    return bytesRead === 132 && b.subarray(128, 132).toString('latin1') === 'DICM';
  } finally {
    await fh.close();
  }
}

/**
 * Read a 3D image: .nii, .nii.gz, .hdr, .nrrd, .nhdr, .mha, .mhd, a DICOM folder (see
 * `seriesUid` / `pickLargest` for folders with several series) or a single DICOM file.
 * Geometry is in LPS. Throws ImageIOError (or DicomError) naming the file and the problem.
 */
export async function readImage(file: string, opts: ReadImageOptions = {}): Promise<Volume> {
  let st;
  try {
    st = await fs.stat(file);
  } catch {
    throw new ImageIOError(file, 'file or folder not found');
  }
  let vol: Volume;
  if (st.isDirectory()) {
    vol = await readDicom(file, opts);
  } else {
    const f = formatOf(file);
    if (f?.format === 'dicom' || (f === undefined && st.isFile() && await looksLikeDicom(file))) {
      vol = await readDicom(file, opts);
    } else if (f === undefined) {
      throw new ImageIOError(file, `unsupported file type "${path.extname(file) || path.basename(file)}"; supported: ${SUPPORTED_ENDINGS}`);
    } else {
      await precheckImageFile(file, f.format as FileFormat, opts.verifyGzip ?? false);
      vol = f.format === 'nifti' ? await readNifti(file) : await readWithItk(file, f.format as FileFormat);
    }
  }
  if (opts.checkFinite ?? true) assertFinite(vol, file);
  return vol;
}

