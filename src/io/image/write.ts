/**
 * writeImage / writeLike: Volume -> NIfTI, NRRD or MetaImage, chosen by the file ending, written
 * atomically.
 *
 * Atomicity: itk-wasm picks the format from the file name and, for .nhdr/.mhd, writes a second
 * data file whose name it records in the header. So the image is written under its final name
 * into a private temp folder beside the target (same file system), fsynced, and the files are
 * renamed into place, data file first and header last. A failure leaves the target untouched.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { Vec3, Volume, VoxelArray } from '../volume.js';
import { invert3 } from '../volume.js';
import { ImageIOError, MisfmError } from '../../util/errors.js';
import { reasonOf } from './errors.js';
import { formatOf, SUPPORTED_ENDINGS } from './formats.js';
import type { Grid } from './geometry.js';
import { allocVoxels, loadImageIo, quietly, volumeToImage, voxelTypeOf, type VoxelType } from './itk.js';

export interface WriteImageOptions {
  /**
   * Compress the voxel data of .nrrd/.nhdr (gzip) and .mha/.mhd (zlib); default true.
   * The ending decides for NIfTI: .nii.gz is always compressed, .nii never.
   */
  compress?: boolean;
  /** Convert voxels to this type before writing (integers are rounded; out-of-range values are an error). */
  dtype?: VoxelType;
}

const RANGES: Readonly<Record<VoxelType, [number, number]>> = {
  uint8: [0, 255], int8: [-128, 127], uint16: [0, 65535], int16: [-32768, 32767],
  uint32: [0, 4294967295], int32: [-2147483648, 2147483647], float32: [-3.4028234663852886e38, 3.4028234663852886e38],
  float64: [-Infinity, Infinity],
};

/**
 * `data` converted to `type`. Integer targets round to nearest; a NaN or a value outside the
 * target range throws (naming `file`), since silent wrap-around would corrupt label maps.
 */
export function castVoxels(data: VoxelArray, type: VoxelType, file = 'volume'): VoxelArray {
  if (voxelTypeOf(data) === type) return data;
  const out = allocVoxels(type, data.length);
  const [lo, hi] = RANGES[type];
  const isInt = type !== 'float32' && type !== 'float64';
  for (let i = 0; i < data.length; i++) {
    const raw = data[i]!;
    const v = isInt ? Math.round(raw) : raw;
    // Floats may carry NaN/±Inf across; integers may not.
    if (isInt ? !(v >= lo && v <= hi) : Number.isFinite(v) && (v < lo || v > hi)) {
      throw new MisfmError('DTYPE', `voxel ${i} = ${raw} does not fit ${type} (${lo}..${hi})`, { file });
    }
    out[i] = v;
  }
  return out;
}

function checkVolume(v: Volume, file: string): void {
  const bad = (what: string): ImageIOError => new ImageIOError(file, `cannot write: ${what}`);
  if (v.size.length !== 3 || v.size.some((s) => !Number.isInteger(s) || s <= 0)) throw bad(`invalid size ${v.size.join('x')}`);
  const n = v.size[0] * v.size[1] * v.size[2];
  if (v.data.length !== n) throw bad(`voxel data holds ${v.data.length} values, size ${v.size.join('x')} needs ${n}`);
  if (v.spacing.some((s) => !(s > 0) || !Number.isFinite(s))) throw bad(`invalid spacing (${v.spacing.join(', ')})`);
  if (v.origin.some((o) => !Number.isFinite(o))) throw bad(`invalid origin (${v.origin.join(', ')})`);
  if (v.direction.length !== 9 || v.direction.some((d) => !Number.isFinite(d))) throw bad(`invalid direction [${v.direction.join(', ')}]`);
  try {
    invert3(v.direction);
  } catch {
    throw bad(`direction matrix is singular [${v.direction.join(', ')}]`);
  }
}

async function syncFile(p: string): Promise<void> {
  const fh = await fs.open(p, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Write `vol` to `file`; the ending picks the format (.nii, .nii.gz, .hdr, .nrrd, .nhdr, .mha,
 * .mhd). Voxel type and geometry are kept exactly (NIfTI stores geometry as float32). The folder
 * is created if needed. Throws ImageIOError naming the file.
 */
export async function writeImage(file: string, vol: Volume, opts: WriteImageOptions = {}): Promise<void> {
  const f = formatOf(file);
  if (f === undefined) throw new ImageIOError(file, `cannot write: unsupported file type "${path.extname(file)}"; supported: ${SUPPORTED_ENDINGS.replace(/ \(and DICOM.*\)/, '')}`);
  if (f.format === 'dicom') throw new ImageIOError(file, 'cannot write DICOM: write .nii.gz, .nrrd or .mha instead');
  checkVolume(vol, file);
  const data = opts.dtype !== undefined ? castVoxels(vol.data, opts.dtype, file) : vol.data;
  const image = volumeToImage({ ...vol, data }, path.basename(file));
  const io = await loadImageIo();
  const writer = f.format === 'nifti' ? io.niftiWriteImageNode : f.format === 'nrrd' ? io.nrrdWriteImageNode : io.metaWriteImageNode;
  const useCompression = f.format === 'nifti' ? undefined : (opts.compress ?? true);
  const target = path.resolve(file);
  const dir = path.dirname(target);
  const base = path.basename(target);
  let tmpDir: string;
  try {
    await fs.mkdir(dir, { recursive: true });
    tmpDir = await fs.mkdtemp(path.join(dir, `.misfm-tmp-${process.pid}-`));
  } catch (err) {
    throw new ImageIOError(file, `cannot create output in ${dir}: ${reasonOf(err)}`, err);
  }
  try {
    const tmpFile = path.join(tmpDir, base);
    let res;
    try {
      res = await quietly(() => writer(image, tmpFile, useCompression !== undefined ? { useCompression } : {}));
    } catch (err) {
      throw new ImageIOError(file, `cannot write image: ${reasonOf(err)}`, err);
    }
    const produced = await fs.readdir(tmpDir);
    if (res.value.couldWrite !== true || !produced.includes(base)) {
      throw new ImageIOError(file, `itk-wasm could not write the image${res.output !== '' ? `: ${res.output}` : ''}`);
    }
    for (const name of produced) await syncFile(path.join(tmpDir, name));
    for (const name of produced) if (name !== base) await fs.rename(path.join(tmpDir, name), path.join(dir, name));
    await fs.rename(tmpFile, target);
  } catch (err) {
    if (err instanceof MisfmError) throw err;
    throw new ImageIOError(file, `cannot write image: ${reasonOf(err)}`, err);
  } finally {
    await fs.rm(tmpDir, { recursive: true, force: true });
  }
}

/**
 * Write voxel data (a label map, a probability map) with the grid of `reference`, typically the
 * image it was computed from. `data` is x-fastest and must have reference's voxel count.
 */
export async function writeLike(file: string, data: VoxelArray, reference: Grid, opts: WriteImageOptions = {}): Promise<void> {
  const n = reference.size[0] * reference.size[1] * reference.size[2];
  if (data.length !== n) {
    throw new ImageIOError(file, `cannot write: ${data.length} voxels given, the reference grid ${reference.size.join('x')} has ${n}`);
  }
  const vol: Volume = {
    data, size: [...reference.size] as Vec3, spacing: [...reference.spacing] as Vec3, origin: [...reference.origin] as Vec3,
    direction: [...reference.direction],
  };
  await writeImage(file, vol, opts);
}
