/** `misfm plot RUN_DIR`: training loss and validation curves of a run as a PNG. */
import path from 'node:path';
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Command } from '../command.js';
import { readJsonl } from '../../util/jsonl.js';
import { plotLines, type PlotSeries } from '../../util/plot.js';
import { writeFileAtomic } from '../../util/atomic.js';
import { MisfmError } from '../../util/errors.js';

interface Rec { event?: string; iteration?: number; loss?: number; score?: number; [k: string]: unknown }

/** Render RUN/metrics.jsonl; returns the PNG path. */
export function plotRun(runDir: string, out?: string, smooth = 0.9): string {
  const file = path.join(runDir, 'metrics.jsonl');
  if (!existsSync(file)) throw new MisfmError('DATA', 'no metrics.jsonl: is this a misfm run folder?', { file: runDir });
  const { records } = readJsonl<Rec>(file);
  // A resumed run re-logs iterations after its last checkpoint: keep the last record per iteration.
  const train = new Map<number, number>(), valid = new Map<number, number>(), chance = new Map<number, number>();
  // Reconstruction pretext tasks (ssl/reconstruction.ts) log the validation L1 and that of the corrupted input.
  const mae = new Map<number, number>(), identity = new Map<number, number>();
  for (const r of records) {
    if (r.event === 'resume' && typeof r.iteration === 'number') {
      for (const k of [...train.keys()]) if (k > r.iteration) train.delete(k);
      for (const k of [...valid.keys()]) if (k > r.iteration) { valid.delete(k); chance.delete(k); mae.delete(k); identity.delete(k); }
    }
    if (r.event === 'train' && typeof r.iteration === 'number' && typeof r.loss === 'number') train.set(r.iteration, r.loss);
    if (r.event === 'valid' && typeof r.iteration === 'number' && typeof r.score === 'number') valid.set(r.iteration, r.score);
    // Pretraining logs the Dice a guess from the level frequencies would get: drawn as the floor.
    if (r.event === 'valid' && typeof r.iteration === 'number' && typeof r['chance'] === 'number') chance.set(r.iteration, r['chance']);
    if (r.event === 'valid' && typeof r.iteration === 'number' && typeof r['mae'] === 'number') mae.set(r.iteration, r['mae']);
    if (r.event === 'valid' && typeof r.iteration === 'number' && typeof r['identityMae'] === 'number') identity.set(r.iteration, r['identityMae']);
  }
  if (train.size === 0) throw new MisfmError('DATA', 'no training iterations logged yet', { file });
  const raw = [...train.entries()].sort((a, b) => a[0] - b[0]);
  let ema: number | undefined;
  const smoothed = raw.map(([i, l]): [number, number] => { ema = ema === undefined ? l : smooth * ema + (1 - smooth) * l; return [i, ema]; });
  const series: PlotSeries[] = [
    { name: 'train loss', points: raw },
    { name: `train loss (EMA ${smooth})`, points: smoothed },
  ];
  const sorted = (m: Map<number, number>): [number, number][] => [...m.entries()].sort((a, b) => a[0] - b[0]);
  if (mae.size > 0) {
    series.push({ name: 'validation L1', points: sorted(mae) });
    if (identity.size > 0) series.push({ name: 'validation L1 of the corrupted input', points: sorted(identity) });
  } else if (valid.size > 0) series.push({ name: 'validation Dice', points: sorted(valid) });
  if (chance.size > 0) series.push({ name: 'validation Dice at chance', points: [...chance.entries()].sort((a, b) => a[0] - b[0]) });
  const png = plotLines(series, { title: `misfm run ${path.basename(path.resolve(runDir))}`, xLabel: 'iteration', yLabel: mae.size > 0 ? 'loss / L1' : 'loss / Dice', yMin: 0 });
  const target = out ?? path.join(runDir, 'curves.png');
  writeFileAtomic(target, png);
  return target;
}

export const plotCommand: Command = {
  name: 'plot',
  summary: 'plot the loss and validation curves of a run (PNG)',
  usage: 'Usage: misfm plot RUN_DIR [--out FILE.png]\n\nReads RUN_DIR/metrics.jsonl and writes RUN_DIR/curves.png (or --out).',
  async run(argv) {
    const { values, positionals } = parseArgs({ args: argv, options: { out: { type: 'string' } }, allowPositionals: true, strict: true });
    if (positionals.length !== 1) throw new MisfmError('ARGUMENT', 'give exactly one run folder');
    process.stdout.write(`${plotRun(positionals[0]!, values.out)}\n`);
    return 0;
  },
};
