/**
 * Preparing one case: read image (and label), align the label to the image grid, preprocess,
 * cast, compute statistics and foreground samples, write the cache files atomically, and return
 * the manifest record. Any failure becomes a 'failed' record with the reason; nothing partial is
 * left behind (every file goes through a temp name, and a failure removes the case's files).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readImage, alignToGrid, latticeMapping, gridDifferences } from '../io/image/index.js';
import type { Volume } from '../io/volume.js';
import { MisfmError } from '../util/errors.js';
import { orientationOf } from '../transforms/orientation.js';
import { writeCacheFile, dtypeOf } from './format.js';
import { sampleForeground, writeForeground, type ForegroundSampling } from './foreground.js';
import type { CaseRecord } from './manifest.js';
import { applyPreprocess, castImage, castLabel, decideModality, normalizeSpec, type PreprocessSpec } from './preprocess.js';
import type { CaseSpec } from './sources.js';
import { foregroundIntensityStats, intensityStats, labelCounts, labelStats } from './stats.js';

/** Everything a worker needs to prepare one case (plain data: it is posted to worker threads). */
export interface CaseTask {
  spec: CaseSpec;
  fingerprint: string;
  outDir: string;
  preprocess: PreprocessSpec;
  foreground: ForegroundSampling;
  /** Source fingerprint under the geometric settings; recorded with the native geometry (see CaseRecord.native). */
  nativeKey?: string;
  /**
   * Only read the case and return its native geometry and modality (the dataset plan's first
   * pass): nothing is written and the record must not enter the manifest.
   */
  fingerprintOnly?: boolean;
}

/** Cache file names of a case, relative to the cache folder. */
export function caseFiles(id: string): { image: string; label: string; foreground: string } {
  return { image: `${id}.img.mvol`, label: `${id}.lab.mvol`, foreground: `${id}.fg` };
}

/** Remove a case's cache files (after a failure, or before re-preparing it). */
export function removeCaseFiles(outDir: string, id: string): void {
  for (const f of Object.values(caseFiles(id))) fs.rmSync(path.join(outDir, f), { force: true });
}

function reasonOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Put the label on the image's grid: as is, re-indexed when only axis order/orientation differ, or fail. */
function alignLabel(label: Volume, image: Volume, labelFile: string, imageFile: string): Volume {
  const diff = gridDifferences(image, label);
  if (diff.length === 0) return { ...label, size: [...image.size], spacing: [...image.spacing], origin: [...image.origin], direction: [...image.direction] };
  if (latticeMapping(label, image) !== undefined) return alignToGrid(label, image, [labelFile, imageFile]);
  throw new MisfmError('GEOMETRY', `label and image do not share a voxel grid: ${diff.join('; ')}`, { file: labelFile });
}

/** Prepare one case. Never throws for bad data: returns a 'failed' record instead. */
export async function prepareCase(task: CaseTask): Promise<CaseRecord> {
  const t0 = performance.now();
  const { spec, outDir } = task;
  const base: CaseRecord = { id: spec.id, status: 'failed', source: spec.source, fingerprint: task.fingerprint };
  const notes = [...spec.notes];
  const files = caseFiles(spec.id);
  try {
    if (spec.error !== undefined) throw new MisfmError('DATA', spec.error, { file: spec.source.image });
    const warn = (m: string): void => { notes.push(m); };
    const readOpts = { onWarning: warn, ...(spec.source.series !== undefined ? { seriesUid: spec.source.series } : {}) };
    let image = await readImage(spec.source.image, readOpts);
    if (image.size.some((s) => s < 2)) {
      throw new MisfmError('DATA', `image is not a 3D volume (${image.size.join('x')} voxels): every axis needs at least 2 voxels`, { file: spec.source.image });
    }
    const orientation0 = orientationOf(image);
    if (task.fingerprintOnly === true) {
      // Geometry only: reorient and crop as prepare will, without the label, resampling or the user step.
      const { spacing: _s, module: _m, ...geometric } = normalizeSpec(task.preprocess);
      const modality = decideModality(geometric.modality, spec.modality, image);
      const g = await applyPreprocess({ image, label: undefined }, geometric, { id: spec.id, modality });
      return { ...base, status: 'ok', modality, native: { key: task.nativeKey ?? '', spacing: g.native.spacing, size: g.native.size, orientation: orientation0 } };
    }
    let label: Volume | undefined;
    if (spec.source.label !== undefined) {
      label = await readImage(spec.source.label, { onWarning: warn });
      label = alignLabel(label, image, spec.source.label, spec.source.image);
      label = castLabel(label, spec.source.label);
    }
    const sourceSize = [...image.size] as Volume['size'];
    const sourceSpacing = [...image.spacing] as Volume['spacing'];
    const pp = normalizeSpec(task.preprocess);
    const modality = decideModality(pp.modality, spec.modality, image);
    let native: { spacing: Volume['spacing']; size: Volume['size'] };
    ({ image, label, native } = await applyPreprocess({ image, label }, pp, { id: spec.id, modality }));
    image = castImage(image, modality, pp.dtype);
    if (label !== undefined) label = castLabel(label, spec.source.label ?? spec.source.image);
    const shape: [number, number, number] = [image.size[2], image.size[1], image.size[0]];
    const rec: CaseRecord = {
      ...base, status: 'ok', modality,
      geometry: { spacing: image.spacing, origin: image.origin, direction: image.direction, sourceSize, sourceSpacing },
      stats: intensityStats(image.data),
    };
    if (task.nativeKey !== undefined) rec.native = { key: task.nativeKey, spacing: native.spacing, size: native.size, orientation: orientation0 };
    const imgBytes = writeCacheFile(path.join(outDir, files.image), image, 'image');
    rec.image = { file: files.image, dtype: dtypeOf(image.data), shape, bytes: imgBytes };
    if (label !== undefined) {
      const counts = labelCounts(label.data);
      const fg = sampleForeground(label.data, shape, counts, task.foreground);
      const labBytes = writeCacheFile(path.join(outDir, files.label), label, 'label');
      writeForeground(path.join(outDir, files.foreground), fg);
      rec.label = { file: files.label, dtype: dtypeOf(label.data), shape, bytes: labBytes, stats: labelStats(counts, label.data.length), foregroundFile: files.foreground };
      const fgs = foregroundIntensityStats(image.data, label.data);
      if (fgs !== undefined) rec.foregroundStats = fgs;
    } else {
      // A case that lost its label since the last run must not keep a stale one.
      fs.rmSync(path.join(outDir, files.label), { force: true });
      fs.rmSync(path.join(outDir, files.foreground), { force: true });
    }
    if (notes.length > 0) rec.notes = notes;
    rec.ms = Math.round(performance.now() - t0);
    rec.preparedAt = new Date().toISOString();
    return rec;
  } catch (err) {
    // A fingerprint pass writes nothing, so it must not remove the files of an earlier prepare.
    if (task.fingerprintOnly !== true) removeCaseFiles(outDir, spec.id);
    const out: CaseRecord = { ...base, reason: reasonOf(err), ms: Math.round(performance.now() - t0), preparedAt: new Date().toISOString() };
    if (notes.length > 0) out.notes = notes;
    return out;
  }
}
