/** Messages between the HTTP thread (./engine.ts) and the engine thread (./engine-worker.ts). */
import type { LoadModelOptions } from '../infer/model.js';
import type { Mat3, Vec3, VoxelArray } from '../io/volume.js';

/** A Volume as it crosses threads (typed arrays are copied or transferred). */
export interface VolumeMessage { data: VoxelArray; size: Vec3; spacing: Vec3; origin: Vec3; direction: Mat3 }

export type EngineRequest =
  | { type: 'predict'; checkpoint: string; load: LoadModelOptions; image: string; output: string }
  | { type: 'vista3d-open'; session: string; checkpoint: string; image: string; threads: number | null; reuseWindows?: number | null }
  | { type: 'vista3d-auto'; session: string; classes: (number | string)[] | 'everything' }
  | { type: 'vista3d-click'; session: string; points: { label: number; positive: boolean; ijk: Vec3 }[]; base: VolumeMessage | null }
  | { type: 'dispose'; session: string };

export type EngineReply =
  | { type: 'progress'; done: number; total: number }
  | { type: 'done'; result: unknown }
  | { type: 'error'; message: string; code: string };
