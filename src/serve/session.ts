/**
 * One open case: its image geometry, the label map under edit with undo/redo, the class names
 * gathered from models and saved records, the clicks made, and saving beside the case.
 *
 * Saving writes `<stem>.seg.nii.gz` (the label map on the image's exact grid) and `<stem>.seg.json`
 * (classes, clicks, edit log, a SHA-256 of the voxels), each atomically; reopening the case starts
 * from that saved state.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { readImage, writeLike, writeImage, type Grid } from '../io/image/index.js';
import type { Vec3, Volume } from '../io/volume.js';
import { MisfmError } from '../util/errors.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { VERSION } from '../version.js';
import { LabelHistory, labelArrayFor, type LabelArray } from './labels.js';
import { segPathFor } from './cases.js';
import { classTable, type ClassEntry } from './classes.js';

/** One click request as recorded. */
export interface ClickRecord {
  time: string;
  points: { label: number; positive: boolean; ijk: Vec3 }[];
  changedVoxels: number;
  windowsComputed: number;
  cacheHits: number;
  ms: number;
}

export interface EditLogEntry { time: string; kind: string; changedVoxels: number }

/** The parts of a saved `<stem>.seg.json` a reopened session uses. */
interface SavedRecord { classes?: { value: number; name: string }[]; clicks?: ClickRecord[]; edits?: EditLogEntry[] }

export interface SessionOpenOptions {
  id?: string;
  caseId: string;
  kind: 'image' | 'dicom';
  /** Absolute path of the case under the data folder (as listed, links not resolved). */
  casePath: string;
  /** Folder for converted viewer images. */
  cacheDir: string;
}

const sha256 = (a: LabelArray): string => createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex');

export class CaseSession {
  readonly id: string;
  readonly caseId: string;
  readonly kind: 'image' | 'dicom';
  readonly casePath: string;
  readonly grid: Grid;
  readonly history: LabelHistory;
  /** Label value -> name, from saved records and model outputs. */
  readonly names = new Map<number, string>();
  readonly clicks: ClickRecord[] = [];
  readonly editLog: EditLogEntry[] = [];
  /** NIfTI file the viewer loads for the image. */
  readonly viewerImage: string;
  readonly savedFrom: string | null;
  /** Version of the label map last saved (or loaded from a save). */
  savedVersion: number;
  /** Resolves once the engine holds a VISTA3D session for this case. */
  vista3d: Promise<void> | null = null;
  lastUsed = Date.now();
  private saving: Promise<unknown> = Promise.resolve();

  private constructor(o: SessionOpenOptions, grid: Grid, labels: LabelArray, viewerImage: string, savedFrom: string | null) {
    this.id = o.id ?? randomBytes(8).toString('hex');
    this.caseId = o.caseId;
    this.kind = o.kind;
    this.casePath = o.casePath;
    this.grid = grid;
    this.history = new LabelHistory(labels);
    this.viewerImage = viewerImage;
    this.savedFrom = savedFrom;
    this.savedVersion = 0;
  }

  /** Read the case (and its saved segmentation, when there is one). */
  static async open(o: SessionOpenOptions): Promise<CaseSession> {
    const image = await readImage(o.casePath);
    const grid: Grid = { size: image.size, spacing: image.spacing, origin: image.origin, direction: image.direction };
    const n = image.size[0] * image.size[1] * image.size[2];
    let viewerImage = o.casePath;
    if (!/\.nii(\.gz)?$/i.test(o.casePath)) {
      // NiiVue reads NIfTI; other formats (DICOM series included) are converted once, voxel order kept.
      fs.mkdirSync(o.cacheDir, { recursive: true });
      viewerImage = path.join(o.cacheDir, `${createHash('sha1').update(o.casePath).digest('hex').slice(0, 16)}.nii.gz`);
      if (!fs.existsSync(viewerImage)) await writeImage(viewerImage, image);
    }
    const seg = segPathFor(o.casePath, o.kind);
    let labels: LabelArray = labelArrayFor(0, n);
    let savedFrom: string | null = null;
    let record: SavedRecord | null = null;
    if (fs.existsSync(seg.labels)) {
      const saved = await readImage(seg.labels);
      if (saved.size.some((s, i) => s !== image.size[i])) {
        throw new MisfmError('GEOMETRY', `saved segmentation is ${saved.size.join('x')} but the image is ${image.size.join('x')}`, { file: seg.labels });
      }
      let max = 0;
      for (let i = 0; i < saved.data.length; i++) {
        const v = saved.data[i]!;
        if (!Number.isInteger(v) || v < 0) throw new MisfmError('DATA', `saved segmentation holds a non-label value ${v}`, { file: seg.labels });
        if (v > max) max = v;
      }
      labels = labelArrayFor(max, n);
      labels.set(saved.data);
      savedFrom = seg.labels;
      if (fs.existsSync(seg.record)) {
        try { record = JSON.parse(fs.readFileSync(seg.record, 'utf8')) as SavedRecord; } catch (err) {
          throw new MisfmError('DATA', `saved click record is not valid JSON: ${(err as Error).message}`, { file: seg.record });
        }
      }
    }
    const s = new CaseSession(o, grid, labels, viewerImage, savedFrom);
    for (const c of record?.classes ?? []) s.names.set(c.value, c.name);
    s.clicks.push(...(record?.clicks ?? []));
    s.editLog.push(...(record?.edits ?? []));
    return s;
  }

  get voxels(): number { return this.history.data.length; }

  /** The class table: saved/model names, plus values present in the map without a name. */
  classes(extra?: ReadonlyMap<number, string>): ClassEntry[] {
    const present = new Map<number, string>();
    for (const v of this.history.counts().keys()) if (v > 0) present.set(v, `label ${v}`);
    return classTable(this.names, extra, present);
  }

  /** Record an edit in the log kept with the saved file. */
  logEdit(kind: string, changedVoxels: number): void {
    this.editLog.push({ time: new Date().toISOString(), kind, changedVoxels });
  }

  /** Check a voxel index against the grid. */
  checkVoxel(ijk: unknown, what: string): Vec3 {
    const s = this.grid.size;
    if (!Array.isArray(ijk) || ijk.length !== 3 || !ijk.every((v, i) => Number.isInteger(v) && v >= 0 && v < s[i]!)) {
      throw new MisfmError('ARGUMENT', `${what}: voxel index ${JSON.stringify(ijk)} must be three integers inside the image (${s.join('x')})`);
    }
    return [ijk[0], ijk[1], ijk[2]] as Vec3;
  }

  /** A copy of the current map as a Volume on the image grid. */
  labelVolume(): Volume {
    return { data: this.history.data.slice(), size: [...this.grid.size] as Vec3, spacing: [...this.grid.spacing] as Vec3, origin: [...this.grid.origin] as Vec3, direction: [...this.grid.direction] as Volume['direction'] };
  }

  /** Write the label map and the record beside the case, each atomically; saves run one after another. */
  save(): Promise<{ labels: string; record: string; version: number; sha256: string }> {
    const run = async (): Promise<{ labels: string; record: string; version: number; sha256: string }> => {
      const version = this.history.version;
      const data = this.history.data.slice();
      const seg = segPathFor(this.casePath, this.kind);
      const digest = sha256(data);
      await writeLike(seg.labels, data, this.grid, { dtype: data instanceof Uint16Array ? 'uint16' : 'uint8' });
      writeJsonAtomic(seg.record, {
        format: 'misfm-serve-record-1',
        misfmVersion: VERSION,
        case: this.caseId,
        labels: path.basename(seg.labels),
        labelSha256: digest,
        savedAt: new Date().toISOString(),
        classes: this.classes().map(({ value, name }) => ({ value, name })),
        clicks: this.clicks,
        edits: this.editLog,
      });
      this.savedVersion = version;
      return { labels: seg.labels, record: seg.record, version, sha256: digest };
    };
    const p = this.saving.then(run, run);
    this.saving = p.catch(() => undefined);
    return p;
  }
}
