/**
 * DICOM Segmentation (SEG) output: a label map becomes one binary Segmentation object that
 * references its source series, with one segment per class (name, coded type, recommended
 * display colour) and one frame per (segment, slice) holding that segment, as PS3.3 A.51 asks.
 *
 * Frames carry their own Plane Position, so the SEG may lie on the source grid (predict's
 * output) or on a resampled one (a tilted series read by misfm). Empty frames are left out.
 * Written atomically, explicit VR little endian, 1-bit pixels packed across frames.
 */
import { randomUUID } from 'node:crypto';
import type { Volume } from '../volume.js';
import { voxelToWorld } from '../volume.js';
import { MisfmError } from '../../util/errors.js';
import { writeFileAtomicAsync } from '../../util/atomic.js';
import { VERSION } from '../../version.js';
import { dataset, ds, dsList, encodePart10, tag, type DicomItem, type DicomValue } from './dataset.js';
import type { DicomSourceSeries } from './source.js';
import { segmentCodes, rgbToDicomLab, defaultColour } from './seg-codes.js';

export const SEG_SOP_CLASS = '1.2.840.10008.5.1.4.1.1.66.4';
/** misfm's implementation class UID (a UUID-derived UID, fixed). */
export const MISFM_IMPLEMENTATION_UID = '2.25.208270361436416312373946016283127591385';

/** A DICOM UID derived from a random UUID (PS3.5 B.2). */
export function newUid(): string {
  return `2.25.${BigInt(`0x${randomUUID().replace(/-/g, '')}`).toString()}`;
}

/** One segment: the label value it is cut from, its name and optionally a colour. */
export interface SegSegment {
  /** Voxel value in the label map. */
  value: number;
  /** Segment label (e.g. 'liver'). */
  label: string;
  /** Recommended display colour, sRGB 0-255; default from a fixed palette. */
  color?: [number, number, number];
}

export interface DicomSegOptions {
  seriesDescription?: string;
  seriesNumber?: number;
  /** Algorithm name recorded in each segment (default 'misfm'). */
  algorithmName?: string;
  /** Software version recorded (default misfm's). */
  algorithmVersion?: string;
  /** Content Label (CS: upper case, digits, underscore; default 'SEGMENTATION'). */
  contentLabel?: string;
  /** Fixed UIDs (tests); default new ones. */
  seriesInstanceUid?: string;
  sopInstanceUid?: string;
}

const now = (): { date: string; time: string } => {
  const d = new Date();
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return { date: `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}`, time: `${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}` };
};

const code = (value: string, scheme: string, meaning: string): DicomItem => dataset([
  [tag(0x0008, 0x0100), 'SH', value], [tag(0x0008, 0x0102), 'SH', scheme], [tag(0x0008, 0x0104), 'LO', meaning],
]);

/**
 * Encode `labels` (integer label map) as a DICOM Segmentation referencing `source`. Segments
 * whose value does not occur still appear in the segment list, with no frames.
 */
export function encodeDicomSeg(labels: Volume, segments: readonly SegSegment[], source: DicomSourceSeries, opts: DicomSegOptions = {}): Buffer {
  if (segments.length === 0) throw new MisfmError('ARGUMENT', 'a DICOM Segmentation needs at least one segment');
  if (segments.length > 65535) throw new MisfmError('ARGUMENT', `too many segments (${segments.length})`);
  const values = new Set<number>();
  for (const s of segments) {
    if (values.has(s.value) || s.value === 0) throw new MisfmError('ARGUMENT', `segment values must be distinct and non-zero, got ${s.value} for '${s.label}'`);
    values.add(s.value);
  }
  const [nx, ny, nz] = labels.size;
  if (nx > 65535 || ny > 65535) throw new MisfmError('ARGUMENT', `slice size ${nx}x${ny} is too large for DICOM`);
  const d = labels.direction;
  const row = [d[0], d[3], d[6]], col = [d[1], d[4], d[7]];
  const plane = nx * ny;
  // Frames: segment-major, then slice (the dimension order declared below).
  const frames: Array<{ seg: number; k: number }> = [];
  const data = labels.data;
  segments.forEach((s, si) => {
    for (let k = 0; k < nz; k++) {
      const base = k * plane;
      for (let i = 0; i < plane; i++) if (data[base + i] === s.value) { frames.push({ seg: si + 1, k }); break; }
    }
  });
  // A SEG holds at least one frame: an empty one of segment 1 when nothing was found.
  const emptyResult = frames.length === 0;
  if (emptyResult) frames.push({ seg: 1, k: 0 });
  const bits = new Uint8Array(Math.ceil(frames.length * plane / 8));
  frames.forEach(({ seg, k }, f) => {
    if (emptyResult) return;
    const v = segments[seg - 1]!.value, base = k * plane, off = f * plane;
    for (let i = 0; i < plane; i++) if (data[base + i] === v) { const b = off + i; bits[b >> 3]! |= 1 << (b & 7); }
  });

  const { date, time } = now();
  const dimOrg = newUid();
  const seriesUid = opts.seriesInstanceUid ?? newUid(), sopUid = opts.sopInstanceUid ?? newUid();
  const algorithm = opts.algorithmName ?? 'misfm';
  const version = opts.algorithmVersion ?? VERSION;
  const segmentItems = segments.map((s, i): DicomItem => {
    const codes = segmentCodes(s.label);
    return dataset([
      [tag(0x0062, 0x0003), 'SQ', [code(...codes.category)]],
      [tag(0x0062, 0x0004), 'US', [i + 1]],
      [tag(0x0062, 0x0005), 'LO', s.label.slice(0, 64)],
      [tag(0x0062, 0x0008), 'CS', 'AUTOMATIC'],
      [tag(0x0062, 0x0009), 'LO', algorithm.slice(0, 64)],
      [tag(0x0062, 0x000d), 'US', rgbToDicomLab(s.color ?? defaultColour(s.label, i))],
      [tag(0x0062, 0x000f), 'SQ', [code(...codes.type)]],
    ]);
  });
  const perFrame = frames.map(({ seg, k }): DicomItem => dataset([
    [tag(0x0020, 0x9111), 'SQ', [dataset([[tag(0x0020, 0x9157), 'UL', [seg, k + 1]]])]],
    [tag(0x0020, 0x9113), 'SQ', [dataset([[tag(0x0020, 0x0032), 'DS', dsList(voxelToWorld(labels, [0, 0, k]))]])]],
    [tag(0x0062, 0x000a), 'SQ', [dataset([[tag(0x0062, 0x000b), 'US', [seg]]])]],
  ]));
  const shared = dataset([
    [tag(0x0028, 0x9110), 'SQ', [dataset([
      [tag(0x0018, 0x0050), 'DS', ds(labels.spacing[2])],
      [tag(0x0018, 0x0088), 'DS', ds(labels.spacing[2])],
      [tag(0x0028, 0x0030), 'DS', dsList([labels.spacing[1], labels.spacing[0]])],
    ])]],
    [tag(0x0020, 0x9116), 'SQ', [dataset([[tag(0x0020, 0x0037), 'DS', dsList([...row, ...col])]])]],
    // Derived from the whole source series (frames may lie on a resampled grid, so not per frame).
    [tag(0x0008, 0x9124), 'SQ', [dataset([
      [tag(0x0008, 0x2112), 'SQ', source.instances.map((r) => dataset([
        [tag(0x0008, 0x1150), 'UI', r.sopClassUid], [tag(0x0008, 0x1155), 'UI', r.sopInstanceUid],
        [tag(0x0040, 0xa170), 'SQ', [code('121322', 'DCM', 'Source image for image processing operation')]],
      ]))],
      [tag(0x0008, 0x9215), 'SQ', [code('113076', 'DCM', 'Segmentation')]],
    ])]],
  ]);
  const dimIndex = (pointer: number, group: number, label: string): DicomItem => dataset([
    [tag(0x0020, 0x9164), 'UI', dimOrg], [tag(0x0020, 0x9165), 'AT', [pointer]], [tag(0x0020, 0x9167), 'AT', [group]],
    [tag(0x0020, 0x9421), 'LO', label],
  ]);
  const refInstances = source.instances.map((r) => dataset([[tag(0x0008, 0x1150), 'UI', r.sopClassUid], [tag(0x0008, 0x1155), 'UI', r.sopInstanceUid]]));
  const elements: Array<[number, string, DicomValue]> = [
    [tag(0x0008, 0x0008), 'CS', 'DERIVED\\PRIMARY'],
    [tag(0x0008, 0x0016), 'UI', SEG_SOP_CLASS],
    [tag(0x0008, 0x0018), 'UI', sopUid],
    [tag(0x0008, 0x0012), 'DA', date], [tag(0x0008, 0x0013), 'TM', time],
    [tag(0x0008, 0x0020), 'DA', ''], [tag(0x0008, 0x0030), 'TM', ''], [tag(0x0008, 0x0050), 'SH', ''], [tag(0x0008, 0x0090), 'PN', ''],
    [tag(0x0008, 0x0021), 'DA', date], [tag(0x0008, 0x0031), 'TM', time],
    [tag(0x0008, 0x0023), 'DA', date], [tag(0x0008, 0x0033), 'TM', time],
    [tag(0x0008, 0x0060), 'CS', 'SEG'],
    [tag(0x0008, 0x0070), 'LO', 'misfm'],
    [tag(0x0008, 0x103e), 'LO', (opts.seriesDescription ?? `misfm segmentation (${algorithm})`).slice(0, 64)],
    [tag(0x0008, 0x1090), 'LO', 'misfm'],
    [tag(0x0008, 0x1115), 'SQ', [dataset([[tag(0x0008, 0x114a), 'SQ', refInstances], [tag(0x0020, 0x000e), 'UI', source.seriesInstanceUid]])]],
    [tag(0x0010, 0x0010), 'PN', ''], [tag(0x0010, 0x0020), 'LO', ''], [tag(0x0010, 0x0030), 'DA', ''], [tag(0x0010, 0x0040), 'CS', ''],
    [tag(0x0018, 0x1000), 'LO', '1'],
    [tag(0x0018, 0x1020), 'LO', `misfm ${VERSION}`],
    [tag(0x0020, 0x000d), 'UI', source.studyInstanceUid],
    [tag(0x0020, 0x000e), 'UI', seriesUid],
    [tag(0x0020, 0x0010), 'SH', ''],
    [tag(0x0020, 0x0011), 'IS', String(opts.seriesNumber ?? 300)],
    [tag(0x0020, 0x0013), 'IS', '1'],
    [tag(0x0020, 0x0052), 'UI', source.frameOfReferenceUid],
    [tag(0x0020, 0x1040), 'LO', ''],
    [tag(0x0020, 0x9221), 'SQ', [dataset([[tag(0x0020, 0x9164), 'UI', dimOrg]])]],
    [tag(0x0020, 0x9222), 'SQ', [
      dimIndex(tag(0x0062, 0x000b), tag(0x0062, 0x000a), 'ReferencedSegmentNumber'),
      dimIndex(tag(0x0020, 0x0032), tag(0x0020, 0x9113), 'ImagePositionPatient'),
    ]],
    [tag(0x0028, 0x0002), 'US', [1]],
    [tag(0x0028, 0x0004), 'CS', 'MONOCHROME2'],
    [tag(0x0028, 0x0008), 'IS', String(frames.length)],
    [tag(0x0028, 0x0010), 'US', [ny]],
    [tag(0x0028, 0x0011), 'US', [nx]],
    [tag(0x0028, 0x0100), 'US', [1]],
    [tag(0x0028, 0x0101), 'US', [1]],
    [tag(0x0028, 0x0102), 'US', [0]],
    [tag(0x0028, 0x0103), 'US', [0]],
    [tag(0x0028, 0x2110), 'CS', '00'],
    [tag(0x0062, 0x0001), 'CS', 'BINARY'],
    [tag(0x0062, 0x0002), 'SQ', segmentItems],
    [tag(0x0070, 0x0080), 'CS', (opts.contentLabel ?? 'SEGMENTATION').toUpperCase().replace(/[^A-Z0-9_ ]/g, '_').slice(0, 16)],
    [tag(0x0070, 0x0081), 'LO', `misfm ${algorithm}`.slice(0, 64)],
    [tag(0x0070, 0x0084), 'PN', ''],
    [tag(0x5200, 0x9229), 'SQ', [shared]],
    [tag(0x5200, 0x9230), 'SQ', perFrame],
    [tag(0x7fe0, 0x0010), 'OB', bits],
  ];
  const out = dataset(elements);
  // Patient and study attributes come from the source (they override the empty defaults above).
  for (const [t, e] of source.patientStudy) out.set(t, e);
  return encodePart10(out, MISFM_IMPLEMENTATION_UID, `MISFM_${VERSION}`);
}

/** Encode and write atomically (see encodeDicomSeg). */
export async function writeDicomSeg(file: string, labels: Volume, segments: readonly SegSegment[], source: DicomSourceSeries, opts: DicomSegOptions = {}): Promise<void> {
  await writeFileAtomicAsync(file, encodeDicomSeg(labels, segments, source, opts));
}
