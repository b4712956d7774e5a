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
import { scanDicomFiles, scanDicomFolder, selectSeries, type DicomSeries, type DicomSeriesInfo } from './dicom-scan.js';
import { imageToVolume, loadDicom, quietly } from './itk.js';

export interface DicomReadOptions {
  /** Series to read: its id from listDicomSeries, or its SeriesInstanceUID. */
  seriesUid?: string;
  /** With several series and no seriesUid: read the one with most slices (and warn) instead of failing. */
  pickLargest?: boolean;
  /** Receives non-fatal problems (varying rescale, ignored files, ...). */
  onWarning?: (message: string) => void;
}

/** One line per series, aligned, for the CLI and for error messages. */
export function formatSeriesTable(list: readonly DicomSeriesInfo[]): string {
  const rows = list.map((s) => [
    s.id, s.modality || '-', String(s.numFiles), s.size.join('x'),
    s.spacing.map((v) => (Math.round(v * 1000) / 1000).toString()).join('x'), s.description || '-',
    s.problem !== undefined ? `UNREADABLE: ${s.problem}` : '',
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
  return decodeSeries(target, series, warn);
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
