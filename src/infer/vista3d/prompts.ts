/**
 * Click prompts for `misfm segment`: `--point 'liver:+120,88,40'` strings and points files, in
 * voxel indices or world (LPS mm) coordinates, resolved to session ClickPoints and checked against
 * the image. Every problem is one line naming the click (and the file).
 *
 * Points file (JSON): an array, or {"points": [...]}, of {"class": "liver" | 1, "positive": true,
 * "point": [x, y, z]}; "positive" defaults to true.
 */
import { readFileSync } from 'node:fs';
import type { Vec3, Volume } from '../../io/volume.js';
import { worldToVoxel } from '../../io/volume.js';
import { MisfmError } from '../../util/errors.js';
import { classValue } from './classes.js';
import type { ClickPoint } from './session.js';

export interface RawClick { cls: string | number; positive: boolean; point: Vec3; where: string; }

const NUM = String.raw`[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?`;
const POINT_RE = new RegExp(`^\\s*([^:]+?)\\s*:\\s*([+-])\\s*(${NUM})\\s*,\\s*(${NUM})\\s*,\\s*(${NUM})\\s*$`);

/** 'CLASS:+X,Y,Z' or 'CLASS:-X,Y,Z'. */
export function parsePointArg(text: string): RawClick {
  const m = POINT_RE.exec(text);
  if (m === null) throw new MisfmError('ARGUMENT', `--point '${text}' is not CLASS:+X,Y,Z or CLASS:-X,Y,Z (e.g. liver:+120,88,40)`);
  return { cls: m[1]!, positive: m[2] === '+', point: [Number(m[3]), Number(m[4]), Number(m[5])], where: `--point '${text}'` };
}

/** Read a points file; throws naming the file and the entry. */
export function readPointsFile(file: string): RawClick[] {
  let json: unknown;
  try { json = JSON.parse(readFileSync(file, 'utf8')); } catch (err) {
    throw new MisfmError('ARGUMENT', `cannot read the points file: ${(err as Error).message}`, { file });
  }
  const list = Array.isArray(json) ? json : (typeof json === 'object' && json !== null && Array.isArray((json as Record<string, unknown>)['points'])) ? (json as Record<string, unknown[]>)['points']! : null;
  if (list === null) throw new MisfmError('ARGUMENT', 'the points file must hold an array of points or {"points": [...]}', { file });
  return list.map((e, i) => {
    const where = `point ${i + 1} of ${file}`;
    if (typeof e !== 'object' || e === null || Array.isArray(e)) throw new MisfmError('ARGUMENT', `${where} is not an object {"class", "positive", "point"}`);
    const o = e as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!['class', 'positive', 'point'].includes(k)) throw new MisfmError('ARGUMENT', `${where} has an unknown key '${k}' (allowed: class, positive, point)`);
    const cls = o['class'], pos = o['positive'] ?? true, pt = o['point'];
    if (typeof cls !== 'string' && typeof cls !== 'number') throw new MisfmError('ARGUMENT', `${where} needs "class": a class name or value`);
    if (typeof pos !== 'boolean') throw new MisfmError('ARGUMENT', `${where}: "positive" must be true or false`);
    if (!Array.isArray(pt) || pt.length !== 3 || !pt.every((v) => typeof v === 'number' && Number.isFinite(v))) throw new MisfmError('ARGUMENT', `${where}: "point" must be three numbers [x, y, z]`);
    return { cls, positive: pos, point: [pt[0], pt[1], pt[2]] as Vec3, where };
  });
}

/**
 * Resolve classes and coordinates (voxel indices, or world LPS mm with `world`) to clicks on `image`,
 * rounded to the nearest voxel; a click outside the image is an error naming it.
 */
export function resolveClicks(raw: readonly RawClick[], image: Volume, world: boolean): ClickPoint[] {
  return raw.map((r) => {
    let label: number;
    try { label = classValue(r.cls); } catch (err) { throw new MisfmError('ARGUMENT', `${r.where}: ${(err as Error).message}`); }
    const v = world ? worldToVoxel(image, r.point) : r.point;
    const ijk = v.map((c) => Math.round(c)) as Vec3;
    if (ijk.some((c, a) => c < 0 || c > image.size[a]! - 1)) {
      const shown = world ? `world (${r.point.join(',')}) mm = voxel (${v.map((c) => c.toFixed(1)).join(',')})` : `(${r.point.join(',')})`;
      throw new MisfmError('ARGUMENT', `${r.where}: ${shown} is outside the image (size ${image.size.join('x')})`);
    }
    return { label, positive: r.positive, ijk };
  });
}
