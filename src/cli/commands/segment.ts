/**
 * `misfm segment`: VISTA3D automatic segmentation of named classes and click correction
 * (Algorithm 1) of an automatic or existing label map. Writes the label map (class-table values,
 * the input's grid) and a JSON sidecar with the class names; nothing is written on error.
 */
import { checkDevice } from '../../nn/module.js';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import type { Command } from '../command.js';
import { MisfmError } from '../../util/errors.js';
import { nonNegativeInt, positiveInt } from '../args.js';
import { Progress, type ProgressStream } from '../../util/progress.js';
import { writeJsonAtomic } from '../../util/atomic.js';
import { readImage, writeLike, formatOf } from '../../io/image/index.js';
import type { Volume } from '../../io/volume.js';
import { openVista3dSession, type ClickPoint, type Vista3dSessionOptions } from '../../infer/vista3d/session.js';
import { autoClasses } from '../../infer/vista3d/classes.js';
import { parsePointArg, readPointsFile, resolveClicks, type RawClick } from '../../infer/vista3d/prompts.js';
import { withImageSuffix } from '../../infer/predict.js';
import { VERSION } from '../../version.js';

const USAGE = `Usage: misfm segment --model CKPT --input IMG --output OUT [--classes LIST | --everything]
                     [--points FILE.json | --point CLASS:+X,Y,Z ...] [--world] [--base SEG] [options]

VISTA3D segmentation. --classes segments the listed classes automatically (names of the VISTA3D
class table such as liver,spleen,aorta, or their values; kidney, lung and bone expand to their
parts); --everything segments the bundle's 117 classes. Clicks correct the result (or --base, an
existing label map on the input's grid) with Algorithm 1: a positive click adds the connected piece
of the point prediction holding it, a negative click removes the piece holding it; voxels outside the
click windows keep their labels. The label map holds class-table values; OUT.json names them.

Options:
  --model CKPT        VISTA3D checkpoint (.pt state dict with MONAI names, e.g. the bundle's model.pt,
                      the research checkpoint, or safetensors)
  --point C:+X,Y,Z    a positive (+) or negative (-) click on class C (repeatable)
  --points FILE       clicks from a JSON file: [{"class": "liver", "positive": true, "point": [x,y,z]}]
  --world             click coordinates are world (LPS, mm) positions, not voxel indices
  --base SEG          start from this label map (class-table values) instead of an empty one
  --roi X,Y,Z         window (default 128,128,128, the bundle's)
  --fit-window        shrink the window along axes where the image is thinner (at the working
                      spacing) instead of padding the image up to it, as MONAI does; for thin
                      slabs, which a padded window shows the network as mostly padding
  --spacing X,Y,Z     working spacing in mm (default 1.5,1.5,1.5)
  --overlap F         automatic sliding-window overlap (default 0.25, the bundle's)
  --merge M           monai (default) or corrected (per-object components, NaN filled) Algorithm 1
  --stitch S          sum (default, MONAI) or mean for overlapping click windows
  --click-mode M      edit (default): the point head alone, merged into the current mask by
                      Algorithm 1 (keeps earlier edits); bundle: as MONAI's bundle, the class head
                      runs again in each click window and the point head is merged into it
  --reuse-windows N   misfm, not MONAI: a click whose centred window was not computed is answered
                      in a computed window that holds it at least N voxels inside (fewer encoder
                      passes for clicks close together); off by default
  --threads N         libtorch threads
  --device D          cpu (default), cuda or cuda:N: the network, working image and feature cache
`;

interface SegmentArgs {
  model: string; input: string; output: string; classes: (string | number)[] | 'everything' | null; clicks: RawClick[];
  world: boolean; base: string | null; session: Vista3dSessionOptions;
}

function triple(flag: string, text: string, integer: boolean): [number, number, number] {
  const v = text.split(',').map((s) => Number(s.trim()));
  if (v.length !== 3 || v.some((x) => !Number.isFinite(x) || x <= 0 || (integer && !Number.isInteger(x)))) throw new MisfmError('ARGUMENT', `--${flag} must be three positive ${integer ? 'integers' : 'numbers'} X,Y,Z, got '${text}'`);
  return [v[0]!, v[1]!, v[2]!];
}

function parseCli(argv: string[]): SegmentArgs {
  const { values: v, positionals } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' }, input: { type: 'string' }, output: { type: 'string' }, classes: { type: 'string' }, everything: { type: 'boolean' },
      points: { type: 'string' }, point: { type: 'string', multiple: true }, world: { type: 'boolean' }, base: { type: 'string' },
      roi: { type: 'string' }, 'fit-window': { type: 'boolean' }, spacing: { type: 'string' }, overlap: { type: 'string' }, merge: { type: 'string' }, stitch: { type: 'string' }, 'click-mode': { type: 'string' }, 'reuse-windows': { type: 'string' }, threads: { type: 'string' }, device: { type: 'string' },
    },
    allowPositionals: true, strict: true,
  });
  if (positionals.length > 0) throw new MisfmError('ARGUMENT', `unexpected argument '${positionals[0]}'`);
  if (v.model === undefined || v.input === undefined || v.output === undefined) throw new MisfmError('ARGUMENT', '--model, --input and --output are required');
  const f = formatOf(v.output);
  if (f === undefined || f.format === 'dicom') throw new MisfmError('ARGUMENT', `--output must be an image file (.nii.gz, .nii, .nrrd, .mha), got '${v.output}'`);
  if (v.classes !== undefined && v.everything === true) throw new MisfmError('ARGUMENT', '--classes and --everything are alternatives; give one');
  if (v.points !== undefined && v.point !== undefined) throw new MisfmError('ARGUMENT', '--points and --point are alternatives; give one');
  let classes: SegmentArgs['classes'] = null;
  if (v.everything === true) classes = 'everything';
  if (v.classes !== undefined) {
    const list = v.classes.split(',').map((s) => s.trim());
    if (list.some((s) => s === '')) throw new MisfmError('ARGUMENT', `--classes must be a comma-separated list of class names or values, got '${v.classes}'`);
    classes = list;
  }
  const clicks = v.points !== undefined ? readPointsFile(v.points) : (v.point ?? []).map(parsePointArg);
  if (classes === null && clicks.length === 0) throw new MisfmError('ARGUMENT', 'nothing to do: give --classes, --everything or clicks');
  if (classes !== null) autoClasses(classes); // unknown classes fail before any work
  const session: Vista3dSessionOptions = {};
  if (v.roi !== undefined) session.roi = triple('roi', v.roi, true);
  if (v['fit-window'] === true) session.fitWindow = true;
  if (v.spacing !== undefined) session.spacing = triple('spacing', v.spacing, false);
  if (v.overlap !== undefined) {
    const o = Number(v.overlap);
    if (!(o >= 0 && o < 1)) throw new MisfmError('ARGUMENT', `--overlap must be >= 0 and < 1, got '${v.overlap}'`);
    session.overlap = o;
  }
  if (v.merge !== undefined) {
    if (v.merge !== 'monai' && v.merge !== 'corrected') throw new MisfmError('ARGUMENT', `--merge must be monai or corrected, got '${v.merge}'`);
    session.mergeMode = v.merge;
  }
  if (v.stitch !== undefined) {
    if (v.stitch !== 'sum' && v.stitch !== 'mean') throw new MisfmError('ARGUMENT', `--stitch must be sum or mean, got '${v.stitch}'`);
    session.stitch = v.stitch;
  }
  const mode = v['click-mode'];
  if (mode !== undefined) {
    if (mode !== 'edit' && mode !== 'bundle') throw new MisfmError('ARGUMENT', `--click-mode must be edit or bundle, got '${mode}'`);
    session.clickMode = mode;
  }
  if (v['reuse-windows'] !== undefined) session.reuseWindows = nonNegativeInt('reuse-windows', v['reuse-windows']);
  if (v.threads !== undefined) session.threads = positiveInt('threads', v.threads);
  if (v.device !== undefined) { checkDevice(v.device); session.device = v.device; }
  return { model: v.model, input: v.input, output: v.output, classes, clicks, world: v.world === true, base: v.base ?? null, session };
}

export interface SegmentResult { output: string; sidecar: string; labelsFound: number[]; windowsComputed: number; cacheHits: number; }

/** Run `misfm segment` (exported for tests). */
export async function runSegment(argv: string[], stream: ProgressStream = process.stderr): Promise<SegmentResult> {
  const a = parseCli(argv);
  const image = await readImage(a.input);
  const clicks: ClickPoint[] = resolveClicks(a.clicks, image, a.world);
  let base: Volume | null = null;
  if (a.base !== null) {
    base = await readImage(a.base);
    if (base.size.some((s, i) => s !== image.size[i])) throw new MisfmError('ARGUMENT', `the base segmentation is ${base.size.join('x')}, the input ${image.size.join('x')}`, { file: a.base });
  }
  const session = await openVista3dSession(a.model, image, a.session);
  let windowsComputed = 0, cacheHits = 0;
  let labels: Volume | null = base;
  try {
    if (a.classes !== null) {
      const requested = new Set(autoClasses(a.classes));
      let bar: Progress | null = null;
      const auto = await session.autoSegment(a.classes, (d, t) => { bar ??= new Progress({ label: 'segment', unit: 'window', total: t, stream }); bar.update(d); });
      (bar as Progress | null)?.finish();
      if (labels === null) labels = auto;
      else {
        const data = labels.data.slice();
        for (let i = 0; i < data.length; i++) {
          if (requested.has(data[i]!)) data[i] = 0;
          if (auto.data[i] !== 0) data[i] = auto.data[i]!;
        }
        labels = { ...labels, data };
      }
    }
    if (clicks.length > 0) {
      const r = await session.click(clicks, labels);
      labels = r.labels; windowsComputed += r.windowsComputed; cacheHits += r.cacheHits;
    }
  } finally { session.dispose(); }
  const out = labels!;
  const found = [...new Set(out.data)].sort((x, y) => x - y);
  const max = found[found.length - 1] ?? 0;
  const sidecar = withImageSuffix(a.output, '.json');
  await writeLike(a.output, out.data, image, { dtype: max <= 255 ? 'uint8' : 'uint16' });
  writeJsonAtomic(sidecar, {
    format: 'misfm-vista3d-segmentation-1', misfmVersion: VERSION,
    input: path.resolve(a.input), output: path.resolve(a.output), model: path.resolve(a.model),
    classes: Object.fromEntries(found.filter((v) => v !== 0).map((v) => [String(v), session.classes.get(v) ?? `zero-shot ${v}`])),
    requested: a.classes, clicks: clicks.map((c) => ({ class: session.classes.get(c.label) ?? c.label, value: c.label, positive: c.positive, voxel: c.ijk })),
    base: a.base === null ? null : path.resolve(a.base), labelsFound: found, clickWindowsComputed: windowsComputed, clickCacheHits: cacheHits,
    createdAt: new Date().toISOString(),
  });
  return { output: a.output, sidecar, labelsFound: found, windowsComputed, cacheHits };
}

export const segmentCommand: Command = {
  name: 'segment',
  summary: 'VISTA3D: segment named classes and correct them with clicks (Algorithm 1)',
  usage: USAGE,
  async run(argv) {
    const r = await runSegment(argv);
    process.stdout.write(`wrote ${r.output} (labels ${r.labelsFound.join(', ')}) and ${r.sidecar}\n`);
    return 0;
  },
};
