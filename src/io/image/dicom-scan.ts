/**
 * Find DICOM image series in a folder: read every file's header, group slices into volumes,
 * order them along the slice normal and check that they form a regular grid.
 *
 * Grouping key: SeriesInstanceUID plus Frame of Reference, image size, echo and temporal
 * position, then clusters of equal orientation. Files with an empty SeriesInstanceUID (as in
 * anonymised exports) are therefore still grouped, by the remaining fields. Slices are ordered by
 * ImagePositionPatient projected on the normal (row x column direction), never by UID or
 * InstanceNumber, which anonymisers and some scanners scramble.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { Mat3, Vec3 } from '../volume.js';
import { DicomError } from './errors.js';
import { NeedMoreBytes, parseDicomHeader, type DicomHeader } from './dicom-header.js';
import { listEntries } from '../../util/fs-entries.js';

export interface DicomSlice { file: string; header: DicomHeader; /** Position along the normal (mm). */ z: number }

/**
 * Why a series' slices do not form a regular grid although each slice is fine: uneven gaps
 * (e.g. two reconstruction thicknesses) and/or slices shifted sideways (gantry tilt). Such a
 * series is read by resampling onto a regular grid along the slice normal (./dicom-regrid.ts)
 * unless strict geometry is asked for, in which case `message` is the refusal.
 */
export interface IrregularGeometry {
  /** The refusal text of strict mode (what misfm said before resampling existed). */
  message: string;
  unevenGaps: boolean;
  /** Gantry tilt in degrees (angle between the slice normal and the line through the slice positions); 0 when none. */
  tiltDegrees: number;
  /** Smallest regular gap between neighbouring slices (mm): the default slice step of the regular grid. */
  smallestGap: number;
}

/** One series as listed for the user. */
export interface DicomSeriesInfo {
  /** What to pass as `seriesUid` / `--series`: the SeriesInstanceUID, suffixed `#n` when it was split, or `unnamed-n` when empty. */
  id: string;
  /** SeriesInstanceUID as stored (may be empty). */
  uid: string;
  description: string;
  modality: string;
  seriesNumber: number | undefined;
  numFiles: number;
  /** (columns, rows, slices). */
  size: Vec3;
  /** (x, y, z) mm; z is the slice step (SliceThickness for a single slice). */
  spacing: Vec3;
  transferSyntax: string;
  /** Why the series cannot be read as one volume (reading it throws this); undefined when fine. */
  problem: string | undefined;
  /** Set when the slices are readable but uneven or tilted: the series is resampled when read (see IrregularGeometry). */
  irregular?: IrregularGeometry;
}

/** A series with its sorted slices and computed geometry. */
export interface DicomSeries {
  info: DicomSeriesInfo;
  slices: DicomSlice[];
  origin: Vec3;
  direction: Mat3;
  multiFrame: boolean;
  warnings: string[];
}

export interface DicomScan {
  folder: string;
  series: DicomSeries[];
  filesSeen: number;
  dicomFiles: number;
  /** DICOM files without image pixel data (DICOMDIR, SR, RTSTRUCT, SEG, ...). */
  nonImage: number;
  unreadable: string[];
}

const HEAD_BYTES = 64 * 1024;
const NON_IMAGE_MODALITIES = new Set(['SR', 'RTSTRUCT', 'SEG', 'PR', 'KO', 'REG', 'RTPLAN', 'RTDOSE', 'DOC']);

/** Read one file's header: undefined when it is not DICOM; throws for damaged DICOM. */
export async function readDicomHeader(file: string): Promise<DicomHeader | undefined> {
  const fh = await fs.open(file, 'r');
  try {
    const { size } = await fh.stat();
    const head = Buffer.alloc(Math.min(HEAD_BYTES, size));
    await fh.read(head, 0, head.length, 0);
    try {
      return parseDicomHeader(head, head.length === size);
    } catch (err) {
      if (!(err instanceof NeedMoreBytes)) throw err;
    }
    const all = Buffer.alloc(size);
    await fh.read(all, 0, size, 0);
    return parseDicomHeader(all, true);
  } finally {
    await fh.close();
  }
}

async function listFiles(folder: string, depth: number, out: string[], visited = new Set<string>()): Promise<void> {
  for (const e of await listEntries(folder, visited)) {
    if (e.kind === 'dir') {
      if (depth > 0) await listFiles(e.path, depth - 1, out, visited);
    } else if (e.kind === 'file') {
      out.push(e.path);
    }
  }
}

function isImage(h: DicomHeader): boolean {
  return h.hasPixelData && h.rows !== undefined && h.columns !== undefined && !NON_IMAGE_MODALITIES.has(h.modality.toUpperCase()) &&
    h.sopClassUid !== '1.2.840.10008.1.3.10';
}

const cross = (a: number[], b: number[]): Vec3 => [
  a[1]! * b[2]! - a[2]! * b[1]!, a[2]! * b[0]! - a[0]! * b[2]!, a[0]! * b[1]! - a[1]! * b[0]!,
];
const dot = (a: readonly number[], b: readonly number[]): number => a[0]! * b[0]! + a[1]! * b[1]! + a[2]! * b[2]!;
const unit = (a: number[]): Vec3 => {
  const n = Math.hypot(a[0]!, a[1]!, a[2]!);
  return [a[0]! / n, a[1]! / n, a[2]! / n];
};
const fmt = (x: number): string => String(Number(x.toFixed(3)));

/** Scan `folder` (and sub-folders, 8 levels deep) for DICOM image series. */
export async function scanDicomFolder(folder: string): Promise<DicomScan> {
  const files: string[] = [];
  await listFiles(folder, 8, files);
  return scanDicomFiles(folder, files);
}

/** Group the given files (already listed) into series. `label` names the folder in messages. */
export async function scanDicomFiles(label: string, files: string[]): Promise<DicomScan> {
  const headers: Array<{ file: string; header: DicomHeader }> = [];
  const unreadable: string[] = [];
  let dicomFiles = 0, nonImage = 0;
  // A few reads in flight: enough to hide latency, gentle on a 2-core machine.
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const file = files[next++]!;
      let h: DicomHeader | undefined;
      try {
        h = await readDicomHeader(file);
      } catch (err) {
        unreadable.push(`${file}: ${err instanceof Error ? err.message : String(err)}`);
        continue;
      }
      if (h === undefined) continue;
      dicomFiles++;
      if (!isImage(h)) nonImage++;
      else headers.push({ file, header: h });
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, files.length) }, worker));
  headers.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
  return { folder: label, series: groupSeries(headers), filesSeen: files.length, dicomFiles, nonImage, unreadable };
}

function groupSeries(headers: Array<{ file: string; header: DicomHeader }>): DicomSeries[] {
  const groups = new Map<string, Array<{ file: string; header: DicomHeader }>>();
  for (const e of headers) {
    const h = e.header;
    const key = [h.seriesUid, h.frameOfReferenceUid, h.rows, h.columns, h.samplesPerPixel, h.echoNumber ?? '', h.temporalPosition ?? '',
      h.numberOfFrames > 1 ? e.file : ''].join('|');
    let g = groups.get(key);
    if (g === undefined) groups.set(key, g = []);
    g.push(e);
  }
  // Split each group into clusters of the same orientation (tolerance, not rounding, so that
  // values printed with different precision stay together).
  const clusters: Array<Array<{ file: string; header: DicomHeader }>> = [];
  for (const g of groups.values()) {
    const local: Array<{ iop: number[] | undefined; members: typeof g }> = [];
    for (const e of g) {
      const iop = e.header.imageOrientation;
      const c = local.find((l) => (l.iop === undefined && iop === undefined) ||
        (l.iop !== undefined && iop !== undefined && l.iop.every((v, i) => Math.abs(v - iop[i]!) < 1e-3)));
      if (c !== undefined) c.members.push(e);
      else local.push({ iop, members: [e] });
    }
    for (const l of local) clusters.push(l.members);
  }
  const series = clusters.map((c) => buildSeries(c));
  // Ids: the UID when it identifies one volume; otherwise numbered.
  const byUid = new Map<string, DicomSeries[]>();
  for (const s of series) {
    let l = byUid.get(s.info.uid);
    if (l === undefined) byUid.set(s.info.uid, l = []);
    l.push(s);
  }
  let unnamed = 0;
  series.sort((a, b) => (a.info.seriesNumber ?? 1e9) - (b.info.seriesNumber ?? 1e9) || (a.slices[0]!.file < b.slices[0]!.file ? -1 : 1));
  const counters = new Map<string, number>();
  for (const s of series) {
    if (s.info.uid === '') s.info.id = `unnamed-${++unnamed}`;
    else if ((byUid.get(s.info.uid)?.length ?? 0) > 1) {
      const k = (counters.get(s.info.uid) ?? 0) + 1;
      counters.set(s.info.uid, k);
      s.info.id = `${s.info.uid}#${k}`;
    } else s.info.id = s.info.uid;
  }
  return series;
}

function buildSeries(members: Array<{ file: string; header: DicomHeader }>): DicomSeries {
  const first = members[0]!.header;
  const warnings: string[] = [];
  let problem: string | undefined;
  const multiFrame = first.numberOfFrames > 1;
  const iop = first.imageOrientation;
  let row: Vec3 = [1, 0, 0], col: Vec3 = [0, 1, 0];
  if (iop !== undefined) {
    row = unit(iop.slice(0, 3));
    col = unit(iop.slice(3, 6));
    if (Math.abs(dot(row, col)) > 1e-3) problem = `ImageOrientationPatient rows/columns are not perpendicular (${iop.join('\\')})`;
  } else if (members.length > 1 && !multiFrame) {
    problem = 'no ImageOrientationPatient: slice order and geometry are unknown';
  } else {
    warnings.push('no ImageOrientationPatient: assuming axial (identity) orientation');
  }
  const normal = cross(row, col);
  const slices: DicomSlice[] = members.map((m) => ({
    file: m.file, header: m.header, z: m.header.imagePosition !== undefined ? dot(m.header.imagePosition, normal) : NaN,
  }));
  if (members.length > 1 && slices.some((s) => Number.isNaN(s.z)) && problem === undefined) {
    const f = slices.find((s) => Number.isNaN(s.z))!;
    problem = `no ImagePositionPatient in ${path.basename(f.file)}: slices cannot be ordered`;
  }
  slices.sort((a, b) => a.z - b.z || (a.file < b.file ? -1 : 1));
  const ps = first.pixelSpacing;
  if (ps === undefined) warnings.push('no PixelSpacing: assuming 1 mm');
  const sx = ps?.[1] ?? 1, sy = ps?.[0] ?? 1;
  const badPs = slices.find((s) => {
    const p = s.header.pixelSpacing;
    return p !== undefined && (Math.abs(p[0] - sy) > 1e-4 * sy || Math.abs(p[1] - sx) > 1e-4 * sx);
  });
  if (badPs !== undefined && problem === undefined) {
    problem = `PixelSpacing differs between slices: ${sy}\\${sx} in ${path.basename(slices[0]!.file)}, ` +
      `${badPs.header.pixelSpacing!.join('\\')} in ${path.basename(badPs.file)}`;
  }
  let sz = first.spacingBetweenSlices ?? first.sliceThickness ?? 1;
  let irregular: IrregularGeometry | undefined;
  if (slices.length > 1 && problem === undefined && !multiFrame) {
    const r = checkSpacing(slices, normal);
    if (typeof r === 'string') problem = r;
    else if (typeof r === 'number') sz = r;
    else { irregular = r; sz = r.smallestGap; }
  }
  const origin: Vec3 = slices[0]!.header.imagePosition ?? [0, 0, 0];
  const direction: Mat3 = [row[0], col[0], normal[0], row[1], col[1], normal[1], row[2], col[2], normal[2]];
  const nz = multiFrame ? first.numberOfFrames : slices.length;
  const info: DicomSeriesInfo = {
    id: '', uid: first.seriesUid, description: first.seriesDescription, modality: first.modality, seriesNumber: first.seriesNumber,
    numFiles: members.length, size: [first.columns ?? 0, first.rows ?? 0, nz], spacing: [sx, sy, sz],
    transferSyntax: first.transferSyntax, problem,
    ...(irregular !== undefined ? { irregular } : {}),
  };
  if (first.samplesPerPixel !== 1 && problem === undefined) {
    info.problem = `unsupported pixel type: ${first.samplesPerPixel} samples per pixel (${first.photometric || 'colour'}); only grey-value images are supported`;
  }
  if (multiFrame && members.length > 1 && problem === undefined) info.problem = 'several multi-frame files in one series are not supported';
  const slopes = new Set(slices.map((s) => `${s.header.rescaleSlope ?? 1}/${s.header.rescaleIntercept ?? 0}`));
  if (slopes.size > 1) warnings.push(`rescale slope/intercept vary between slices (${[...slopes].slice(0, 4).join(', ')}${slopes.size > 4 ? ', ...' : ''})`);
  if (first.photometric === 'MONOCHROME1') warnings.push('MONOCHROME1 (inverted grey scale) is read as stored values');
  return { info, slices, origin, direction, multiFrame, warnings };
}

/**
 * Check that sorted slices are equally spaced along the normal and stacked straight (no gantry
 * tilt). Returns the slice step of a regular series, a description of an irregular one (uneven
 * gaps and/or tilt: readable by resampling), or a problem as text (duplicate positions).
 */
function checkSpacing(slices: DicomSlice[], normal: Vec3): number | IrregularGeometry | string {
  const n = slices.length;
  const gaps = slices.slice(1).map((s, i) => s.z - slices[i]!.z);
  const dup = gaps.findIndex((g) => g < 1e-4);
  if (dup >= 0) {
    const a = slices[dup]!, b = slices[dup + 1]!;
    return `slices ${path.basename(a.file)} and ${path.basename(b.file)} have the same position (${fmt(a.z)} mm along the normal): ` +
      'the series holds more than one volume (repeated acquisition, echoes or phases) or duplicate files';
  }
  const sorted = [...gaps].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  const tol = Math.max(1e-3, 0.01 * median);
  // The smallest regular gap: the mean of the gaps within tolerance of the smallest one.
  const smallOnes = sorted.filter((g) => g - sorted[0]! <= Math.max(1e-3, 0.01 * sorted[0]!));
  const smallestGap = smallOnes.reduce((s, g) => s + g, 0) / smallOnes.length;
  const bad = gaps.map((g, i) => ({ g, i })).filter(({ g }) => Math.abs(g - median) > tol);
  const messages: string[] = [];
  if (bad.length > 0) {
    const list = bad.slice(0, 4).map(({ g, i }) =>
      `${fmt(g)} mm between slice ${i} (${path.basename(slices[i]!.file)}, z=${fmt(slices[i]!.z)}) and slice ${i + 1} (${path.basename(slices[i + 1]!.file)}, z=${fmt(slices[i + 1]!.z)})`);
    const hint = bad.some(({ g }) => g > 1.5 * median) ? ' (missing slices?)' : '';
    messages.push(`inconsistent slice spacing: the usual gap is ${fmt(median)} mm but there ${bad.length === 1 ? 'is' : 'are'} ` +
      `${bad.length} other gap${bad.length === 1 ? '' : 's'}${hint}: ${list.join('; ')}${bad.length > 4 ? '; ...' : ''}`);
  }
  // Every position must lie on the line origin + t * normal; a sideways drift means gantry tilt.
  const p0 = slices[0]!.header.imagePosition!;
  let tiltDegrees = 0;
  for (const s of slices) {
    const p = s.header.imagePosition!;
    const d = [p[0] - p0[0], p[1] - p0[1], p[2] - p0[2]];
    const t = s.z - slices[0]!.z;
    const off = Math.hypot(d[0]! - t * normal[0], d[1]! - t * normal[1], d[2]! - t * normal[2]);
    if (off > Math.max(0.01, 0.02 * median)) {
      // The tilt angle from the first to the last slice (the stack's axis against the normal).
      const pl = slices[n - 1]!.header.imagePosition!;
      const axis = [pl[0] - p0[0], pl[1] - p0[1], pl[2] - p0[2]];
      tiltDegrees = Math.acos(Math.min(1, Math.abs(dot(axis, normal)) / Math.hypot(axis[0]!, axis[1]!, axis[2]!))) * 180 / Math.PI;
      messages.push(`slices are not stacked along the slice normal (gantry tilt or sheared series): ${path.basename(s.file)} is ` +
        `${fmt(off)} mm off the line through the first slice; resample it (e.g. with dcm2niix) first`);
      break;
    }
  }
  if (messages.length === 0) return (slices[n - 1]!.z - slices[0]!.z) / (n - 1);
  return { message: messages.join('; '), unevenGaps: bad.length > 0, tiltDegrees, smallestGap };
}

/**
 * Choose a series: by id or UID when `wanted` is given, else the only one. With several series
 * and no choice, `pickLargest` takes the one with most slices; otherwise a DicomError lists them.
 */
export function selectSeries(scan: DicomScan, wanted: string | undefined, pickLargest: boolean, table: (s: DicomSeriesInfo[]) => string): { series: DicomSeries; warning: string | undefined } {
  const all = scan.series;
  if (all.length === 0) {
    const what = scan.filesSeen === 0 ? 'the folder is empty' :
      scan.dicomFiles === 0 ? `none of its ${scan.filesSeen} files is DICOM` :
        `its ${scan.dicomFiles} DICOM files hold no image pixel data (e.g. DICOMDIR, SR, RTSTRUCT, SEG)`;
    const bad = scan.unreadable.length > 0 ? `; ${scan.unreadable.length} damaged DICOM file(s), e.g. ${scan.unreadable[0]}` : '';
    throw new DicomError(scan.folder, `no DICOM image series found: ${what}${bad}`);
  }
  const infos = all.map((s) => s.info);
  if (wanted !== undefined) {
    const byId = all.find((s) => s.info.id === wanted);
    if (byId !== undefined) return { series: byId, warning: undefined };
    const byUid = all.filter((s) => s.info.uid === wanted);
    if (byUid.length === 1) return { series: byUid[0]!, warning: undefined };
    if (byUid.length > 1) {
      throw new DicomError(scan.folder, `series UID ${wanted} holds ${byUid.length} volumes; choose one by id:\n${table(byUid.map((s) => s.info))}`);
    }
    throw new DicomError(scan.folder, `no series ${wanted} in the folder; it holds:\n${table(infos)}`);
  }
  if (all.length === 1) return { series: all[0]!, warning: undefined };
  if (!pickLargest) {
    throw new DicomError(scan.folder, `the folder holds ${all.length} image series; choose one with --series ID (seriesUid):\n${table(infos)}`);
  }
  const best = [...all].sort((a, b) => b.info.size[2] - a.info.size[2])[0]!;
  return { series: best, warning: `${scan.folder}: ${all.length} series found, reading the largest, ${best.info.id} (${best.info.size[2]} slices)` };
}
