/**
 * The engine thread of `misfm serve`: the only place the server runs libtorch. It takes one job
 * at a time from ./engine.ts (prediction with a PCT-Net/misfm checkpoint, VISTA3D sessions) and
 * posts progress while it works, so the HTTP thread stays responsive and can push that progress.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { setNumThreads } from '../engine/creation.js';
import { loadModelForInference, type LoadModelOptions, type ModelBundle } from '../infer/model.js';
import { predictCase } from '../infer/predict.js';
import { readImage } from '../io/image/index.js';
import type { Volume } from '../io/volume.js';
import { MisfmError } from '../util/errors.js';
import type { ClickPoint, OpenVista3dSession, Vista3dSession } from './vista3d-types.js';
import type { EngineRequest, EngineReply, VolumeMessage } from './engine-protocol.js';

const port = parentPort;
if (port === null) throw new Error('engine-worker.ts must run in a worker thread');
const init = workerData as { threads: number | null; vista3dModule: string };
if (init.threads !== null) setNumThreads(init.threads);

const bundles = new Map<string, Promise<ModelBundle>>();
const vistaSessions = new Map<string, Vista3dSession>();
let openVista: OpenVista3dSession | null = null;

async function vistaOpener(): Promise<OpenVista3dSession> {
  if (openVista === null) {
    const mod = (await import(pathToFileURL(init.vista3dModule).href)) as { openVista3dSession?: OpenVista3dSession };
    if (typeof mod.openVista3dSession !== 'function') throw new MisfmError('ENGINE', `${init.vista3dModule} does not export openVista3dSession`);
    openVista = mod.openVista3dSession;
  }
  return openVista;
}

function toMessage(v: Volume): VolumeMessage {
  return { data: v.data, size: v.size, spacing: v.spacing, origin: v.origin, direction: v.direction };
}

function bundleFor(file: string, opts: LoadModelOptions): Promise<ModelBundle> {
  const key = `${file}\0${JSON.stringify(opts)}`;
  let b = bundles.get(key);
  if (b === undefined) {
    b = loadModelForInference(file, opts);
    b.catch(() => bundles.delete(key));
    bundles.set(key, b);
  }
  return b;
}

function session(id: string): Vista3dSession {
  const s = vistaSessions.get(id);
  if (s === undefined) throw new MisfmError('ARGUMENT', `no VISTA3D session open for ${id}`);
  return s;
}

async function handle(req: EngineRequest, progress: (done: number, total: number) => void): Promise<{ result: unknown; transfer: ArrayBuffer[] }> {
  switch (req.type) {
    case 'predict': {
      const bundle = await bundleFor(req.checkpoint, req.load);
      fs.mkdirSync(path.dirname(req.output), { recursive: true });
      try {
        const r = await predictCase(bundle, req.image, req.output, { sidecar: false, onWindows: progress });
        const labels = await readImage(req.output);
        const values = bundle.labelValues;
        const names = bundle.classNames === null ? [] : bundle.classNames.map((n, i) => [values?.[i] ?? i, n] as [number, string]);
        return { result: { labels: toMessage(labels), classes: names, windowsComputed: r.windowsComputed, timings: r.timings }, transfer: [labels.data.buffer as ArrayBuffer] };
      } finally {
        fs.rmSync(req.output, { force: true });
      }
    }
    case 'vista3d-open': {
      vistaSessions.get(req.session)?.dispose();
      vistaSessions.delete(req.session);
      const open = await vistaOpener();
      const image = await readImage(req.image);
      const s = await open(req.checkpoint, image, { ...(req.threads === null ? {} : { threads: req.threads }), ...(req.reuseWindows == null ? {} : { reuseWindows: req.reuseWindows }) });
      vistaSessions.set(req.session, s);
      return { result: { classes: [...s.classes.entries()] }, transfer: [] };
    }
    case 'vista3d-auto': {
      const v = await session(req.session).autoSegment(req.classes, progress);
      return { result: { labels: toMessage(v) }, transfer: [v.data.buffer as ArrayBuffer] };
    }
    case 'vista3d-click': {
      const s = session(req.session);
      const base: Volume | null = req.base === null ? null : { ...req.base };
      const r = await s.click(req.points as ClickPoint[], base, progress);
      return { result: { labels: toMessage(r.labels), windowsComputed: r.windowsComputed, cacheHits: r.cacheHits }, transfer: [] };
    }
    case 'dispose': {
      vistaSessions.get(req.session)?.dispose();
      vistaSessions.delete(req.session);
      return { result: null, transfer: [] };
    }
    default:
      throw new MisfmError('ARGUMENT', `unknown engine request ${(req as { type: string }).type}`);
  }
}

port.on('message', (msg: { id: number; req: EngineRequest }) => {
  const reply = (r: EngineReply, transfer: ArrayBuffer[] = []): void => port.postMessage({ id: msg.id, ...r }, transfer);
  let last = 0;
  const progress = (done: number, total: number): void => {
    const now = Date.now();
    if (done === total || now - last > 200) { last = now; reply({ type: 'progress', done, total }); }
  };
  handle(msg.req, progress).then(
    ({ result, transfer }) => reply({ type: 'done', result }, transfer),
    (err: unknown) => reply({ type: 'error', message: err instanceof Error ? err.message : String(err), code: err instanceof MisfmError ? err.code : 'INTERNAL' }),
  );
});
