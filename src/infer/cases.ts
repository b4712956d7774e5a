/**
 * The cases of a prediction run: what an input argument names (an image file, a folder of
 * images, a CSV with an `image` column, or a DICOM series folder), a deterministic order, sharding
 * across processes, and the output file of each case.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatOf } from '../io/image/index.js';
import { MisfmError } from '../util/errors.js';
import { splitCsvLine } from '../util/csv.js';
import { entryKindSync } from '../util/fs-entries.js';

/** One image to predict. */
export interface PredictCaseSpec {
  /** Output file stem (file name without its image ending, or the DICOM folder name). */
  name: string;
  /** Image file or DICOM folder (absolute). */
  input: string;
}

const isImageFile = (name: string): boolean => {
  const f = formatOf(name);
  return !name.startsWith('.') && f !== undefined && f.format !== 'dicom';
};

function stemOf(p: string): string {
  const base = path.basename(p);
  const f = formatOf(base);
  return f === undefined ? base : base.slice(0, base.length - f.ending.length);
}

function casesFromCsv(file: string): PredictCaseSpec[] {
  const lines = fs.readFileSync(file, 'utf8').split(/\r?\n/).filter((l) => l.trim() !== '');
  const header = lines[0] === undefined ? [] : splitCsvLine(lines[0]).map((h) => h.toLowerCase());
  const col = header.indexOf('image');
  if (col < 0) throw new MisfmError('DATA', `CSV has no 'image' column (header: ${header.join(', ') || 'empty'})`, { file });
  const dir = path.dirname(path.resolve(file));
  const cases: PredictCaseSpec[] = [];
  lines.slice(1).forEach((line, i) => {
    const v = splitCsvLine(line)[col];
    if (v === undefined || v === '') throw new MisfmError('DATA', `row ${i + 2} has no image path`, { file });
    const input = path.resolve(dir, v);
    cases.push({ name: stemOf(input), input });
  });
  if (cases.length === 0) throw new MisfmError('DATA', 'CSV lists no images', { file });
  return cases;
}

/**
 * The cases named by `input`, sorted by input path. A folder yields its image files; a folder
 * without image files is taken as one DICOM series. Throws a MisfmError naming the input when it
 * is missing or empty, or when two cases would write the same output name.
 */
export function listCases(input: string): PredictCaseSpec[] {
  let st: fs.Stats;
  try { st = fs.statSync(input); } catch { throw new MisfmError('DATA', 'input not found', { file: input }); }
  let cases: PredictCaseSpec[];
  if (st.isDirectory()) {
    // Links to files count as files (a cohort is often staged as a folder of links).
    const files = fs.readdirSync(input, { withFileTypes: true }).filter((e) => entryKindSync(input, e) === 'file');
    const images = files.filter((e) => isImageFile(e.name)).map((e) => path.resolve(input, e.name));
    if (images.length > 0) {
      cases = images.map((p) => ({ name: stemOf(p), input: p }));
    } else if (files.some((e) => !e.name.startsWith('.'))) {
      cases = [{ name: path.basename(path.resolve(input)), input: path.resolve(input) }];
    } else {
      throw new MisfmError('DATA', 'folder holds no image files and no DICOM files', { file: input });
    }
  } else if (input.toLowerCase().endsWith('.csv')) {
    cases = casesFromCsv(input);
  } else {
    cases = [{ name: stemOf(input), input: path.resolve(input) }];
  }
  cases.sort((a, b) => (a.input < b.input ? -1 : a.input > b.input ? 1 : 0));
  const seen = new Map<string, string>();
  for (const c of cases) {
    const prev = seen.get(c.name);
    if (prev !== undefined) throw new MisfmError('DATA', `two inputs would write the same output name '${c.name}': ${prev} and ${c.input}`, { file: input });
    seen.set(c.name, c.input);
  }
  return cases;
}

/** Parse `i/n` (0 <= i < n). */
export function parseShard(text: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = m === null ? NaN : Number(m[1]), count = m === null ? NaN : Number(m[2]);
  if (!(count >= 1 && index >= 0 && index < count)) throw new MisfmError('ARGUMENT', `--shard must be i/n with 0 <= i < n (e.g. 0/4), got '${text}'`);
  return { index, count };
}

/** Every `count`-th case starting at `index` (cases already in their deterministic order). */
export function shardCases<T>(cases: readonly T[], shard: { index: number; count: number }): T[] {
  return cases.filter((_, i) => i % shard.count === shard.index);
}

/** Output file of a case: `output` itself when it has an image ending and there is one case, else `<output>/<name>.<format>`. */
export function outputPathFor(c: PredictCaseSpec, output: string, format: string, single: boolean): string {
  if (single && formatOf(output) !== undefined) return output;
  return path.join(output, `${c.name}.${format.replace(/^\./, '')}`);
}
