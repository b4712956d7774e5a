/**
 * The cache manifest: `manifest.json` in the cache folder lists every case with its sources,
 * fingerprint, cache files, geometry and statistics, and whether preparing it worked.
 *
 * Durability: rewriting a manifest of 100k cases after every case would cost O(n^2), so each
 * finished case is appended to `manifest.journal.jsonl` (one line, one write) and the manifest
 * itself is rewritten atomically every few seconds and at the end, after which the journal is
 * emptied. Loading applies the journal on top of the manifest, so a kill loses at most the cases
 * in flight, and a half-written last journal line is ignored.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MisfmError } from '../util/errors.js';
import { writeJsonAtomic } from '../util/atomic.js';
import type { Mat3, Vec3 } from '../io/volume.js';
import type { CacheDType } from './format.js';
import type { IntensityStats, LabelStats } from './stats.js';

export const MANIFEST_NAME = 'manifest.json';
export const JOURNAL_NAME = 'manifest.journal.jsonl';
export const MANIFEST_FORMAT = 'misfm-cache';
export const MANIFEST_VERSION = 1;

/** Where a case comes from (absolute paths). */
export interface CaseSource {
  image: string;
  /** DICOM series id within `image` (a folder), when it holds several series. */
  series?: string;
  label?: string;
}

/** A cache file of a case, relative to the cache folder. */
export interface CacheFileInfo {
  file: string;
  dtype: CacheDType;
  /** (D, H, W). */
  shape: [number, number, number];
  bytes: number;
}

export interface CaseRecord {
  id: string;
  status: 'ok' | 'failed';
  /** Why the case failed (status 'failed'). */
  reason?: string;
  source: CaseSource;
  /** Fingerprint of the source files and of the preprocessing settings; equal means up to date. */
  fingerprint: string;
  /** 'ct' (HU, int16 cache) or 'other'. */
  modality?: 'ct' | 'other';
  image?: CacheFileInfo;
  label?: CacheFileInfo & { stats: LabelStats; foregroundFile?: string };
  /** Geometry of the cached grid, Volume convention ((x,y,z) spacing/origin, row-major direction). */
  geometry?: { spacing: Vec3; origin: Vec3; direction: Mat3; sourceSize: Vec3; sourceSpacing: Vec3 };
  stats?: IntensityStats;
  /** Intensity of voxels with a non-zero label. */
  foregroundStats?: IntensityStats;
  /**
   * Geometry before resampling (after reorientation and body crop), which the dataset plan is
   * computed from; `key` fingerprints the sources under the settings it depends on, so a later
   * prepare reuses it instead of reading the image again.
   */
  native?: NativeGeometry;
  /** Non-fatal remarks (ignored channels, label not found, ...). */
  notes?: string[];
  /** Milliseconds spent preparing the case. */
  ms?: number;
  preparedAt?: string;
}

/** A case's geometry before resampling, in the cache's axis order ((x,y,z) spacing and size). */
export interface NativeGeometry {
  key: string;
  spacing: Vec3;
  size: Vec3;
  /** Orientation code of the source image (before reorientation). */
  orientation: string;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: number;
  createdAt: string;
  updatedAt: string;
  /** Preprocessing settings of the last run (each case's fingerprint covers its own). */
  preprocess: Record<string, unknown>;
  /** Label names from an nnU-Net dataset.json: value -> name. */
  labels?: Record<string, string>;
  cases: CaseRecord[];
}

export function emptyManifest(preprocess: Record<string, unknown>): Manifest {
  const now = new Date().toISOString();
  return { format: MANIFEST_FORMAT, version: MANIFEST_VERSION, createdAt: now, updatedAt: now, preprocess, cases: [] };
}

function isRecord(x: unknown): x is CaseRecord {
  if (typeof x !== 'object' || x === null) return false;
  const r = x as Partial<CaseRecord>;
  return typeof r.id === 'string' && (r.status === 'ok' || r.status === 'failed') && typeof r.fingerprint === 'string' &&
    typeof r.source === 'object' && r.source !== null && typeof r.source.image === 'string';
}

/**
 * Load the manifest of a cache folder with its journal applied. Returns undefined when the
 * folder has neither (a new cache). Throws a MisfmError naming the file when it is damaged.
 */
export function loadManifest(dir: string): Manifest | undefined {
  const file = path.join(dir, MANIFEST_NAME);
  const journal = path.join(dir, JOURNAL_NAME);
  let m: Manifest | undefined;
  if (fs.existsSync(file)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (err) {
      throw new MisfmError('DATA', `manifest is not valid JSON (${err instanceof Error ? err.message : String(err)})`, { file, cause: err });
    }
    const p = parsed as Partial<Manifest>;
    if (typeof p !== 'object' || p === null || p.format !== MANIFEST_FORMAT || !Array.isArray(p.cases)) {
      throw new MisfmError('DATA', `not a misfm cache manifest (expected "format": "${MANIFEST_FORMAT}" and a "cases" array)`, { file });
    }
    if (p.version !== MANIFEST_VERSION) throw new MisfmError('DATA', `manifest version ${String(p.version)} is not supported (expected ${MANIFEST_VERSION})`, { file });
    const bad = p.cases.findIndex((c) => !isRecord(c));
    if (bad >= 0) throw new MisfmError('DATA', `case ${bad} is malformed (needs id, status, fingerprint, source.image)`, { file });
    m = p as Manifest;
  }
  if (fs.existsSync(journal)) {
    const recs = readJournal(journal);
    if (recs.length > 0) {
      m ??= emptyManifest({});
      applyRecords(m, recs);
    }
  }
  return m;
}

/**
 * Case records of a journal. Lines that do not parse are skipped: they can only be records cut
 * short by a kill, whose cases are simply prepared again.
 */
function readJournal(file: string): CaseRecord[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new MisfmError('DATA', `cannot read journal: ${err instanceof Error ? err.message : String(err)}`, { file, cause: err });
  }
  const out: CaseRecord[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const v = (JSON.parse(line) as { case?: unknown }).case;
      if (isRecord(v)) out.push(v);
    } catch {
      // a half-written line
    }
  }
  return out;
}

/** Insert or replace records by id (later wins), keeping the manifest's order otherwise. */
export function applyRecords(m: Manifest, recs: readonly CaseRecord[]): void {
  const at = new Map(m.cases.map((c, i) => [c.id, i]));
  for (const r of recs) {
    const i = at.get(r.id);
    if (i === undefined) {
      at.set(r.id, m.cases.length);
      m.cases.push(r);
    } else {
      m.cases[i] = r;
    }
  }
}

/** Write the manifest atomically, then empty the journal (its records are now in the manifest). */
export function saveManifest(dir: string, m: Manifest): void {
  m.updatedAt = new Date().toISOString();
  writeJsonAtomic(path.join(dir, MANIFEST_NAME), m, 1);
  fs.rmSync(path.join(dir, JOURNAL_NAME), { force: true });
}

/** Appends finished cases to the journal, one line and one write call per case. */
export class Journal {
  private fd: number;
  readonly file: string;
  constructor(dir: string) {
    this.file = path.join(dir, JOURNAL_NAME);
    try {
      this.fd = fs.openSync(this.file, 'a');
    } catch (err) {
      throw new MisfmError('DATA', `cannot open journal: ${err instanceof Error ? err.message : String(err)}`, { file: this.file, cause: err });
    }
  }

  append(rec: CaseRecord): void {
    // A leading newline terminates a half-written line left by a crash; blank lines are skipped on read.
    const line = Buffer.from(`\n${JSON.stringify({ case: rec })}\n`, 'utf8');
    let off = 0;
    while (off < line.length) off += fs.writeSync(this.fd, line, off, line.length - off);
  }

  /** Reopen after saveManifest removed the file. */
  reset(): void {
    fs.closeSync(this.fd);
    this.fd = fs.openSync(this.file, 'a');
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

/** A case ready for loading: absolute cache file paths, checked to exist. */
export interface CachedCase {
  id: string;
  imageFile: string;
  image: CacheFileInfo;
  labelFile?: string;
  /** The label map the case was prepared from (for messages). */
  sourceLabel?: string;
  label?: CaseRecord['label'];
  foregroundFile?: string;
  modality: 'ct' | 'other';
  stats?: IntensityStats;
}

/**
 * The successfully prepared cases of a cache folder, with absolute paths. Throws a MisfmError
 * naming the manifest when it is missing or lists no usable case, and naming the file when a
 * listed cache file is missing.
 */
export function readyCases(dir: string, opts: { needLabels?: boolean; ids?: readonly string[] } = {}): CachedCase[] {
  const m = loadManifest(dir);
  const file = path.join(dir, MANIFEST_NAME);
  if (m === undefined) throw new MisfmError('DATA', 'no cache manifest here; run `misfm prepare` first', { file });
  let cases = m.cases.filter((c) => c.status === 'ok' && c.image !== undefined);
  if (opts.ids !== undefined) {
    const known = new Map(cases.map((c) => [c.id, c]));
    const missing = opts.ids.filter((id) => !known.has(id));
    if (missing.length > 0) throw new MisfmError('DATA', `case(s) not in the cache or not prepared successfully: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}`, { file });
    cases = opts.ids.map((id) => known.get(id)!);
  }
  if (opts.needLabels === true) {
    const unlabelled = cases.filter((c) => c.label === undefined);
    if (opts.ids !== undefined && unlabelled.length > 0) {
      throw new MisfmError('DATA', `case(s) without a label: ${unlabelled.slice(0, 5).map((c) => c.id).join(', ')}`, { file });
    }
    cases = cases.filter((c) => c.label !== undefined);
  }
  if (cases.length === 0) {
    throw new MisfmError('DATA', `no usable case${opts.needLabels === true ? ' with a label' : ''} (${m.cases.length} listed, ${m.cases.filter((c) => c.status === 'failed').length} failed)`, { file });
  }
  return cases.map((c) => {
    const out: CachedCase = { id: c.id, imageFile: path.join(dir, c.image!.file), image: c.image!, modality: c.modality ?? 'other' };
    if (c.stats !== undefined) out.stats = c.stats;
    if (c.label !== undefined) {
      out.label = c.label;
      out.labelFile = path.join(dir, c.label.file);
      if (c.source.label !== undefined) out.sourceLabel = c.source.label;
      if (c.label.foregroundFile !== undefined) out.foregroundFile = path.join(dir, c.label.foregroundFile);
    }
    for (const f of [out.imageFile, out.labelFile, out.foregroundFile]) {
      if (f !== undefined && !fs.existsSync(f)) {
        throw new MisfmError('DATA', `the manifest lists case ${c.id} with cache file ${path.relative(dir, f)}, which is missing; re-run \`misfm prepare\``, { file: f });
      }
    }
    return out;
  });
}
