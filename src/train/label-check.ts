/**
 * Label values against the run config, before any training step: without it a label value the
 * network has no class for fails deep inside one_hot ("Class values must be smaller than
 * num_classes") without naming the file.
 */
import type { RunConfig } from '../config/types.js';
import type { CachedCase } from '../data/manifest.js';
import { MisfmError } from '../util/errors.js';

/**
 * Throw a MisfmError naming the label file when a case holds a value the network has no class
 * for (no data.labels: values must be 0..classNum-1); report values that data.labels does not
 * name (they are trained as background, as documented for --classes) through `log`.
 */
export function checkLabelValues(cfg: RunConfig, cases: readonly CachedCase[], log: (line: string) => void): void {
  const C = cfg.model.classNum;
  const named = cfg.data.labels?.values;
  const unnamed = new Map<number, string[]>();
  for (const c of cases) {
    const values = Object.keys(c.label?.stats.classes ?? {}).map(Number);
    const file = c.sourceLabel ?? c.labelFile ?? c.id;
    if (named === undefined || named === null) {
      const bad = values.filter((v) => !Number.isInteger(v) || v < 0 || v >= C);
      if (bad.length > 0) {
        throw new MisfmError('DATA', `label map of case ${c.id} holds value(s) ${bad.join(', ')}, but the network has ${C} classes ` +
          `(label values 0..${C - 1}) and the config names no labels (data.labels): pass --classes with the values to learn ` +
          '(others become background), or set model.classNum', { file });
      }
    } else {
      for (const v of values) if (v !== 0 && !named.includes(v)) unnamed.set(v, [...(unnamed.get(v) ?? []), file]);
    }
  }
  // One line for all of them: a TotalSegmentator map trained on a few organs has dozens.
  if (unnamed.size > 0) {
    const vs = [...unnamed.keys()].sort((x, y) => x - y);
    const files = new Set([...unnamed.values()].flat());
    const shown = vs.length > 12 ? `${vs.slice(0, 12).join(', ')}, ... (${vs.length} values)` : vs.join(', ');
    log(`note: label value${vs.length > 1 ? 's' : ''} ${shown} ${vs.length > 1 ? 'are' : 'is'} not among the classes [${named!.join(', ')}] and ` +
      `${vs.length > 1 ? 'are' : 'is'} trained as background (${files.size} case(s), e.g. ${[...files][0]})`);
  }
}
