/**
 * The VISTA3D session contract `misfm serve` codes its click path against. It mirrors
 * `src/infer/vista3d/session.ts` (VISTA3D issue) exactly, so the server builds and its tests can run
 * with a test double before the real module is merged; the engine worker loads the real module
 * by path at run time (./engine-worker.ts).
 */
import type { Vec3, Volume } from '../io/volume.js';

/** label = class-table value; ijk = (x,y,z) voxel index on the session's image. */
export interface ClickPoint { label: number; positive: boolean; ijk: Vec3 }
export interface ClickResult { labels: Volume; windowsComputed: number; cacheHits: number }
export interface Vista3dSession {
  readonly image: Volume;
  readonly classes: ReadonlyMap<number, string>;
  autoSegment(classes: readonly (number | string)[] | 'everything', onProgress?: (done: number, total: number) => void): Promise<Volume>;
  click(points: readonly ClickPoint[], base: Volume | null, onProgress?: (done: number, total: number) => void): Promise<ClickResult>;
  dispose(): void;
}
export type OpenVista3dSession = (checkpointPath: string, image: Volume, opts?: { threads?: number; cacheBytes?: number }) => Promise<Vista3dSession>;
