/**
 * The VISTA3D evaluation of experiments/vista3d-real.sh on one labelled scan: the scan and its
 * label map brought to the working grid as `misfm segment` does (RAS, the model's spacing, the
 * bundle's HU window to [0, 1], MONAI's (x, y, z) order; labels by nearest neighbour and mapped
 * onto the class table), then the window protocols (auto, point, auto + corrective click) for the
 * trained classes and the click-only protocol for the held-out class. Writes JSON, a Markdown
 * table and a PNG plot of the held-out class's Dice against the number of clicks (atomically).
 */
import path from 'node:path';
import { mkdirSync } from 'node:fs';
import { readImage } from '../../io/image/index.js';
import { reorient } from '../../transforms/orientation.js';
import { resampleToReference, resampleToSpacing } from '../../transforms/resample.js';
import { geometryOf } from '../../transforms/grid.js';
import type { Vec3, Volume } from '../../io/volume.js';
import { setNumThreads } from '../../engine/creation.js';
import { loadVista3dCheckpoint } from '../../models/vista3d/checkpoint.js';
import { VISTA3D_CLASS_NAMES } from '../../models/vista3d/classes.js';
import { VISTA3D_HU_WINDOW } from '../../config/defaults.js';
import { mapLabelNames, readLabelTable } from '../../train/vista3d/labelmap.js';
import { writeFileAtomic, writeJsonAtomic } from '../../util/atomic.js';
import { plotLines } from '../../util/plot.js';
import { MisfmError } from '../../util/errors.js';
import { padVolumeToWindow, windowProtocols, zeroShotClicks, type WindowProtocolResult, type ZeroShotResult } from './protocols.js';
import type { Triple } from './windows.js';
import { fitWindowToImage } from '../windows.js';

export interface Vista3dEvaluationOptions {
  model: string;
  image: string;
  labels: string;
  /** 'FILE#key' label-name table of `labels` (TotalSegmentator's classmap). */
  labelTable: string;
  /** Class-table indices evaluated with the window protocols (those present in the scan are reported), or 'all' present but the held-out one. */
  classes: number[] | 'all';
  /** The class left out of training, evaluated with clicks only (null: none). */
  heldOut: number | null;
  spacing: Vec3;
  roi: Triple;
  /** Shrink the window to thin axes of the working grid instead of padding (see Vista3dSessionOptions.fitWindow). */
  fitWindow?: boolean;
  overlap?: number;
  clicks?: number;
  out: string;
  threads?: number;
  log?: (line: string) => void;
}

export interface Vista3dEvaluation {
  format: 'misfm-vista3d-eval-1';
  model: string; image: string; labels: string; spacing: number[]; roi: number[]; grid: number[];
  classes: { index: number; name: string; voxels: number; auto: number; point: number; autoClick: number }[];
  mean: { auto: number; point: number; autoClick: number };
  clicks: WindowProtocolResult['clicks']; windows: number;
  zeroShot: (ZeroShotResult & { name: string }) | null;
}

const nameOf = (k: number): string => VISTA3D_CLASS_NAMES[k] ?? `class ${k}`;

/** Work-grid (x,y,z) C-order copy of a volume (x fastest in the Volume). */
function xyzOf(v: Volume, map?: (x: number) => number): Float32Array {
  const [X, Y, Z] = v.size;
  const out = new Float32Array(X * Y * Z);
  for (let z = 0; z < Z; z++) for (let y = 0; y < Y; y++) for (let x = 0; x < X; x++) {
    const s = v.data[x + X * (y + Y * z)]!;
    out[(x * Y + y) * Z + z] = map === undefined ? s : map(s);
  }
  return out;
}

export async function evaluateVista3d(o: Vista3dEvaluationOptions): Promise<Vista3dEvaluation> {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  if (o.threads !== undefined) setNumThreads(o.threads);
  const { model } = await loadVista3dCheckpoint(o.model);
  try {
    const image = reorient(await readImage(o.image), 'RAS').volume;
    const work = resampleToSpacing(image, o.spacing, { interpolation: 'linear' });
    const labelsRas = reorient(await readImage(o.labels), 'RAS').volume;
    const labWork = resampleToReference(labelsRas, geometryOf(work), { interpolation: 'nearest' });
    const { map } = mapLabelNames(readLabelTable(o.labelTable));
    const [lo, hi] = VISTA3D_HU_WINDOW;
    const img = xyzOf(work, (v) => (Math.min(hi, Math.max(lo, v)) - lo) / (hi - lo));
    const lab = Uint8Array.from(xyzOf(labWork, (v) => map.get(v) ?? 0));
    const size: Triple = [work.size[0], work.size[1], work.size[2]];
    const roi: Triple = o.fitWindow === true ? fitWindowToImage(size, o.roi, model.sizeDivisor) : o.roi;
    const padded = padVolumeToWindow(img, lab, size, roi);
    try {
      const inScan = [...new Set(padded.labels)].filter((k) => k !== 0).sort((a, b) => a - b);
      const present = o.classes === 'all' ? inScan.filter((k) => k !== o.heldOut) : o.classes.filter((k) => inScan.includes(k));
      if (present.length === 0) throw new MisfmError('DATA', `none of the evaluated classes (${o.classes === 'all' ? 'all' : o.classes.join(', ')}) is in the label map`, { file: o.labels });
      log(`evaluating ${present.length} classes on a ${padded.size.join('x')} grid at ${o.spacing.join('x')} mm`);
      const w = windowProtocols(model, padded.image, padded.labels, present, { roi, overlap: o.overlap ?? 0.25, onProgress: (what, d, t) => log(`  ${what} ${d}/${t}`) });
      let zs: Vista3dEvaluation['zeroShot'] = null;
      if (o.heldOut !== null) {
        const z = zeroShotClicks(model, padded.image, padded.labels, o.heldOut, o.clicks ?? 5, { roi, onProgress: (what, d, t) => log(`  held-out ${what} ${d}/${t}`) });
        zs = { ...z, name: nameOf(o.heldOut) };
      }
      const count = (k: number): number => padded.labels.reduce((s, v) => s + (v === k ? 1 : 0), 0);
      const rows = present.map((k) => ({ index: k, name: nameOf(k), voxels: count(k), auto: w.auto[k]!, point: w.point[k]!, autoClick: w.autoClick[k]! }));
      const mean = (f: (r: (typeof rows)[number]) => number): number => rows.reduce((s, r) => s + f(r), 0) / rows.length;
      const result: Vista3dEvaluation = {
        format: 'misfm-vista3d-eval-1', model: path.resolve(o.model), image: path.resolve(o.image), labels: path.resolve(o.labels),
        spacing: [...o.spacing], roi: [...roi], grid: [...padded.size],
        classes: rows, mean: { auto: mean((r) => r.auto), point: mean((r) => r.point), autoClick: mean((r) => r.autoClick) },
        clicks: w.clicks, windows: w.windows, zeroShot: zs,
      };
      mkdirSync(o.out, { recursive: true });
      writeJsonAtomic(path.join(o.out, 'vista3d-eval.json'), result);
      writeFileAtomic(path.join(o.out, 'vista3d-eval.md'), markdownOf(result));
      if (zs !== null && zs.dice.length > 0) {
        writeFileAtomic(path.join(o.out, 'zero-shot.png'), plotLines([{ name: `${zs.name} (held out)`, points: zs.dice.map((d, i) => [i + 1, d] as const) }],
          { title: `VISTA3D zero-shot: ${zs.name}, Dice vs clicks`, xLabel: 'clicks', yLabel: 'Dice', yMin: 0, yMax: 1, xMin: 1, xMax: zs.dice.length }));
      }
      return result;
    } finally { padded.image.dispose(); }
  } finally { model.dispose(); }
}

/** The three tables (per class: auto, point, auto + click) and the zero-shot row, as Markdown. */
export function markdownOf(r: Vista3dEvaluation): string {
  const f = (v: number): string => v.toFixed(3);
  const lines = [
    `Grid ${r.grid.join('x')} at ${r.spacing.join('x')} mm, window ${r.roi.join('x')}, ${r.windows} windows; corrective clicks ${r.clicks.positive} positive, ${r.clicks.negative} negative.`,
    '',
    '| class | index | voxels | (a) auto | (b) point | (c) auto + 1 click (Alg. 1) |',
    '|---|---:|---:|---:|---:|---:|',
    ...r.classes.map((c) => `| ${c.name} | ${c.index} | ${c.voxels} | ${f(c.auto)} | ${f(c.point)} | ${f(c.autoClick)} |`),
    `| **mean** | | | **${f(r.mean.auto)}** | **${f(r.mean.point)}** | **${f(r.mean.autoClick)}** |`,
  ];
  if (r.zeroShot !== null && r.zeroShot.dice.length === 0) lines.push('', `Held-out class ${r.zeroShot.name} (${r.zeroShot.cls}): not in this scan.`);
  else if (r.zeroShot !== null) {
    const z = r.zeroShot;
    lines.push('', `Held-out class (never trained): ${z.name} (${z.cls}), prompt class ${z.promptClass}, clicks only.`, '',
      `| clicks | ${z.dice.map((_, i) => i + 1).join(' | ')} |`, `|---|${z.dice.map(() => '---:').join('|')}|`, `| Dice | ${z.dice.map(f).join(' | ')} |`);
  }
  return `${lines.join('\n')}\n`;
}
