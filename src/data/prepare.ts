/**
 * `prepare`: turn a collection of medical images into a volume cache (one random-access file per
 * volume, a manifest, foreground samples), in parallel worker threads, resumably.
 *
 * Each case is fingerprinted (sources + preprocessing settings); a case already in the manifest
 * with the same fingerprint is skipped, so re-running after a crash, or after adding or changing
 * a few files, only does the missing work. A bad case never stops the run: it is recorded as
 * failed with its reason. Progress goes to stderr, events to `prepare.log.jsonl`, and a summary to
 * `report.json`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MisfmError } from '../util/errors.js';
import { JsonlLogger } from '../util/jsonl.js';
import { Progress, type ProgressStream } from '../util/progress.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { caseFiles, prepareCase, type CaseTask } from './case.js';
import type { ForegroundSampling } from './foreground.js';
import { applyRecords, emptyManifest, Journal, loadManifest, saveManifest, type CaseRecord, type Manifest } from './manifest.js';
import { TaskPool } from './pool.js';
import { normalizeSpec, specKey, type PreprocessSpec } from './preprocess.js';
import { caseFingerprint, discoverCases, mapLimit, type CaseSpec, type DiscoverOptions } from './sources.js';
import { buildPlan, planSpacing, writePlan, type DatasetPlan, type SpacingSource } from './plan.js';
import type { Vec3 } from '../io/volume.js';

/**
 * Preprocessing settings of a prepare run. The spacing may also be 'plan' (the dataset's own, by
 * nnU-Net's rule: see ./plan.ts; costs one extra read of each new case) or 'native' (the default
 * of this function: each case keeps its spacing; the CLI and the training commands plan).
 */
export type PrepareSpec = Omit<PreprocessSpec, 'spacing'> & { spacing?: Vec3 | 'plan' | 'native' };

export const REPORT_NAME = 'report.json';
export const LOG_NAME = 'prepare.log.jsonl';
const LOCK_NAME = 'prepare.lock';

export interface PrepareOptions extends DiscoverOptions {
  preprocess?: PrepareSpec;
  /** Worker threads; 0 prepares in this thread. Default: available cores (at most the number of cases). */
  workers?: number;
  foreground?: ForegroundSampling;
  /** Prepare again cases that failed before with unchanged sources. Default false. */
  retryFailed?: boolean;
  /** Progress output: a stream (default process.stderr) or false for none. */
  progress?: ProgressStream | false;
  /** Rewrite the manifest at most this often while running (ms); the journal covers the rest. Default 5000. */
  flushMs?: number;
  /** Called after each case finishes (in completion order). */
  onCase?: (rec: CaseRecord) => void;
}

export interface PrepareReport {
  outDir: string;
  startedAt: string;
  finishedAt: string;
  seconds: number;
  /** Cases found in the inputs. */
  discovered: number;
  /** Cases skipped because the manifest already has them with the same fingerprint. */
  skipped: number;
  /** Cases found under a new path with the content of a manifest case: they kept its id (not prepared twice). */
  moved: number;
  processed: number;
  /** Of the processed cases. */
  ok: number;
  failed: number;
  /** Mean wall time per processed case (ms) and mean worker time per case (ms). */
  msPerCase: number;
  workerMsPerCase: number;
  workers: number;
  /** Files that were not images, skipped while walking folders. */
  ignoredFiles: number;
  /** All cases of these inputs that are failed in the manifest (this run or an earlier one). */
  failures: { id: string; source: string; reason: string }[];
  /** Usable cases in the whole manifest. */
  manifestOk: number;
}

export interface PrepareResult {
  manifest: Manifest;
  report: PrepareReport;
  /** The dataset's fingerprint and plan (also written to outDir/plan.json); undefined when no case is usable. */
  plan: DatasetPlan | undefined;
}

function sameSource(a: CaseRecord['source'], b: CaseRecord['source']): boolean {
  return a.image === b.image && (a.series ?? '') === (b.series ?? '') && (a.label ?? '') === (b.label ?? '');
}

/**
 * Keep the id a source had in the manifest (stable across runs); make the rest unique. Returns the
 * cases that matched no record by source (candidates for {@link adoptMoved}).
 */
function assignIds(cases: CaseSpec[], m: Manifest): Set<CaseSpec> {
  const used = new Set<string>();
  const byImage = new Map<string, CaseRecord[]>();
  for (const r of m.cases) byImage.set(r.source.image, [...(byImage.get(r.source.image) ?? []), r]);
  const fresh: CaseSpec[] = [];
  for (const c of cases) {
    const prev = byImage.get(c.source.image)?.find((r) => sameSource(r.source, c.source) && !used.has(r.id));
    if (prev !== undefined) {
      c.id = prev.id;
      used.add(c.id);
    } else fresh.push(c);
  }
  // Ids held by other sources in the manifest are taken too, so a new case never overwrites them.
  const held = new Set(m.cases.map((r) => r.id));
  for (const c of fresh) {
    let id = c.id, k = 2;
    while (used.has(id) || held.has(id)) id = `${c.id}-${k++}`;
    c.id = id;
    used.add(id);
  }
  return new Set(fresh);
}

/**
 * Sources that moved (a cache copied or moved with its data, a folder renamed, links re-pointed):
 * a case that matched no record by path but whose content key (`keys[i]`, compared with
 * `keyOf(record)`) equals that of a record no discovered case claims takes over that record's id,
 * and the record its new source. Without this the same scan became a second case ("id-2") and was
 * prepared and trained on twice. Returns how many cases were adopted (removed from `fresh`).
 */
function adoptMoved(cases: CaseSpec[], fresh: Set<CaseSpec>, m: Manifest, keys: readonly string[], keyOf: (r: CaseRecord) => string | undefined): number {
  if (fresh.size === 0) return 0;
  const claimed = new Set(cases.map((c) => c.id));
  let n = 0;
  cases.forEach((c, i) => {
    if (!fresh.has(c)) return;
    const r = m.cases.find((x) => !claimed.has(x.id) && keyOf(x) === keys[i]);
    if (r === undefined) return;
    claimed.delete(c.id);
    c.id = r.id;
    claimed.add(r.id);
    r.source = { ...c.source };
    fresh.delete(c);
    n++;
  });
  return n;
}

function acquireLock(outDir: string): () => void {
  const file = path.join(outDir, LOCK_NAME);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      return () => fs.rmSync(file, { force: true });
    } catch (err) {
      if ((err as { code?: string }).code !== 'EEXIST') throw new MisfmError('DATA', `cannot create lock file: ${String(err)}`, { file });
      const pid = Number(fs.readFileSync(file, 'utf8').trim());
      let alive = false;
      try {
        if (Number.isInteger(pid) && pid > 0) { process.kill(pid, 0); alive = true; }
      } catch { /* not running: a stale lock from a killed run */ }
      if (alive) throw new MisfmError('DATA', `another prepare (pid ${pid}) is writing this cache; wait for it or remove the lock file if it is gone`, { file });
      fs.rmSync(file, { force: true });
    }
  }
  throw new MisfmError('DATA', 'cannot acquire the prepare lock', { file });
}

/**
 * Prepare `inputs` into the cache folder `outDir` (created if needed). Returns the manifest and
 * the run's report (also written to outDir/report.json). Throws only for problems that concern
 * the whole run (no inputs, unwritable folder, another run holding the lock).
 */
export async function prepare(inputs: readonly string[], outDir: string, opts: PrepareOptions = {}): Promise<PrepareResult> {
  const started = Date.now();
  const out = path.resolve(outDir);
  try {
    fs.mkdirSync(out, { recursive: true });
  } catch (err) {
    throw new MisfmError('DATA', `cannot create the cache folder: ${err instanceof Error ? err.message : String(err)}`, { file: out, cause: err });
  }
  if (inputs.length === 0 && opts.csv === undefined) throw new MisfmError('ARGUMENT', 'no inputs given');
  const release = acquireLock(out);
  removeStaleTemps(out);
  const { spacing: wantSpacing = 'native', ...geometric } = opts.preprocess ?? {};
  if (typeof wantSpacing === 'string' && wantSpacing !== 'plan' && wantSpacing !== 'native') {
    throw new MisfmError('ARGUMENT', `spacing must be three numbers (x,y,z mm), 'plan' or 'native', got ${JSON.stringify(wantSpacing)}`);
  }
  // What a case's native geometry depends on (orientation, crop, modality rule), not the spacing.
  const geoKey = specKey({ ...geometric, module: undefined });
  const log = new JsonlLogger(path.join(out, LOG_NAME));
  try {
    const manifest = loadManifest(out) ?? emptyManifest(normalizeSpec(geometric) as Record<string, unknown>);
    const disc = await discoverCases(inputs, { ...opts, exclude: [out, ...(opts.exclude ?? [])] });
    if (disc.cases.length === 0) throw new MisfmError('DATA', `no images found in ${inputs.join(', ')}`);
    if (disc.labelNames !== undefined) manifest.labels = disc.labelNames;
    const fresh = assignIds(disc.cases, manifest);
    const nativeKeys = await mapLimit(disc.cases, 16, (c) => caseFingerprint(c, `native:${geoKey}`));
    let moved = adoptMoved(disc.cases, fresh, manifest, nativeKeys, (r) => (r.status === 'ok' ? r.native?.key : undefined));
    let spacing: Vec3 | undefined;
    let spacingSource: SpacingSource = 'native';
    if (Array.isArray(wantSpacing)) {
      spacing = [...wantSpacing] as Vec3;
      spacingSource = 'explicit';
    } else if (wantSpacing === 'plan') {
      const geoms = await fingerprintPass(disc.cases, nativeKeys, manifest, out, opts, log);
      if (geoms.length > 0) {
        spacing = planSpacing(geoms).target;
        spacingSource = 'plan';
      }
    }
    const pp = normalizeSpec({ ...geometric, ...(spacing !== undefined ? { spacing } : {}) });
    const key = specKey(pp);
    manifest.preprocess = pp as Record<string, unknown>;
    const fps = await mapLimit(disc.cases, 16, (c) => caseFingerprint(c, key));
    moved += adoptMoved(disc.cases, fresh, manifest, fps, (r) => (r.status === 'ok' ? r.fingerprint : undefined));
    if (moved > 0) log.log({ event: 'moved', cases: moved });
    const prev = new Map(manifest.cases.map((r) => [r.id, r]));
    const todo: CaseTask[] = [];
    let skipped = 0;
    disc.cases.forEach((c, i) => {
      const r = prev.get(c.id);
      const fp = fps[i]!;
      const upToDate = r !== undefined && r.fingerprint === fp && (r.status === 'failed' ? opts.retryFailed !== true : filesPresent(out, r));
      if (upToDate) skipped++;
      else todo.push({ spec: c, fingerprint: fp, outDir: out, preprocess: pp, foreground: opts.foreground ?? {}, nativeKey: nativeKeys[i]! });
    });
    const nWorkers = Math.min(opts.workers ?? os.availableParallelism(), todo.length);
    log.log({ event: 'start', inputs, outDir: out, discovered: disc.cases.length, skipped, todo: todo.length, workers: nWorkers, preprocess: pp });
    const progress = opts.progress === false ? undefined : new Progress({
      total: todo.length, label: 'prepare', unit: 'vol', plainIntervalMs: 10000,
      ...(opts.progress !== undefined ? { stream: opts.progress } : {}),
    });
    const journal = new Journal(out);
    let ok = 0, failed = 0, workerMs = 0, lastFlush = Date.now();
    const flushMs = opts.flushMs ?? 5000;
    const finish = (rec: CaseRecord): void => {
      applyRecords(manifest, [rec]);
      journal.append(rec);
      if (rec.status === 'ok') ok++; else failed++;
      workerMs += rec.ms ?? 0;
      log.log({ event: 'case', id: rec.id, status: rec.status, ms: rec.ms, ...(rec.reason !== undefined ? { reason: rec.reason } : {}), source: rec.source.image });
      progress?.tick(1, { failed });
      opts.onCase?.(rec);
      if (Date.now() - lastFlush >= flushMs) {
        saveManifest(out, manifest);
        journal.reset();
        lastFlush = Date.now();
      }
    };
    const runStart = Date.now();
    if (nWorkers <= 0) {
      for (const t of todo) finish(await prepareCase(t));
    } else {
      const pool = new TaskPool<CaseTask, CaseRecord>({
        url: new URL('./prepare-worker.js', import.meta.url),
        size: nWorkers,
        onCrash: (t, reason) => ({ id: t.spec.id, status: 'failed', reason, source: t.spec.source, fingerprint: t.fingerprint, preparedAt: new Date().toISOString() }),
      });
      try {
        await Promise.all(todo.map((t) => pool.run(t).then(finish)));
      } finally {
        await pool.close();
      }
    }
    const runMs = Date.now() - runStart;
    saveManifest(out, manifest);
    journal.close();
    progress?.finish({ failed });
    const ids = new Set(disc.cases.map((c) => c.id));
    const report: PrepareReport = {
      outDir: out, startedAt: new Date(started).toISOString(), finishedAt: new Date().toISOString(),
      seconds: (Date.now() - started) / 1000, discovered: disc.cases.length, skipped, moved, processed: todo.length, ok, failed,
      msPerCase: todo.length > 0 ? runMs / todo.length : 0, workerMsPerCase: todo.length > 0 ? workerMs / todo.length : 0,
      workers: Math.max(0, nWorkers), ignoredFiles: disc.ignored,
      failures: manifest.cases.filter((r) => ids.has(r.id) && r.status === 'failed')
        .map((r) => ({ id: r.id, source: r.source.image, reason: r.reason ?? 'unknown' })),
      manifestOk: manifest.cases.filter((r) => r.status === 'ok').length,
    };
    writeJsonAtomic(path.join(out, REPORT_NAME), report);
    const plan = buildPlan(manifest.cases.filter((r) => ids.has(r.id)), { target: pp.spacing ?? null, source: spacingSource });
    if (plan !== undefined) {
      writePlan(out, plan);
      log.log({ event: 'plan', spacing: plan.spacing, cases: plan.fingerprint.cases.length });
    }
    log.log({ event: 'end', ...report, failures: report.failures.length });
    return { manifest, report, plan };
  } finally {
    log.close();
    release();
  }
}

/**
 * The plan's first pass: the native geometry of every case, from the manifest when its sources
 * and geometric settings are unchanged, else by reading the image (in worker threads). Cases that
 * cannot be read are left out here; the prepare pass records why they failed.
 */
async function fingerprintPass(cases: CaseSpec[], keys: string[], manifest: Manifest, out: string, opts: PrepareOptions, log: JsonlLogger): Promise<{ spacing: Vec3; size: Vec3 }[]> {
  const prev = new Map(manifest.cases.map((r) => [r.id, r]));
  const found: { spacing: Vec3; size: Vec3 }[] = [];
  const todo: CaseTask[] = [];
  cases.forEach((c, i) => {
    const n = prev.get(c.id)?.native;
    if (n !== undefined && n.key === keys[i]) found.push(n);
    else todo.push({ spec: c, fingerprint: '', outDir: out, preprocess: { ...opts.preprocess, spacing: undefined } as PreprocessSpec, foreground: {}, nativeKey: keys[i]!, fingerprintOnly: true });
  });
  if (todo.length === 0) return found;
  const progress = opts.progress === false ? undefined : new Progress({
    total: todo.length, label: 'fingerprint', unit: 'vol', plainIntervalMs: 10000,
    ...(opts.progress !== undefined ? { stream: opts.progress } : {}),
  });
  const done = (r: CaseRecord): void => {
    progress?.tick(1);
    if (r.status !== 'ok' || r.native === undefined) return;
    found.push(r.native);
    // An up-to-date case keeps its record; it gains the geometry it was prepared without.
    const p = prev.get(r.id);
    if (p !== undefined && p.status === 'ok') p.native = r.native;
  };
  const nWorkers = Math.min(opts.workers ?? os.availableParallelism(), todo.length);
  if (nWorkers <= 0) {
    for (const t of todo) done(await prepareCase(t));
  } else {
    const pool = new TaskPool<CaseTask, CaseRecord>({
      url: new URL('./prepare-worker.js', import.meta.url), size: nWorkers,
      onCrash: (t, reason) => ({ id: t.spec.id, status: 'failed', reason, source: t.spec.source, fingerprint: '' }),
    });
    try {
      await Promise.all(todo.map((t) => pool.run(t).then(done)));
    } finally {
      await pool.close();
    }
  }
  progress?.finish();
  log.log({ event: 'fingerprint', read: todo.length, reused: cases.length - todo.length });
  return found;
}

/** Temp files of a killed run (we hold the lock, so no live run owns any). */
function removeStaleTemps(out: string): void {
  for (const f of fs.readdirSync(out)) if (/^\..+\.tmp-\d+-[0-9a-f]{8}$/.test(f)) fs.rmSync(path.join(out, f), { force: true });
}

function filesPresent(out: string, r: CaseRecord): boolean {
  const f = caseFiles(r.id);
  const need = [r.image?.file ?? f.image];
  if (r.label !== undefined) need.push(r.label.file);
  if (r.label?.foregroundFile !== undefined) need.push(r.label.foregroundFile);
  return need.every((n) => fs.existsSync(path.join(out, n)));
}
