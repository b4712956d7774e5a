/**
 * Read a binary DICOM Segmentation back into a label map: frames are placed by their Plane
 * Position along the normal of the shared Plane Orientation; each voxel gets the number of the
 * last segment covering it (segments are numbered 1..n as in the SEG). Uncompressed, explicit
 * or implicit VR little endian, shared or per-frame orientation and pixel measures.
 */
import * as fs from 'node:fs/promises';
import type { Mat3, Vec3, Volume } from '../volume.js';
import { DicomError } from '../image/errors.js';
import { parseDataset, getItems, getNumbers, getString, getBytes, tag, type DicomItem } from './dataset.js';
import { SEG_SOP_CLASS } from './seg-write.js';
import { dicomLabToRgb } from './seg-codes.js';

export interface SegSegmentInfo {
  number: number;
  label: string;
  /** Segmented property type's code meaning ('' when absent). */
  type: string;
  color: [number, number, number] | null;
}

export interface DicomSegRead {
  /** Segment numbers (uint8, or uint16 above 255 segments) on the SEG's own grid. */
  labels: Volume;
  segments: SegSegmentInfo[];
  /** SeriesInstanceUID of the referenced source series ('' when absent). */
  referencedSeriesUid: string;
  referencedInstances: string[];
  studyInstanceUid: string;
  frameOfReferenceUid: string;
}

const cross = (a: number[], b: number[]): Vec3 => [a[1]! * b[2]! - a[2]! * b[1]!, a[2]! * b[0]! - a[0]! * b[2]!, a[0]! * b[1]! - a[1]! * b[0]!];
const dot = (a: readonly number[], b: readonly number[]): number => a[0]! * b[0]! + a[1]! * b[1]! + a[2]! * b[2]!;

/** The first item of a functional group, per frame or shared. */
function group(perFrame: DicomItem | undefined, shared: DicomItem | undefined, seq: number): DicomItem | undefined {
  return getItems(perFrame ?? new Map(), seq)[0] ?? getItems(shared ?? new Map(), seq)[0];
}

/** Read a DICOM-SEG file. Throws a DicomError naming the file for anything it cannot place. */
export async function readDicomSeg(file: string): Promise<DicomSegRead> {
  let buf: Buffer;
  try { buf = await fs.readFile(file); } catch { throw new DicomError(file, 'file not found'); }
  let ds: DicomItem;
  try { ds = parseDataset(buf).dataset; } catch (err) { throw new DicomError(file, `not a readable DICOM file: ${err instanceof Error ? err.message : String(err)}`, err); }
  const fail = (m: string): never => { throw new DicomError(file, m); };
  if (getString(ds, tag(0x0008, 0x0016)) !== SEG_SOP_CLASS) fail(`not a DICOM Segmentation (SOP class ${getString(ds, tag(0x0008, 0x0016)) || 'none'})`);
  if (getString(ds, tag(0x0062, 0x0001)) !== 'BINARY') fail(`only BINARY segmentations are supported, this one is ${getString(ds, tag(0x0062, 0x0001)) || 'untyped'}`);
  const rows = getNumbers(ds, tag(0x0028, 0x0010))[0] ?? 0, cols = getNumbers(ds, tag(0x0028, 0x0011))[0] ?? 0;
  const nFrames = getNumbers(ds, tag(0x0028, 0x0008))[0] ?? 1;
  const pixels = getBytes(ds, tag(0x7fe0, 0x0010));
  if (pixels === undefined) fail('no (uncompressed) pixel data');
  if (pixels!.length * 8 < nFrames * rows * cols) fail(`pixel data holds ${pixels!.length} bytes, ${nFrames} frames of ${cols}x${rows} need ${Math.ceil(nFrames * rows * cols / 8)}`);
  const shared = getItems(ds, tag(0x5200, 0x9229))[0];
  const perFrame = getItems(ds, tag(0x5200, 0x9230));
  if (perFrame.length !== nFrames) fail(`${perFrame.length} per-frame functional groups for ${nFrames} frames`);
  const segments: SegSegmentInfo[] = getItems(ds, tag(0x0062, 0x0002)).map((it) => {
    const lab = getNumbers(it, tag(0x0062, 0x000d));
    return {
      number: getNumbers(it, tag(0x0062, 0x0004))[0] ?? 0, label: getString(it, tag(0x0062, 0x0005)),
      type: getString(getItems(it, tag(0x0062, 0x000f))[0] ?? new Map(), tag(0x0008, 0x0104)),
      color: lab.length === 3 ? dicomLabToRgb(lab) : null,
    };
  });
  const frames = perFrame.map((pf, f) => {
    const iop = getNumbers(group(pf, shared, tag(0x0020, 0x9116)) ?? new Map(), tag(0x0020, 0x0037));
    const ipp = getNumbers(group(pf, shared, tag(0x0020, 0x9113)) ?? new Map(), tag(0x0020, 0x0032));
    const ps = getNumbers(group(pf, shared, tag(0x0028, 0x9110)) ?? new Map(), tag(0x0028, 0x0030));
    const seg = getNumbers(group(pf, shared, tag(0x0062, 0x000a)) ?? new Map(), tag(0x0062, 0x000b))[0];
    if (iop.length !== 6 || ipp.length !== 3 || ps.length !== 2 || seg === undefined) fail(`frame ${f + 1} lacks its orientation, position, pixel spacing or segment number`);
    return { iop, ipp: ipp as Vec3, ps, seg: seg! };
  });
  const iop0 = frames[0]!.iop;
  if (frames.some((fr) => fr.iop.some((v, i) => Math.abs(v - iop0[i]!) > 1e-4))) fail('frames with different orientations are not supported');
  const row = iop0.slice(0, 3), col = iop0.slice(3, 6), normal = cross(row, col);
  // Distinct planes along the normal, in ascending order.
  const zs = [...new Set(frames.map((fr) => Math.round(dot(fr.ipp, normal) * 1e4) / 1e4))].sort((a, b) => a - b);
  const gaps = zs.slice(1).map((z, i) => z - zs[i]!);
  const thickness = getNumbers(group(perFrame[0], shared, tag(0x0028, 0x9110)) ?? new Map(), tag(0x0018, 0x0088))[0] ??
    getNumbers(group(perFrame[0], shared, tag(0x0028, 0x9110)) ?? new Map(), tag(0x0018, 0x0050))[0] ?? 1;
  // Planes are laid on a regular grid with the smallest gap (frames of empty slices are omitted, so gaps are multiples of it).
  const step = gaps.length > 0 ? Math.min(...gaps) : thickness;
  const nz = gaps.length > 0 ? Math.round((zs[zs.length - 1]! - zs[0]!) / step) + 1 : 1;
  const first = frames.find((fr) => Math.abs(dot(fr.ipp, normal) - zs[0]!) < 1e-3)!;
  const plane = rows * cols;
  const data = segments.length > 255 ? new Uint16Array(plane * nz) : new Uint8Array(plane * nz);
  frames.forEach((fr, f) => {
    const kf = (dot(fr.ipp, normal) - zs[0]!) / step;
    const k = Math.round(kf);
    if (Math.abs(kf - k) > 1e-3 * Math.max(1, step)) fail(`frame ${f + 1} lies off the regular grid of its planes (${kf.toFixed(3)} steps)`);
    const off = f * plane;
    for (let i = 0; i < plane; i++) {
      const b = off + i;
      if ((pixels![b >> 3]! >> (b & 7)) & 1) data[k * plane + i] = fr.seg;
    }
  });
  const direction: Mat3 = [row[0]!, col[0]!, normal[0], row[1]!, col[1]!, normal[1], row[2]!, col[2]!, normal[2]];
  const labels: Volume = { data, size: [cols, rows, nz], spacing: [first.ps[1]!, first.ps[0]!, step], origin: [...first.ipp], direction };
  const refSeries = getItems(ds, tag(0x0008, 0x1115))[0];
  return {
    labels, segments,
    referencedSeriesUid: refSeries === undefined ? '' : getString(refSeries, tag(0x0020, 0x000e)),
    referencedInstances: refSeries === undefined ? [] : getItems(refSeries, tag(0x0008, 0x114a)).map((r) => getString(r, tag(0x0008, 0x1155))),
    studyInstanceUid: getString(ds, tag(0x0020, 0x000d)),
    frameOfReferenceUid: getString(ds, tag(0x0020, 0x0052)),
  };
}
