/**
 * Read a DICOM series (a folder, or a single file) into a Volume.
 *
 * Slices are found, grouped, ordered and checked by dicom-scan.ts; itk-wasm (GDCM) only decodes
 * the pixels of the chosen files, in our order (`singleSortedSeries`). GDCM applies Rescale
 * Slope/Intercept per slice, so CT comes out in HU: it is not applied again here. The geometry is
 * set from the headers (first slice position, orientation, mean slice step), which is what ITK
 * computes too, but does not depend on how GDCM would have sorted the files.
 */
import * as fs from 'node:fs/promises';
import type { Volume } from '../volume.js';
import { DicomError, reasonOf } from './errors.js';
import { describeTransferSyntax } from './dicom-header.js';
import { scanDicomFiles, scanDicomFolder, selectSeries, type DicomSeries, type DicomSeriesInfo, type IrregularGeometry } from './dicom-scan.js';
import { regridSlices } from './dicom-regrid.js';
import { imageToVolume, loadDicom, quietly } from './itk.js';

export interface DicomReadOptions {
  /** Series to read: its id from listDicomSeries, or its SeriesInstanceUID. */
  seriesUid?: string;
  /** With several series and no seriesUid: read the one with most slices (and warn) instead of failing. */
  pickLargest?: boolean;
  /** Receives non-fatal problems (varying rescale, ignored files, a resampled series, ...). */
  onWarning?: (message: string) => void;
  /**
   * Refuse series whose slices are unevenly spaced or tilted (the behaviour before misfm could
   * resample them). Default false: such series are resampled onto a regular grid along the slice
   * normal, with a warning saying what was done.
   */
  strictGeometry?: boolean;
  /** Slice step (mm) of that regular grid; default the smallest regular gap between slices. */
  sliceSpacing?: number;
}

/** One line per series, aligned, for the CLI and for error messages. */
export function formatSeriesTable(list: readonly DicomSeriesInfo[]): string {
  const rows = list.map((s) => [
    s.id, s.modality || '-', String(s.numFiles), s.size.join('x'),
    s.spacing.map((v) => (Math.round(v * 1000) / 1000).toString()).join('x'), s.description || '-',
    s.problem !== undefined ? `UNREADABLE: ${s.problem}` : s.irregular !== undefined ? `RESAMPLED when read: ${describeIrregular(s.irregular)}` : '',
  ]);
  const head = ['series (id)', 'mod', 'files', 'size', 'spacing mm', 'description', ''];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]!) : c)).join('  ').trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}

/** The image series in a DICOM folder (sub-folders included), without decoding pixels. */
export async function listDicomSeries(folder: string): Promise<DicomSeriesInfo[]> {
  await assertFolder(folder);
  const scan = await scanDicomFolder(folder);
  return scan.series.map((s) => s.info);
}

async function assertFolder(folder: string): Promise<void> {
  let st;
  try {
    st = await fs.stat(folder);
  } catch {
    throw new DicomError(folder, 'folder not found');
  }
  if (!st.isDirectory()) throw new DicomError(folder, 'not a folder');
}

/** Read a DICOM series from a folder, or the single slice (or multi-frame image) in one file. */
export async function readDicom(target: string, opts: DicomReadOptions = {}): Promise<Volume> {
  let st;
  try {
    st = await fs.stat(target);
  } catch {
    throw new DicomError(target, 'file or folder not found');
  }
  const scan = st.isDirectory() ? await scanDicomFolder(target) : await scanDicomFiles(target, [target]);
  if (!st.isDirectory() && scan.dicomFiles === 0) {
    throw new DicomError(target, scan.unreadable.length > 0 ? `damaged DICOM file: ${scan.unreadable[0]}` : 'not a DICOM file');
  }
  const { series, warning } = selectSeries(scan, opts.seriesUid, opts.pickLargest ?? false, formatSeriesTable);
  const warn = opts.onWarning ?? ((m: string) => process.emitWarning(m, 'DicomWarning'));
  if (warning !== undefined) warn(warning);
  for (const w of series.warnings) warn(`${target}: series ${series.info.id}: ${w}`);
  if (scan.unreadable.length > 0) warn(`${target}: skipped ${scan.unreadable.length} damaged DICOM file(s), e.g. ${scan.unreadable[0]}`);
  if (series.info.problem !== undefined) {
    throw new DicomError(target, `series ${series.info.id}${series.info.description ? ` (${series.info.description})` : ''}: ${series.info.problem}`);
  }
  const irr = series.info.irregular;
  if (irr !== undefined && opts.strictGeometry === true) {
    throw new DicomError(target, `series ${series.info.id}${series.info.description ? ` (${series.info.description})` : ''}: ${irr.message} ` +
      '(strict geometry; without it misfm resamples such a series onto a regular grid)');
  }
  if (opts.sliceSpacing !== undefined && !(opts.sliceSpacing > 0)) throw new DicomError(target, `slice spacing must be a positive number of mm, got ${opts.sliceSpacing}`);
  // ITK's own complaint about the non-uniform sampling is what the resampling below handles.
  const vol = await decodeSeries(target, series, irr === undefined ? warn : (m) => { if (!/uniform|sampling|missing slices/i.test(m)) warn(m); });
  if (irr === undefined) return vol;
  const step = opts.sliceSpacing ?? irr.smallestGap;
  const regular = regridSlices(vol.data, {
    positions: series.slices.map((s) => s.header.imagePosition!), size: [series.info.size[0], series.info.size[1]],
    spacing: [series.info.spacing[0], series.info.spacing[1]],
    row: [series.direction[0], series.direction[3], series.direction[6]], col: [series.direction[1], series.direction[4], series.direction[7]],
  }, step);
  warn(`${target}: series ${series.info.id}: ${describeIrregular(irr)}: resampled onto a regular grid along the slice normal, ` +
    `${regular.size[2]} slices every ${fmtMm(step)} mm${opts.sliceSpacing === undefined ? ' (the smallest regular gap)' : ''}` +
    `${irr.tiltDegrees > 0 ? ', tilt removed by shearing each slice back onto the normal' : ''}` +
    ' (linear interpolation; pass strict geometry, --strict-geometry, to refuse such series instead)');
  return regular;
}

const fmtMm = (x: number): string => String(Number(x.toFixed(3)));

/** "uneven slice gaps (smallest 1.25 mm) and a gantry tilt of 12.0°" */
export function describeIrregular(irr: IrregularGeometry): string {
  const parts: string[] = [];
  if (irr.unevenGaps) parts.push(`uneven slice gaps (smallest ${fmtMm(irr.smallestGap)} mm)`);
  if (irr.tiltDegrees > 0) parts.push(`a gantry tilt of ${irr.tiltDegrees.toFixed(1)}°`);
  return parts.join(' and ');
}

async function decodeSeries(target: string, series: DicomSeries, warn: (m: string) => void): Promise<Volume> {
  // itk-wasm sees files through an Emscripten mount of their folder and cannot follow a symlink
  // out of it: hand it real paths.
  const files = await Promise.all(series.slices.map((s) => fs.realpath(s.file)));
  const dicom = await loadDicom();
  let out;
  try {
    out = await quietly(() => dicom.readImageDicomFileSeriesNode({ inputImages: files, singleSortedSeries: true }));
  } catch (err) {
    throw new DicomError(target, `cannot decode the pixel data of series ${series.info.id} ` +
      `(transfer syntax ${describeTransferSyntax(series.info.transferSyntax)}): ${reasonOf(err)}`, err);
  }
  if (out.output !== '') warn(`${target}: itk-wasm: ${out.output}`);
  const img = out.value.outputImage;
  if (img === undefined || img === null) {
    throw new DicomError(target, `itk-wasm returned no image for series ${series.info.id} ` +
      `(transfer syntax ${describeTransferSyntax(series.info.transferSyntax)})`);
  }
  const vol = imageToVolume(img, target);
  const [c, r, n] = series.info.size;
  if (vol.size[0] !== c || vol.size[1] !== r || vol.size[2] !== n) {
    throw new DicomError(target, `decoded size ${vol.size.join('x')} differs from the headers' ${c}x${r}x${n} in series ${series.info.id}`);
  }
  if (!series.multiFrame) {
    vol.origin = [...series.origin];
    vol.direction = [...series.direction];
    vol.spacing = [...series.info.spacing];
  }
  // GDCM widens int16 CT to int32 when the intercept could overflow int16; HU always fit int16.
  if (vol.data instanceof Int32Array) {
    const d = vol.data;
    let lo = 0, hi = 0;
    for (let i = 0; i < d.length; i++) {
      const v = d[i]!;
      if (v < lo) lo = v;
      else if (v > hi) hi = v;
    }
    if (lo >= -32768 && hi <= 32767) vol.data = new Int16Array(d);
  }
  return vol;
}
