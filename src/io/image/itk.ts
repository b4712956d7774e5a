/**
 * The bridge to itk-wasm: lazy module loading, quiet pipeline calls, and conversion between
 * itk-wasm's Image and misfm's Volume.
 *
 * Why lazy: importing @itk-wasm/image-io costs ~150 ms (it initialises a zstd decoder), which a
 * CLI command that never touches images should not pay.
 * Why quiet: itk-wasm pipelines print ITK diagnostics and "Exception while running pipeline"
 * banners through console.log/console.error, which would corrupt CLI output (e.g. a table on
 * stdout). While a pipeline call is in flight, console output coming from itk-wasm code is
 * captured; it becomes part of the error message on failure and a warning on success.
 */
import * as fsp from 'node:fs/promises';
import type { Image } from '@itk-wasm/image-io';
import { voxelTypeOf, VOXEL_TYPES, type Mat3, type Vec3, type Volume, type VoxelArray, type VoxelType } from '../volume.js';
import { ImageIOError } from '../../util/errors.js';
import { reasonOf } from './errors.js';

type ImageIoModule = typeof import('@itk-wasm/image-io');
type DicomModule = typeof import('@itk-wasm/dicom');

let imageIoModule: Promise<ImageIoModule> | undefined;
let dicomModule: Promise<DicomModule> | undefined;

/** @itk-wasm/image-io, imported on first use. */
export function loadImageIo(): Promise<ImageIoModule> {
  imageIoModule ??= import('@itk-wasm/image-io');
  return imageIoModule;
}

/** @itk-wasm/dicom, imported on first use. */
export function loadDicom(): Promise<DicomModule> {
  dicomModule ??= import('@itk-wasm/dicom');
  return dicomModule;
}

type ConsoleFn = (...args: unknown[]) => void;
type ConsoleMethod = 'log' | 'error' | 'warn' | 'info';
const METHODS: readonly ConsoleMethod[] = ['log', 'error', 'warn', 'info'];
const sinks = new Set<string[]>();
let saved: Record<ConsoleMethod, ConsoleFn> | undefined;

/** Printed by itk-wasm code (its runner or a pipeline module)? Other callers keep their console. */
const FROM_ITK = /[\\/](itk-wasm|@itk-wasm)[\\/]/;

function capturing(method: ConsoleMethod): ConsoleFn {
  return (...args: unknown[]) => {
    // Other code may log while a pipeline loads (the await before it runs): pass that through.
    if (!FROM_ITK.test(new Error().stack ?? '')) {
      saved?.[method](...args);
      return;
    }
    const line = args.map((a) => (typeof a === 'string' ? a : String(a))).join(' ');
    for (const s of sinks) s.push(line);
  };
}

/** Lines itk-wasm prints around every failure; they carry no information of their own. */
const NOISE = /^(Exception while running pipeline:|stdout:\s*$|stderr:\s*$|Build module in Debug mode)/;

/** Useful captured text: noise lines dropped, ITK's duplicate "stderr: ..." echo removed. */
export function cleanOutput(lines: readonly string[]): string {
  const kept: string[] = [];
  for (const raw of lines) {
    for (const l of raw.split('\n')) {
      const t = l.trim();
      if (t === '' || NOISE.test(t)) continue;
      const body = t.replace(/^(stdout|stderr):\s*/, '');
      if (!kept.includes(body)) kept.push(body);
    }
  }
  return kept.join('; ');
}

/**
 * Run an itk-wasm call with console output captured. Returns the value and the captured text;
 * a throw is re-thrown with the captured text attached as `output`.
 */
export async function quietly<T>(fn: () => Promise<T>): Promise<{ value: T; output: string }> {
  const sink: string[] = [];
  if (sinks.size === 0) {
    saved = { log: console.log, error: console.error, warn: console.warn, info: console.info };
    for (const m of METHODS) console[m] = capturing(m);
  }
  sinks.add(sink);
  try {
    const value = await fn();
    return { value, output: cleanOutput(sink) };
  } catch (err) {
    throw new PipelineFailure(err, cleanOutput(sink));
  } finally {
    sinks.delete(sink);
    if (sinks.size === 0 && saved !== undefined) {
      for (const m of METHODS) console[m] = saved[m];
      saved = undefined;
    }
  }
}

/** An itk-wasm failure with whatever the pipeline printed. */
export class PipelineFailure extends Error {
  readonly output: string;
  constructor(cause: unknown, output: string) {
    const reason = reasonOf(cause);
    // A bare number is an uncaught C++ exception pointer: only the printed text explains it.
    const text = output !== '' ? (typeof cause === 'number' ? output : `${reason} (${output})`) : reason;
    super(text, { cause });
    this.name = 'PipelineFailure';
    this.output = output;
  }
}

/** Voxel component types misfm keeps as they are (defined in io/volume.ts). */
export { voxelTypeOf, VOXEL_TYPES, type VoxelType };

/** A new zeroed array of a voxel type. */
export function allocVoxels(type: VoxelType, n: number): VoxelArray {
  switch (type) {
    case 'uint8': return new Uint8Array(n);
    case 'int8': return new Int8Array(n);
    case 'uint16': return new Uint16Array(n);
    case 'int16': return new Int16Array(n);
    case 'uint32': return new Uint32Array(n);
    case 'int32': return new Int32Array(n);
    case 'float32': return new Float32Array(n);
    case 'float64': return new Float64Array(n);
  }
}

/** A plain-ArrayBuffer copy unless `a` already owns its whole (non-shared) buffer. */
function owned(a: VoxelArray): VoxelArray {
  if (a.buffer instanceof ArrayBuffer && a.byteOffset === 0 && a.byteLength === a.buffer.byteLength) return a;
  return a.slice();
}

/** int64/uint64 voxels (label maps written by numpy/torch) narrowed to int32 when they fit. */
function narrow64(data: BigInt64Array | BigUint64Array, file: string): Int32Array {
  const out = new Int32Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v > 2147483647n || v < -2147483648n) {
      throw new ImageIOError(file, `64-bit integer voxel ${v} at index ${i} does not fit in int32; convert the image to int32 or float`);
    }
    out[i] = Number(v);
  }
  return out;
}

function describeType(img: Image): string {
  const t = img.imageType;
  return t.components > 1 ? `${t.pixelType} of ${t.components} ${t.componentType} components` : `${t.pixelType} ${t.componentType}`;
}

/**
 * Turn an itk-wasm Image into a Volume, rejecting what misfm cannot segment: 2D images, 4D
 * images with more than one volume (a 4th axis of size 1 is dropped), non-scalar pixels (RGB,
 * vector, complex), empty axes and unusable geometry.
 */
export function imageToVolume(img: Image, file: string): Volume {
  const dim = img.imageType.dimension;
  const size = img.size.slice();
  if (dim === 2) {
    throw new ImageIOError(file, `2D image (${size.join('x')}): misfm needs a 3D volume`);
  }
  if (dim === 4) {
    if (size[3] !== 1) {
      throw new ImageIOError(file, `4D image (${size.join('x')}) holds ${size[3]} volumes: misfm needs a single 3D volume; extract one first`);
    }
  } else if (dim !== 3) {
    throw new ImageIOError(file, `${dim}D image (${size.join('x')}): misfm needs a 3D volume`);
  }
  if (img.imageType.pixelType !== 'Scalar' || img.imageType.components !== 1) {
    throw new ImageIOError(file, `unsupported pixel type ${describeType(img)}: only scalar (grey-value or label) images are supported`);
  }
  const sz: Vec3 = [size[0] ?? 0, size[1] ?? 0, size[2] ?? 0];
  if (sz.some((s) => !(s > 0))) {
    throw new ImageIOError(file, `image has an empty axis: size ${sz.join('x')}`);
  }
  const spacing: Vec3 = [img.spacing[0] ?? NaN, img.spacing[1] ?? NaN, img.spacing[2] ?? NaN];
  const origin: Vec3 = [img.origin[0] ?? NaN, img.origin[1] ?? NaN, img.origin[2] ?? NaN];
  const direction = new Array<number>(9);
  for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) direction[r * 3 + c] = Number(img.direction[r * dim + c]);
  if (spacing.some((s) => !(s > 0) || !Number.isFinite(s))) {
    throw new ImageIOError(file, `invalid voxel spacing (${spacing.join(', ')})`);
  }
  if (origin.some((o) => !Number.isFinite(o)) || direction.some((d) => !Number.isFinite(d))) {
    throw new ImageIOError(file, `invalid geometry: origin (${origin.join(', ')}), direction [${direction.join(', ')}]`);
  }
  const raw = img.data;
  if (raw === null) throw new ImageIOError(file, 'image has no voxel data');
  let data: VoxelArray;
  if (raw instanceof BigInt64Array || raw instanceof BigUint64Array) data = narrow64(raw, file);
  else data = owned(raw as VoxelArray);
  const n = sz[0] * sz[1] * sz[2];
  if (data.length !== n) {
    throw new ImageIOError(file, `voxel data holds ${data.length} values, size ${sz.join('x')} needs ${n}`);
  }
  return { data, size: sz, spacing, origin, direction: direction as Mat3 };
}

/** An itk-wasm Image view of a Volume (voxel data shared, not copied, when it owns its buffer). */
export function volumeToImage(v: Volume, name: string): Image {
  const componentType = voxelTypeOf(v.data);
  return {
    imageType: { dimension: 3, componentType, pixelType: 'Scalar', components: 1 },
    name,
    origin: [...v.origin],
    spacing: [...v.spacing],
    direction: Float64Array.from(v.direction),
    size: [...v.size],
    metadata: new Map(),
    // itk-wasm copies `data.buffer` whole, from offset 0: a view into a larger buffer must be copied.
    data: owned(v.data),
  };
}

/**
 * Read a DICOM Segmentation with itk-wasm (dcmqi), as one label image: an
 * independent reader that checks what misfm writes. Returns the label volume (values = segment
 * numbers) and dcmqi's JSON description of the segments.
 */
export async function readSegmentationWithItk(file: string): Promise<{ labels: Volume; meta: unknown }> {
  const dicom = await loadDicom();
  const abs = await fsp.realpath(file);
  let res;
  try {
    res = await quietly(() => dicom.readSegmentationNode(abs));
  } catch (err) {
    throw new ImageIOError(file, `itk-wasm cannot read the segmentation: ${err instanceof Error ? err.message : String(err)}`, err);
  }
  return { labels: imageToVolume(res.value.segImage, file), meta: res.value.metaInfo };
}
