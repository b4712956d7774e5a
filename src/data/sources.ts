/**
 * Finding the cases to prepare: image files, folders (searched recursively; each folder holding
 * DICOM files contributes its series), CSV lists (image[,label]) and nnU-Net dataset folders
 * (imagesTr/<case>_0000<ending>, labelsTr/<case><ending>, dataset.json), plus label matching
 * from a labels folder and source fingerprints for resuming.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { MisfmError } from '../util/errors.js';
import { formatOf, listDicomSeries } from '../io/image/index.js';
import type { CaseSource } from './manifest.js';
import { splitCsvLine } from '../util/csv.js';
import { listEntries } from '../util/fs-entries.js';

/** One case to prepare. */
export interface CaseSpec {
  id: string;
  source: CaseSource;
  /** DICOM Modality of the series, when known. */
  modality?: string;
  /** Remarks recorded with the case. */
  notes: string[];
  /** Set when the case is known to be unusable before reading it (recorded as failed). */
  error?: string;
}

export interface Discovery {
  cases: CaseSpec[];
  /** Files skipped while walking folders (not images), for the report. */
  ignored: number;
  /** Label names from an nnU-Net dataset.json (value -> name). */
  labelNames?: Record<string, string>;
}

export interface DiscoverOptions {
  /** Folder with label maps named like the images (stem, or stem without _0000). */
  labels?: string;
  /** CSV file listing image[,label] rows (paths relative to the CSV's folder). */
  csv?: string;
  /** Absolute paths never entered while walking (the cache folder itself). */
  exclude?: string[];
}

/** A file or folder name reduced to a safe case id. */
export function safeId(name: string): string {
  const s = name.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '');
  return s === '' ? 'case' : s;
}

/** File name without its image ending (.nii.gz etc.) or, if unknown, its last extension. */
export function stemOf(file: string): string {
  const base = path.basename(file);
  const f = formatOf(base);
  if (f !== undefined) return base.slice(0, base.length - f.ending.length);
  const ext = path.extname(base);
  return ext === '' ? base : base.slice(0, -ext.length);
}

async function isDicomFile(file: string): Promise<boolean> {
  const f = formatOf(file);
  if (f !== undefined) return f.format === 'dicom';
  let fh;
  try {
    fh = await fsp.open(file, 'r');
    const b = Buffer.alloc(132);
    const { bytesRead } = await fh.read(b, 0, 132, 0);
    return bytesRead === 132 && b.subarray(128, 132).toString('latin1') === 'DICM';
  } catch {
    return false;
  } finally {
    await fh?.close();
  }
}

const NOT_IMAGES = /\.(json|csv|txt|md|pkl|npz|npy|py|sh|log|jsonl|png|jpg|jpeg|img|raw|zraw|gz|zip|tar)$/i;

interface Walk { files: string[]; dicomDirs: string[]; ignored: number }

async function walk(dir: string, exclude: Set<string>, acc: Walk, visited = new Set<string>()): Promise<void> {
  let entries;
  try {
    entries = await listEntries(dir, visited);
  } catch (err) {
    throw new MisfmError('DATA', `cannot list folder: ${err instanceof Error ? err.message : String(err)}`, { file: dir, cause: err });
  }
  let hasDicom = false;
  for (const e of entries) {
    if (exclude.has(e.path)) continue;
    if (e.kind === 'dir') {
      await walk(e.path, exclude, acc, visited);
    } else if (e.kind === 'file') {
      const f = formatOf(e.name);
      if (f !== undefined && f.format !== 'dicom') acc.files.push(e.path);
      else if (f?.format === 'dicom' || (!NOT_IMAGES.test(e.name) && await isDicomFile(e.path))) hasDicom = true;
      else acc.ignored++;
    }
  }
  if (hasDicom) acc.dicomDirs.push(dir);
}

function labelIndex(dir: string): Map<string, string> {
  let names: string[];
  try {
    names = fs.readdirSync(dir).sort();
  } catch (err) {
    throw new MisfmError('DATA', `cannot list the labels folder: ${err instanceof Error ? err.message : String(err)}`, { file: dir, cause: err });
  }
  const m = new Map<string, string>();
  for (const n of names) {
    if (n.startsWith('.') || formatOf(n) === undefined) continue;
    const s = stemOf(n);
    if (!m.has(s)) m.set(s, path.join(dir, n));
  }
  return m;
}

/** Parse a CSV of image[,label] rows (header row optional; paths relative to the CSV's folder). */
export function readCaseCsv(file: string): CaseSpec[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new MisfmError('DATA', `cannot read CSV: ${err instanceof Error ? err.message : String(err)}`, { file, cause: err });
  }
  const base = path.dirname(path.resolve(file));
  const rows = text.split(/\r?\n/).map((l) => splitCsvLine(l)).filter((r) => r.some((c) => c !== ''));
  if (rows.length === 0) throw new MisfmError('DATA', 'CSV lists no cases', { file });
  let imageCol = 0, labelCol = 1, idCol = -1, start = 0;
  const head = rows[0]!.map((c) => c.toLowerCase());
  if (head.includes('image')) {
    imageCol = head.indexOf('image');
    labelCol = head.indexOf('label');
    idCol = head.indexOf('id');
    start = 1;
  }
  const out: CaseSpec[] = [];
  for (let i = start; i < rows.length; i++) {
    const r = rows[i]!;
    const img = r[imageCol] ?? '';
    if (img === '') throw new MisfmError('DATA', `line ${i + 1}: no image path`, { file });
    const source: CaseSource = { image: path.resolve(base, img) };
    const lab = labelCol >= 0 ? r[labelCol] ?? '' : '';
    if (lab !== '') source.label = path.resolve(base, lab);
    const id = idCol >= 0 && (r[idCol] ?? '') !== '' ? safeId(r[idCol]!) : safeId(stemOf(img));
    out.push({ id, source, notes: [] });
  }
  return out;
}

/** The cases of an nnU-Net raw dataset folder (imagesTr + labelsTr + dataset.json). */
export function readNnunetDataset(dir: string): { cases: CaseSpec[]; labelNames?: Record<string, string> } {
  const dsFile = path.join(dir, 'dataset.json');
  let ending = '.nii.gz';
  let labelNames: Record<string, string> | undefined;
  if (fs.existsSync(dsFile)) {
    let ds: { file_ending?: unknown; labels?: unknown };
    try {
      ds = JSON.parse(fs.readFileSync(dsFile, 'utf8')) as typeof ds;
    } catch (err) {
      throw new MisfmError('DATA', `dataset.json is not valid JSON (${err instanceof Error ? err.message : String(err)})`, { file: dsFile, cause: err });
    }
    if (typeof ds.file_ending === 'string') ending = ds.file_ending;
    if (typeof ds.labels === 'object' && ds.labels !== null) {
      labelNames = {};
      for (const [k, v] of Object.entries(ds.labels as Record<string, unknown>)) {
        // nnU-Net v2: {"name": value}; v1: {"value": "name"}.
        if (typeof v === 'number') labelNames[String(v)] = k;
        else if (typeof v === 'string' && /^\d+$/.test(k)) labelNames[k] = v;
      }
    }
  }
  const imgDir = path.join(dir, 'imagesTr');
  const labDir = path.join(dir, 'labelsTr');
  const names = fs.readdirSync(imgDir).filter((n) => n.endsWith(ending) && !n.startsWith('.')).sort();
  const channels = new Map<string, string[]>();
  for (const n of names) {
    const m = /^(.*)_(\d{4})$/.exec(n.slice(0, -ending.length));
    if (m === null) continue;
    const list = channels.get(m[1]!) ?? [];
    list.push(m[2]!);
    channels.set(m[1]!, list);
  }
  const cases: CaseSpec[] = [];
  for (const [c, chans] of channels) {
    const notes: string[] = [];
    const spec: CaseSpec = { id: safeId(c), source: { image: path.join(imgDir, `${c}_0000${ending}`) }, notes };
    if (!chans.includes('0000')) spec.error = `no channel _0000 in imagesTr (found ${chans.map((x) => `_${x}`).join(', ')})`;
    if (chans.length > 1) notes.push(`only channel _0000 is cached; ignored ${chans.filter((x) => x !== '0000').map((x) => `_${x}`).join(', ')}`);
    const lab = path.join(labDir, `${c}${ending}`);
    if (fs.existsSync(lab)) spec.source.label = lab;
    else if (fs.existsSync(labDir)) notes.push('no label in labelsTr');
    cases.push(spec);
  }
  if (cases.length === 0) throw new MisfmError('DATA', `no images named <case>_0000${ending} in imagesTr`, { file: imgDir });
  return labelNames !== undefined ? { cases, labelNames } : { cases };
}

/**
 * All cases named by `inputs` (files, folders, CSV files, nnU-Net dataset folders). Throws a
 * MisfmError for an input that does not exist; cases whose folder cannot be listed as DICOM are
 * returned with `error` set, so that they are reported rather than stopping the run.
 */
export async function discoverCases(inputs: readonly string[], opts: DiscoverOptions = {}): Promise<Discovery> {
  const cases: CaseSpec[] = [];
  let ignored = 0;
  let labelNames: Record<string, string> | undefined;
  const exclude = new Set((opts.exclude ?? []).map((p) => path.resolve(p)));
  if (opts.labels !== undefined) exclude.add(path.resolve(opts.labels));
  const all = [...inputs];
  if (opts.csv !== undefined) all.push(opts.csv);
  for (const raw of all) {
    const input = path.resolve(raw);
    let st;
    try {
      st = fs.statSync(input);
    } catch {
      throw new MisfmError('DATA', 'input not found', { file: raw });
    }
    if (st.isFile() && input.toLowerCase().endsWith('.csv')) {
      cases.push(...readCaseCsv(input));
    } else if (st.isFile()) {
      cases.push({ id: safeId(stemOf(input)), source: { image: input }, notes: [] });
    } else if (fs.existsSync(path.join(input, 'imagesTr'))) {
      const ds = readNnunetDataset(input);
      cases.push(...ds.cases);
      if (ds.labelNames !== undefined) labelNames = { ...labelNames, ...ds.labelNames };
    } else {
      const w: Walk = { files: [], dicomDirs: [], ignored: 0 };
      await walk(input, exclude, w);
      ignored += w.ignored;
      for (const f of w.files) cases.push({ id: safeId(stemOf(f)), source: { image: f }, notes: [] });
      // listDicomSeries searches sub-folders too: list only the top-most DICOM folders.
      const dirs = w.dicomDirs.filter((d) => !w.dicomDirs.some((o) => o !== d && d.startsWith(o + path.sep)));
      // Header scans of many series folders overlap their file I/O; results keep folder order.
      const lists = await mapLimit(dirs.sort(), 4, (d) => dicomCases(d, input));
      for (const l of lists) cases.push(...l);
    }
  }
  if (opts.labels !== undefined) attachLabels(cases, path.resolve(opts.labels));
  uniquifyIds(cases);
  return labelNames !== undefined ? { cases, ignored, labelNames } : { cases, ignored };
}

async function dicomCases(dir: string, root: string): Promise<CaseSpec[]> {
  const rel = path.relative(root, dir);
  const baseId = safeId(rel === '' ? path.basename(dir) : rel.split(path.sep).join('_'));
  let series;
  try {
    series = await listDicomSeries(dir);
  } catch (err) {
    return [{ id: baseId, source: { image: dir }, notes: [], error: err instanceof Error ? err.message : String(err) }];
  }
  if (series.length === 0) return [{ id: baseId, source: { image: dir }, notes: [], error: 'DICOM files but no image series' }];
  return series.map((s, i) => {
    const spec: CaseSpec = { id: series.length > 1 ? `${baseId}_s${i + 1}` : baseId, source: { image: dir }, notes: [] };
    if (series.length > 1) spec.source.series = s.id;
    if (s.modality !== '') spec.modality = s.modality;
    if (s.problem !== undefined) spec.error = `series ${s.id}: ${s.problem}`;
    return spec;
  });
}

function attachLabels(cases: CaseSpec[], dir: string): void {
  const idx = labelIndex(dir);
  for (const c of cases) {
    if (c.source.label !== undefined) continue;
    const stem = c.source.series === undefined && fs.statSync(c.source.image, { throwIfNoEntry: false })?.isFile() === true ? stemOf(c.source.image) : c.id;
    const lab = idx.get(stem) ?? idx.get(stem.replace(/_0000$/, ''));
    if (lab !== undefined) c.source.label = lab;
    else c.notes.push(`no label named ${stem}.* in ${dir}`);
  }
}

/** Make ids unique: colliding ones get a short hash of their source. */
export function uniquifyIds(cases: CaseSpec[]): void {
  const count = new Map<string, number>();
  for (const c of cases) count.set(c.id, (count.get(c.id) ?? 0) + 1);
  const used = new Set<string>();
  for (const c of cases) {
    if (count.get(c.id)! > 1 || used.has(c.id)) c.id = `${c.id}-${sourceHash(c.source)}`;
    let id = c.id, k = 2;
    while (used.has(id)) id = `${c.id}-${k++}`;
    c.id = id;
    used.add(id);
  }
}

function sourceHash(s: CaseSource): string {
  return createHash('sha1').update(`${s.image}\0${s.series ?? ''}\0${s.label ?? ''}`).digest('hex').slice(0, 8);
}

/** `fn` over `items` with at most `limit` calls in flight; results in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  }));
  return out;
}

/** Bytes of a file hashed into its fingerprint (header region; size and mtime cover the rest). */
const HEAD_HASH_BYTES = 8192;

/**
 * Fingerprint of a file (size, mtime, hash of its first 8 KiB) or of a folder (every file's
 * relative path, size and mtime). Cheap enough to compute for every case on every run.
 */
export async function pathFingerprint(p: string): Promise<string> {
  const st = await fsp.stat(p);
  const h = createHash('sha1');
  if (st.isDirectory()) {
    const files: string[] = [];
    const visited = new Set<string>();
    const rec = async (d: string): Promise<void> => {
      for (const e of await listEntries(d, visited)) {
        if (e.kind === 'dir') await rec(e.path);
        else if (e.kind === 'file') files.push(e.path);
      }
    };
    await rec(p);
    for (const f of files) {
      const s = await fsp.stat(f);
      h.update(`${path.relative(p, f)}:${s.size}:${s.mtimeMs}\n`);
    }
    return h.digest('hex');
  }
  h.update(`${st.size}:${st.mtimeMs}:`);
  const fh = await fsp.open(p, 'r');
  try {
    const b = Buffer.alloc(Math.min(HEAD_HASH_BYTES, st.size));
    if (b.length > 0) await fh.read(b, 0, b.length, 0);
    h.update(b);
  } finally {
    await fh.close();
  }
  return h.digest('hex');
}

/**
 * Fingerprint of a case: its sources' fingerprints and the preprocessing key. A source that
 * cannot be read fingerprints as 'missing' (the case then fails when prepared, with the reason).
 */
export async function caseFingerprint(c: CaseSpec, preprocessKey: string): Promise<string> {
  const part = async (p: string | undefined): Promise<string> => {
    if (p === undefined) return '-';
    try {
      return await pathFingerprint(p);
    } catch {
      return 'missing';
    }
  };
  const [a, b] = await Promise.all([part(c.source.image), part(c.source.label)]);
  return createHash('sha1').update(`${a}|${c.source.series ?? ''}|${b}|${preprocessKey}`).digest('hex');
}
