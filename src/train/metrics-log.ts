/**
 * The training log `RUN/metrics.jsonl` and the one rule for reading it after a resume.
 *
 * The log is append-only: a run interrupted after its last checkpoint has already logged the
 * iterations it then loses, and the resumed process logs them again. The rule (ARCHITECTURE.md,
 * "Output formats"): a `{"event":"resume","iteration":N}` record supersedes every record logged
 * before it that carries an `iteration` greater than N, and every earlier `end` record (that run
 * did not end: it was continued). Every reader of the log goes through `readMetricsLog`.
 */
import path from 'node:path';
import { existsSync, statSync } from 'node:fs';
import { readJsonl } from '../util/jsonl.js';
import { MisfmError } from '../util/errors.js';

/** File name of the training log inside a run folder. */
export const METRICS_LOG = 'metrics.jsonl';

/** One record of the training log (`train`, `valid`, `resume`, `end`, ...). */
export interface MetricsRecord {
  event?: string;
  iteration?: number;
  [key: string]: unknown;
}

export interface MetricsLog {
  file: string;
  /** The records in effect, in log order, after applying the resume rule. */
  records: MetricsRecord[];
  /** How many records later `resume` events superseded. */
  superseded: number;
  /** How many `resume` events the log holds. */
  resumes: number;
  /** An unparsable last line cut short by a crash, not in `records`. */
  truncatedTail: string | undefined;
}

/** Apply the resume rule to records in log order. */
export function effectiveRecords(all: readonly MetricsRecord[]): { records: MetricsRecord[]; superseded: number; resumes: number } {
  let kept: MetricsRecord[] = [];
  let superseded = 0, resumes = 0;
  for (const r of all) {
    if (r.event === 'resume' && typeof r.iteration === 'number') {
      resumes++;
      const from = r.iteration;
      const before = kept.length;
      kept = kept.filter((k) => k.event !== 'end' && !(typeof k.iteration === 'number' && k.iteration > from));
      superseded += before - kept.length;
    }
    kept.push(r);
  }
  return { records: kept, superseded, resumes };
}

/**
 * Read a run's training log (`runDirOrFile` is the run folder or the log itself) with the resume
 * rule applied. Throws a MisfmError naming the path when there is no log or a line is corrupt.
 */
export function readMetricsLog(runDirOrFile: string): MetricsLog {
  let file = runDirOrFile;
  if (existsSync(runDirOrFile) && statSync(runDirOrFile).isDirectory()) {
    file = path.join(runDirOrFile, METRICS_LOG);
    if (!existsSync(file)) throw new MisfmError('DATA', `no ${METRICS_LOG}: is this a misfm run folder?`, { file: runDirOrFile });
  }
  const { records, truncatedTail } = readJsonl<MetricsRecord>(file);
  return { file, ...effectiveRecords(records), truncatedTail };
}

/** The records of one event kind in effect, e.g. `recordsOf(log, 'train')`. */
export function recordsOf(log: Pick<MetricsLog, 'records'>, event: string): MetricsRecord[] {
  return log.records.filter((r) => r.event === event);
}
