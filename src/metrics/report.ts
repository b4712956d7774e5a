/**
 * Writers for evaluation reports: CSV (one row per case and class, then mean/std rows, as PyMIC
 * lays its CSV out), JSON (everything, including the settings), and a console table. Files are
 * written atomically (temp file in the same folder, then rename), so a failed run never leaves a
 * half-written report behind.
 */
import { writeSync } from 'node:fs';
import { writeAtomicWith } from '../util/atomic.js';
import path from 'node:path';
import type { EvaluationReport, MetricValues } from './evaluate.js';
import { MisfmError } from '../util/errors.js';

/** Number formatting for files: shortest round-trip form; NaN/±Infinity as Python prints them. */
function num(v: number | undefined): string {
  if (v === undefined || Number.isNaN(v)) return 'nan';
  if (v === Infinity) return 'inf';
  if (v === -Infinity) return '-inf';
  return String(v);
}

function csvField(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * CSV text: header `case,class,<metrics>`; one row per case and class (plus a per-case `average`
 * row when there are several classes); then rows `mean,<class>,…` and `std,<class>,…`.
 */
export function reportToCsv(report: EvaluationReport): string {
  const { settings, cases, summary } = report;
  const lines = [['case', 'class', ...settings.metrics].map(csvField).join(',')];
  const row = (first: string, cls: string, vals: string[]): void => {
    lines.push([csvField(first), csvField(cls), ...vals].join(','));
  };
  for (const c of cases) {
    settings.classes.forEach((cl, ci) => row(c.case, cl.name, settings.metrics.map((m) => num(c.classes[ci]?.[m]))));
    if (c.average !== undefined) {
      const avg: MetricValues = c.average;
      row(c.case, 'average', settings.metrics.map((m) => num(avg[m])));
    }
  }
  for (const stat of ['mean', 'std'] as const) {
    for (const r of summary.rows) row(stat, r, settings.metrics.map((m) => num(summary.stats[r]?.[m][stat])));
  }
  return lines.join('\n') + '\n';
}

/** JSON-ready object: per-case values keyed by class name; NaN and Infinity become null. */
export function reportToJsonObject(report: EvaluationReport): unknown {
  const { settings, cases, summary } = report;
  return {
    settings,
    cases: cases.map((c) => {
      const classes: Record<string, MetricValues> = {};
      settings.classes.forEach((cl, ci) => { const v = c.classes[ci]; if (v !== undefined) classes[cl.name] = v; });
      return c.average === undefined ? { case: c.case, classes } : { case: c.case, classes, average: c.average };
    }),
    summary: summary.stats,
  };
}

export function reportToJson(report: EvaluationReport): string {
  return JSON.stringify(reportToJsonObject(report), null, 2) + '\n';
}

/** Write `text` to `file` atomically (util/atomic); a failure names the file. */
export function writeTextAtomic(file: string, text: string): void {
  const bytes = Buffer.from(text, 'utf8');
  writeAtomicWith(path.resolve(file), (fd) => { let off = 0; while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off); },
    (_stage, err) => new MisfmError('ARGUMENT', `cannot write report: ${err instanceof Error ? err.message : String(err)}`, { file, cause: err }));
}

export function writeReportCsv(file: string, report: EvaluationReport): void {
  writeTextAtomic(file, reportToCsv(report));
}

export function writeReportJson(file: string, report: EvaluationReport): void {
  writeTextAtomic(file, reportToJson(report));
}

/** Human-readable summary: one line per class, `metric mean ± std` per metric (n shown when short). */
export function formatSummary(report: EvaluationReport): string {
  const { settings, summary, cases } = report;
  const width = Math.max(5, ...summary.rows.map((r) => r.length));
  // Large values (volumes in mm^3) without decimals; mean and std share the precision.
  const digits = (v: number, ref: number): string => (Number.isNaN(v) ? 'nan' : Math.abs(ref) >= 1000 ? v.toFixed(0) : v.toFixed(4));
  const lines = [`${cases.length} case(s); mode ${settings.mode}` +
    ` (empty surfaces: ${settings.surface.empty}, clip: ${settings.surface.clip ? 'yes' : 'no'})` +
    (settings.metrics.includes('nsd') ? `; NSD tolerance ${settings.nsdTolerance} mm` : '')];
  lines.push(`${'class'.padEnd(width)}  ${settings.metrics.map((m) => m.padEnd(22)).join('')}`.trimEnd());
  for (const r of summary.rows) {
    const cells = settings.metrics.map((m) => {
      const s = summary.stats[r]?.[m];
      if (s === undefined) return 'nan'.padEnd(22);
      const n = s.n < cases.length ? ` (n=${s.n})` : '';
      return `${digits(s.mean, s.mean)} ± ${digits(s.std, s.mean)}${n}`.padEnd(22);
    });
    lines.push(`${r.padEnd(width)}  ${cells.join('')}`.trimEnd());
  }
  return lines.join('\n') + '\n';
}
