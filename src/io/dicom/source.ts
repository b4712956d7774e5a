/**
 * What a derived DICOM object (a Segmentation) must copy from and point to in its source series:
 * the patient and study attributes, the Frame of Reference, and every source instance.
 */
import * as fs from 'node:fs/promises';
import { DicomError } from '../image/errors.js';
import { scanDicomFiles, scanDicomFolder, selectSeries } from '../image/dicom-scan.js';
import { formatSeriesTable } from '../image/dicom-read.js';
import { parseDataset, getString, tag, type DicomItem } from './dataset.js';

export interface DicomSourceSeries {
  /** The folder or file the series was read from (for messages). */
  path: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  frameOfReferenceUid: string;
  /** SOP class and instance of each source slice, in slice order. */
  instances: Array<{ sopClassUid: string; sopInstanceUid: string }>;
  /** Patient, study and patient-study attributes of the first slice, copied verbatim. */
  patientStudy: DicomItem;
}

/** Patient / General Study / Patient Study attributes a derived object carries over. */
const COPIED = [
  tag(0x0008, 0x0005), // SpecificCharacterSet
  tag(0x0008, 0x0020), tag(0x0008, 0x0030), tag(0x0008, 0x0050), tag(0x0008, 0x0090), tag(0x0008, 0x1030),
  tag(0x0010, 0x0010), tag(0x0010, 0x0020), tag(0x0010, 0x0021), tag(0x0010, 0x0030), tag(0x0010, 0x0040),
  tag(0x0010, 0x1010), tag(0x0010, 0x1020), tag(0x0010, 0x1030),
  tag(0x0020, 0x000d), tag(0x0020, 0x0010),
];

/**
 * Scan a DICOM folder (or file) as readImage does and collect the source reference of the chosen
 * series. Throws a DicomError naming the path when the series cannot be found or parsed.
 */
export async function readDicomSource(target: string, opts: { seriesUid?: string; pickLargest?: boolean } = {}): Promise<DicomSourceSeries> {
  let st;
  try { st = await fs.stat(target); } catch { throw new DicomError(target, 'file or folder not found'); }
  const scan = st.isDirectory() ? await scanDicomFolder(target) : await scanDicomFiles(target, [target]);
  const { series } = selectSeries(scan, opts.seriesUid, opts.pickLargest ?? false, formatSeriesTable);
  const first = series.slices[0]!;
  let full: DicomItem;
  try {
    full = parseDataset(await fs.readFile(first.file)).dataset;
  } catch (err) {
    throw new DicomError(first.file, `cannot read the source's patient/study attributes: ${err instanceof Error ? err.message : String(err)}`, err);
  }
  const patientStudy: DicomItem = new Map();
  for (const t of COPIED) { const e = full.get(t); if (e !== undefined && e.vr !== 'UN') patientStudy.set(t, e); }
  const h = first.header;
  if (h.studyUid === '' || h.seriesUid === '') throw new DicomError(target, 'the source series has no Study/Series Instance UID, which a DICOM Segmentation must reference');
  return {
    path: target,
    studyInstanceUid: h.studyUid,
    seriesInstanceUid: h.seriesUid,
    frameOfReferenceUid: h.frameOfReferenceUid || getString(full, tag(0x0020, 0x0052)),
    instances: series.slices.map((s) => ({ sopClassUid: s.header.sopClassUid, sopInstanceUid: s.header.sopInstanceUid })),
    patientStudy,
  };
}
