/**
 * The VISTA3D session contract `misfm serve` codes its click path against: the types of
 * src/infer/vista3d/session.ts. The engine thread imports that module by path at run time
 * (./engine-worker.ts), so tests can put a test double with the same contract in its place.
 */
import type { openVista3dSession } from '../infer/vista3d/session.js';

export type { ClickPoint, ClickResult, Vista3dSession } from '../infer/vista3d/session.js';
export type OpenVista3dSession = typeof openVista3dSession;
