/**
 * Synthetic CT series for the DICOM tests: each slice is a small, valid CT Image Storage file
 * (explicit VR little endian, int16 with RescaleIntercept -1024) whose pixel (i, j) holds
 * round(f(world position of that pixel)), for any slice positions and orientation: tilted,
 * unevenly spaced, oblique. Written with misfm's own DICOM encoder (src/io/dicom/dataset.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Vec3 } from '../../src/io/volume.js';
import { dataset, dsList, encodePart10, tag, type DicomItem } from '../../src/io/dicom/dataset.js';

export interface SynthSeries {
  rows: number;
  cols: number;
  /** [x (along rows), y (along columns)] mm. */
  spacing: [number, number];
  row: Vec3;
  col: Vec3;
  positions: Vec3[];
  /** HU at a world point. */
  value: (w: Vec3) => number;
  studyUid?: string;
  seriesUid?: string;
  frameOfReferenceUid?: string;
  /** Write the files in this order of slice index (default reversed, so that sorting is exercised). */
  order?: number[];
}

/** World position of pixel (i, j) of a slice at `p`. */
export function pixelWorld(s: Pick<SynthSeries, 'row' | 'col' | 'spacing'>, p: Vec3, i: number, j: number): Vec3 {
  return [0, 1, 2].map((a) => p[a]! + i * s.spacing[0] * s.row[a]! + j * s.spacing[1] * s.col[a]!) as Vec3;
}

/** Write the series into `dir` (created); returns the file paths in slice order and the SOP instance UIDs. */
export function writeSynthSeries(dir: string, s: SynthSeries): { files: string[]; sopUids: string[] } {
  fs.mkdirSync(dir, { recursive: true });
  const study = s.studyUid ?? '1.2.826.0.1.3680043.8.498.1', series = s.seriesUid ?? '1.2.826.0.1.3680043.8.498.2';
  const frame = s.frameOfReferenceUid ?? '1.2.826.0.1.3680043.8.498.3';
  const files: string[] = [], sopUids: string[] = [];
  const order = s.order ?? s.positions.map((_, k) => s.positions.length - 1 - k);
  for (const [n, k] of order.entries()) {
    const p = s.positions[k]!;
    const px = new Int16Array(s.rows * s.cols);
    for (let j = 0; j < s.rows; j++) for (let i = 0; i < s.cols; i++) px[j * s.cols + i] = Math.round(s.value(pixelWorld(s, p, i, j))) + 1024;
    const sop = `${series}.${k + 1}`;
    const ds: DicomItem = dataset([
      [tag(0x0008, 0x0008), 'CS', 'ORIGINAL\\PRIMARY\\AXIAL'],
      [tag(0x0008, 0x0016), 'UI', '1.2.840.10008.5.1.4.1.1.2'],
      [tag(0x0008, 0x0018), 'UI', sop],
      [tag(0x0008, 0x0020), 'DA', '20240102'],
      [tag(0x0008, 0x0030), 'TM', '101500'],
      [tag(0x0008, 0x0050), 'SH', 'ACC1'],
      [tag(0x0008, 0x0060), 'CS', 'CT'],
      [tag(0x0008, 0x0070), 'LO', 'synthetic'],
      [tag(0x0008, 0x0090), 'PN', ''],
      [tag(0x0008, 0x103e), 'LO', 'synthetic tilted/uneven CT'],
      [tag(0x0010, 0x0010), 'PN', 'Test^Synthetic'],
      [tag(0x0010, 0x0020), 'LO', 'SYN001'],
      [tag(0x0010, 0x0030), 'DA', ''],
      [tag(0x0010, 0x0040), 'CS', 'O'],
      [tag(0x0018, 0x0050), 'DS', '1'],
      [tag(0x0020, 0x000d), 'UI', study],
      [tag(0x0020, 0x000e), 'UI', series],
      [tag(0x0020, 0x0010), 'SH', '1'],
      [tag(0x0020, 0x0011), 'IS', '3'],
      [tag(0x0020, 0x0013), 'IS', String(k + 1)],
      [tag(0x0020, 0x0032), 'DS', dsList(p)],
      [tag(0x0020, 0x0037), 'DS', dsList([...s.row, ...s.col])],
      [tag(0x0020, 0x0052), 'UI', frame],
      [tag(0x0020, 0x1040), 'LO', ''],
      [tag(0x0028, 0x0002), 'US', [1]],
      [tag(0x0028, 0x0004), 'CS', 'MONOCHROME2'],
      [tag(0x0028, 0x0010), 'US', [s.rows]],
      [tag(0x0028, 0x0011), 'US', [s.cols]],
      [tag(0x0028, 0x0030), 'DS', dsList([s.spacing[1], s.spacing[0]])],
      [tag(0x0028, 0x0100), 'US', [16]],
      [tag(0x0028, 0x0101), 'US', [16]],
      [tag(0x0028, 0x0102), 'US', [15]],
      [tag(0x0028, 0x0103), 'US', [1]],
      [tag(0x0028, 0x1052), 'DS', '-1024'],
      [tag(0x0028, 0x1053), 'DS', '1'],
      [tag(0x0028, 0x1054), 'LO', 'HU'],
      [tag(0x7fe0, 0x0010), 'OW', new Uint8Array(px.buffer)],
    ]);
    const file = path.join(dir, `IM${String(n + 1).padStart(4, '0')}.dcm`);
    fs.writeFileSync(file, encodePart10(ds, '1.2.826.0.1.3680043.8.498.99', 'misfm-test'));
    files[k] = file;
    sopUids[k] = sop;
  }
  return { files, sopUids };
}
