/**
 * The cases a server shows: image files (NIfTI, NRRD, MetaImage) and DICOM series folders found
 * under the data folder, named by their path relative to it. Dot entries (the default output
 * folder among them) and saved segmentations (`<stem>.seg.<ending>`) are not cases.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatOf } from '../io/image/index.js';
import { isInside } from './paths.js';

export interface ServedCase {
  /** Path relative to the data folder, '/'-separated: the case's id in the API. */
  id: string;
  kind: 'image' | 'dicom';
  /** Whether a saved segmentation exists beside it. */
  saved: boolean;
}

const SEG_TAG = '.seg';
const MAX_DEPTH = 6;

/** `<stem>.seg.nii.gz` beside an image file, `<folder>.seg.nii.gz` beside a DICOM folder. */
export function segPathFor(casePath: string, kind: 'image' | 'dicom'): { labels: string; record: string } {
  let stem = casePath;
  if (kind === 'image') {
    const f = formatOf(casePath);
    if (f !== undefined) stem = casePath.slice(0, casePath.length - f.ending.length);
  }
  return { labels: `${stem}${SEG_TAG}.nii.gz`, record: `${stem}${SEG_TAG}.json` };
}

function isSegFile(name: string): boolean {
  const f = formatOf(name);
  return f !== undefined && name.slice(0, name.length - f.ending.length).endsWith(SEG_TAG);
}

function looksDicom(file: string): boolean {
  if (file.toLowerCase().endsWith('.dcm')) return true;
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const b = Buffer.alloc(4);
    return fs.readSync(fd, b, 0, 4, 128) === 4 && b.toString('latin1') === 'DICM';
  } catch {
    return false;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Every case under `realRoot` (a real path), sorted by id. Links leaving the root are skipped. */
export function listServedCases(realRoot: string): ServedCase[] {
  const out: ServedCase[] = [];
  const seen = new Set<string>();
  const walk = (dir: string, rel: string, depth: number): void => {
    let real: string;
    try { real = fs.realpathSync(dir); } catch { return; }
    if (!isInside(realRoot, real) || seen.has(real)) return;
    seen.add(real);
    let entries: fs.Dirent[];
    try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { return; }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    let dicomFiles = 0, imageFiles = 0;
    const subdirs: string[] = [];
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const p = path.join(dir, e.name);
      let st: fs.Stats;
      try {
        const rp = fs.realpathSync(p);
        if (!isInside(realRoot, rp)) continue;
        st = fs.statSync(rp);
      } catch { continue; }
      const id = rel === '' ? e.name : `${rel}/${e.name}`;
      if (st.isDirectory()) { subdirs.push(e.name); continue; }
      if (!st.isFile()) continue;
      const f = formatOf(e.name);
      if (f !== undefined && f.format !== 'dicom') {
        if (isSegFile(e.name) || e.name.endsWith('.raw') || e.name.endsWith('.img')) continue;
        imageFiles++;
        out.push({ id, kind: 'image', saved: fs.existsSync(segPathFor(p, 'image').labels) });
      } else if (looksDicom(p)) {
        dicomFiles++;
      }
    }
    if (dicomFiles > 0 && imageFiles === 0 && rel !== '') out.push({ id: rel, kind: 'dicom', saved: fs.existsSync(segPathFor(dir, 'dicom').labels) });
    if (depth < MAX_DEPTH) for (const s of subdirs) walk(path.join(dir, s), rel === '' ? s : `${rel}/${s}`, depth + 1);
  };
  walk(realRoot, '', 0);
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}
