/**
 * `misfm serve`: a local web server for reviewing and correcting segmentations in the browser.
 *
 * Security model (a local app that exposes patient images and runs jobs):
 * - it binds 127.0.0.1 unless told otherwise;
 * - every /api request needs the random token generated at start (Authorization: Bearer, the
 *   X-Misfm-Token header, or ?token= for URLs a page cannot add headers to, such as EventSource);
 * - a request carrying an Origin other than the server's own, a cross-site Sec-Fetch-Site or
 *   (bound to loopback) a Host that is not the loopback address is refused, so another web page
 *   cannot replay the token or rebind its DNS name onto the server;
 * - files are served only from the data folder and the output folder, by relative path, with
 *   traversal, absolute paths and symbolic links leaving them refused (./paths.ts);
 * - request bodies are JSON with a size limit and a schema; errors are one clear JSON line.
 * The viewer's static files (no data in them) are served without the token; the page takes the
 * token from its URL.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { writeLike } from '../io/image/index.js';
import type { LoadModelOptions } from '../infer/model.js';
import { MisfmError } from '../util/errors.js';
import { JsonlLogger } from '../util/jsonl.js';
import { VERSION } from '../version.js';
import { Engine, type JobEvent } from './engine.js';
import type { VolumeMessage } from './engine-protocol.js';
import { listServedCases, type ServedCase } from './cases.js';
import { PathError, resolveInside } from './paths.js';
import { CaseSession } from './session.js';
import { strokeVoxels, type BrushShape } from './brush.js';
import type { Vec3 } from '../io/volume.js';

/** A segmentation model the server offers. */
export interface ServedModel {
  /** Id used in the API ('vista3d' for the VISTA3D model, else m0, m1, ...). */
  id: string;
  kind: 'predict' | 'vista3d';
  checkpoint: string;
  /** Loading options for 'predict' models (model config, intensity overrides). */
  load?: LoadModelOptions;
}

export interface ServeOptions {
  dataDir: string;
  /** Output folder (default <dataDir>/.misfm-serve). */
  outputDir?: string;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  models?: ServedModel[];
  /** libtorch threads of the engine thread. */
  threads?: number | null;
  /** Largest accepted request body in bytes (default 1 MiB). */
  bodyLimit?: number;
  /** Open sessions kept; the least recently used one is closed beyond this (default 8). */
  maxSessions?: number;
  /** Fixed token (tests); default 24 random bytes. */
  token?: string;
  /** Module exporting openVista3dSession (default the built-in VISTA3D). */
  vista3dModule?: string;
  /** VISTA3D sessions' `reuseWindows` (misfm's cache-aware click windows); default off, MONAI's windows. */
  reuseWindows?: number;
  /** Folder holding the built viewer (index.html, app.js); default dist/viewer. */
  viewerDir?: string;
}

export interface RunningServer {
  app: FastifyInstance;
  url: string;
  /** The URL to open, token included. */
  openUrl: string;
  token: string;
  port: number;
  dataDir: string;
  outputDir: string;
  engine: Engine;
  close(): Promise<void>;
}

/** An API error with its HTTP status. */
export class HttpError extends MisfmError {
  constructor(readonly status: number, message: string) {
    super('ARGUMENT', message);
    this.name = 'HttpError';
  }
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

function defaultViewerDir(): string {
  // dist/src/serve/server.js -> dist/viewer
  return fileURLToPath(new URL('../../viewer/', import.meta.url));
}

const voxelSchema = { type: 'array', items: { type: 'integer' }, minItems: 3, maxItems: 3 } as const;
const SCHEMAS = {
  open: { type: 'object', required: ['case'], additionalProperties: false, properties: { case: { type: 'string', minLength: 1, maxLength: 4096 } } },
  auto: {
    type: 'object', required: ['model'], additionalProperties: false,
    properties: { model: { type: 'string' }, classes: { anyOf: [{ const: 'everything' }, { type: 'array', maxItems: 512, items: { anyOf: [{ type: 'integer' }, { type: 'string', maxLength: 200 }] } }] } },
  },
  clicks: {
    type: 'object', required: ['points'], additionalProperties: false,
    properties: {
      points: {
        type: 'array', minItems: 1, maxItems: 32,
        items: { type: 'object', required: ['label', 'positive', 'ijk'], additionalProperties: false, properties: { label: { type: 'integer', minimum: 1, maximum: 65535 }, positive: { type: 'boolean' }, ijk: voxelSchema } },
      },
    },
  },
  brush: {
    type: 'object', required: ['label', 'points', 'radius'], additionalProperties: false,
    properties: {
      label: { type: 'integer', minimum: 0, maximum: 65535 }, erase: { type: 'boolean' }, radius: { type: 'number', minimum: 0, maximum: 64 },
      shape: { enum: ['ball', 'x', 'y', 'z'] }, points: { type: 'array', minItems: 1, maxItems: 10000, items: voxelSchema },
    },
  },
} as const;

/** Start a server; resolves once it listens. */
export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  let dataDir: string;
  try { dataDir = fs.realpathSync(opts.dataDir); } catch { throw new MisfmError('DATA', 'data folder not found', { file: opts.dataDir }); }
  if (!fs.statSync(dataDir).isDirectory()) throw new MisfmError('DATA', 'not a folder', { file: opts.dataDir });
  const outputDirGiven = opts.outputDir ?? path.join(dataDir, '.misfm-serve');
  fs.mkdirSync(outputDirGiven, { recursive: true });
  const outputDir = fs.realpathSync(outputDirGiven);
  const host = opts.host ?? '127.0.0.1';
  const token = opts.token ?? randomBytes(24).toString('hex');
  const viewerDir = opts.viewerDir ?? defaultViewerDir();
  const models = opts.models ?? [];
  const maxSessions = opts.maxSessions ?? 8;
  const engine = new Engine({ threads: opts.threads ?? null, ...(opts.vista3dModule !== undefined ? { vista3dModule: opts.vista3dModule } : {}) });
  const log = new JsonlLogger(path.join(outputDir, 'serve.jsonl'));
  const sessions = new Map<string, CaseSession>();
  const vistaClasses = new Map<string, Map<number, string>>();
  const listeners = new Set<(e: JobEvent) => void>();
  engine.on('job', (e: JobEvent) => {
    if (e.state !== 'running' || e.done === 0) log.log({ event: 'job', ...e });
    for (const l of listeners) l(e);
  });

  // Strict bodies: no type coercion, unknown properties are an error rather than silently dropped.
  const app = Fastify({
    bodyLimit: opts.bodyLimit ?? 1 << 20, logger: false, forceCloseConnections: true,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false } },
  });
  let port = 0;
  const tokenBuf = Buffer.from(token);

  const allowedHost = (h: string | undefined): boolean => {
    if (!LOOPBACK.has(host)) return true; // bound to a routable address: Host names cannot be known
    if (h === undefined) return false;
    const m = /^(.*):(\d+)$/.exec(h);
    return m !== null && LOOPBACK.has(m[1]!) && Number(m[2]) === port;
  };

  app.addHook('onRequest', async (req, reply) => {
    const hostHeader = req.headers.host;
    if (!allowedHost(hostHeader)) return reply.code(403).send({ error: `unexpected Host header '${hostHeader ?? ''}' (the server answers only to its loopback address)` });
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `http://${hostHeader}`) return reply.code(403).send({ error: `requests from origin '${origin}' are refused (only the viewer served from this address may call the API)` });
    if (req.headers['sec-fetch-site'] === 'cross-site') return reply.code(403).send({ error: 'cross-site requests are refused' });
    if (!req.url.startsWith('/api/')) return undefined;
    const given = tokenOf(req);
    if (given === null) return reply.code(401).send({ error: 'missing token: send Authorization: Bearer <token> (printed when the server started)' });
    const g = Buffer.from(given);
    if (g.length !== tokenBuf.length || !timingSafeEqual(g, tokenBuf)) return reply.code(403).send({ error: 'wrong token' });
    return undefined;
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string; validation?: unknown }, req, reply) => {
    let status = 500;
    let message = err.message;
    if (err instanceof PathError) status = err.status;
    else if (err instanceof HttpError) status = err.status;
    else if (err instanceof MisfmError) status = err.code === 'ENGINE' ? 500 : 400;
    else if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') { status = 413; message = `request body too large (limit ${opts.bodyLimit ?? 1 << 20} bytes)`; }
    else if (err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError) { status = 400; message = `malformed JSON body: ${err.message}`; }
    else if (err.validation !== undefined) { status = 400; message = `invalid request: ${err.message}`; }
    else if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) status = err.statusCode;
    if (status >= 500) log.log({ event: 'error', url: req.url, message: err.message, stack: err.stack ?? null });
    void reply.code(status).send({ error: message, ...(err instanceof MisfmError ? { code: err.code } : {}) });
  });

  // ---- viewer (static, no data) ----
  const staticFile = (name: string, type: string) => async (_req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const file = path.join(viewerDir, name);
    if (!fs.existsSync(file)) throw new HttpError(500, `viewer not built (${file} missing): run 'bash scripts/setup.sh'`);
    reply.header('content-type', type).header('cache-control', 'no-store')
      .header('content-security-policy', "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; script-src 'self'; worker-src 'self' blob:");
    await reply.send(fs.createReadStream(file));
  };
  app.get('/', staticFile('index.html', 'text/html; charset=utf-8'));
  app.get('/app.js', staticFile('app.js', 'text/javascript; charset=utf-8'));
  app.get('/app.css', staticFile('app.css', 'text/css; charset=utf-8'));

  // ---- API ----
  const sessionOf = (req: FastifyRequest): CaseSession => {
    const id = (req.params as { sid: string }).sid;
    const s = sessions.get(id);
    if (s === undefined) throw new HttpError(404, `no open session '${id}'`);
    s.lastUsed = Date.now();
    return s;
  };
  const modelOf = (id: string): ServedModel => {
    const m = models.find((x) => x.id === id);
    if (m === undefined) throw new HttpError(400, `unknown model '${id}'; the server offers ${models.map((x) => x.id).join(', ') || 'no models'}`);
    return m;
  };
  const state = (s: CaseSession, changed?: number): Record<string, unknown> => {
    const counts = Object.fromEntries([...s.history.counts().entries()].filter(([v]) => v > 0).sort((a, b) => a[0] - b[0]).map(([v, n]) => [String(v), n]));
    return {
      session: s.id, case: s.caseId, version: s.history.version, savedVersion: s.savedVersion, canUndo: s.history.canUndo, canRedo: s.history.canRedo,
      counts, classes: s.classes(vistaClasses.get(s.id)), clicks: s.clicks.length, ...(changed !== undefined ? { changed } : {}),
    };
  };
  const info = (s: CaseSession): Record<string, unknown> => ({
    ...state(s), kind: s.kind, size: s.grid.size, spacing: s.grid.spacing, origin: s.grid.origin, direction: s.grid.direction,
    labelType: s.history.data instanceof Uint16Array ? 'uint16' : 'uint8', savedFrom: s.savedFrom === null ? null : path.relative(dataDir, s.savedFrom),
  });
  const applyResult = (s: CaseSession, kind: string, labels: VolumeMessage): number => {
    if (labels.size.some((v, i) => v !== s.grid.size[i])) throw new MisfmError('ENGINE', `${kind}: result grid ${labels.size.join('x')} differs from the image ${s.grid.size.join('x')}`);
    const changed = s.history.commit(kind, labels.data);
    s.logEdit(kind, changed);
    return changed;
  };
  const ensureVista = (s: CaseSession): Promise<void> => {
    const m = models.find((x) => x.kind === 'vista3d');
    if (m === undefined) return Promise.reject(new HttpError(400, 'this server has no VISTA3D model: start it with --vista3d CKPT'));
    if (s.vista3d === null) {
      s.vista3d = engine.submit('vista3d-open', s.id, { type: 'vista3d-open', session: s.id, checkpoint: m.checkpoint, image: s.casePath, threads: opts.threads ?? null, reuseWindows: opts.reuseWindows ?? null })
        .then((r) => { vistaClasses.set(s.id, new Map((r as { classes: [number, string][] }).classes)); });
      s.vista3d.catch(() => { s.vista3d = null; });
    }
    return s.vista3d;
  };
  const closeSession = (s: CaseSession): void => {
    sessions.delete(s.id);
    vistaClasses.delete(s.id);
    if (s.vista3d !== null) engine.submit('dispose', s.id, { type: 'dispose', session: s.id }).catch(() => undefined);
  };

  app.get('/api/health', async () => ({ ok: true, version: VERSION, sessions: sessions.size, engine: { busy: engine.busy, queued: engine.queued, finished: engine.finished } }));
  app.get('/api/cases', async () => ({ cases: listServedCases(dataDir) satisfies ServedCase[] }));
  app.get('/api/models', async () => ({ models: models.map((m) => ({ id: m.id, kind: m.kind, name: path.basename(m.checkpoint) })) }));
  app.get('/api/sessions', async () => ({ sessions: [...sessions.values()].map((s) => ({ session: s.id, case: s.caseId })) }));

  app.post('/api/sessions', { schema: { body: SCHEMAS.open } }, async (req) => {
    const caseId = (req.body as { case: string }).case;
    resolveInside(dataDir, caseId); // refuses traversal, absolute paths, links out of the folder
    const listed = listServedCases(dataDir).find((c) => c.id === caseId);
    if (listed === undefined) throw new HttpError(404, `'${caseId}' is not a case of the data folder (see GET /api/cases)`);
    const s = await CaseSession.open({ caseId, kind: listed.kind, casePath: path.join(dataDir, caseId), cacheDir: path.join(outputDir, 'viewer-cache') });
    sessions.set(s.id, s);
    if (sessions.size > maxSessions) {
      const oldest = [...sessions.values()].sort((a, b) => a.lastUsed - b.lastUsed)[0]!;
      closeSession(oldest);
    }
    log.log({ event: 'open', session: s.id, case: caseId, savedFrom: s.savedFrom });
    return info(s);
  });
  app.get('/api/sessions/:sid', async (req) => info(sessionOf(req)));
  app.delete('/api/sessions/:sid', async (req) => { closeSession(sessionOf(req)); return { closed: true }; });

  app.get('/api/sessions/:sid/image.nii.gz', async (req, reply) => {
    const s = sessionOf(req);
    reply.header('content-type', 'application/octet-stream');
    return reply.send(fs.createReadStream(s.viewerImage));
  });
  app.get('/api/sessions/:sid/labels.raw', async (req, reply) => {
    const s = sessionOf(req);
    const d = s.history.data;
    reply.header('content-type', 'application/octet-stream').header('x-misfm-label-type', d instanceof Uint16Array ? 'uint16' : 'uint8')
      .header('x-misfm-version', String(s.history.version)).header('x-misfm-size', s.grid.size.join(','));
    return reply.send(Buffer.from(d.buffer, d.byteOffset, d.byteLength));
  });
  app.get('/api/sessions/:sid/labels.nii.gz', async (req, reply) => {
    const s = sessionOf(req);
    const tmp = path.join(outputDir, `.labels-${s.id}-${randomBytes(4).toString('hex')}.nii.gz`);
    const d = s.history.data.slice();
    await writeLike(tmp, d, s.grid, { dtype: d instanceof Uint16Array ? 'uint16' : 'uint8' });
    const bytes = fs.readFileSync(tmp);
    fs.rmSync(tmp, { force: true });
    reply.header('content-type', 'application/octet-stream');
    return reply.send(bytes);
  });

  app.post('/api/sessions/:sid/auto', { schema: { body: SCHEMAS.auto } }, async (req) => {
    const s = sessionOf(req);
    const body = req.body as { model: string; classes?: (number | string)[] | 'everything' };
    const m = modelOf(body.model);
    const t0 = Date.now();
    let labels: VolumeMessage;
    if (m.kind === 'predict') {
      const out = path.join(outputDir, 'auto', `${s.id}-${randomBytes(4).toString('hex')}.nii.gz`);
      const r = await engine.submit('auto', s.id, { type: 'predict', checkpoint: m.checkpoint, load: m.load ?? {}, image: s.casePath, output: out }) as { labels: VolumeMessage; classes: [number, string][] };
      for (const [v, n] of r.classes) if (v > 0 && !s.names.has(v)) s.names.set(v, n);
      labels = r.labels;
    } else {
      await ensureVista(s);
      const r = await engine.submit('auto', s.id, { type: 'vista3d-auto', session: s.id, classes: body.classes ?? 'everything' }) as { labels: VolumeMessage };
      for (const [v, n] of vistaClasses.get(s.id) ?? []) if (!s.names.has(v) && v > 0) s.names.set(v, n);
      labels = r.labels;
    }
    const changed = applyResult(s, `auto:${m.id}`, labels);
    log.log({ event: 'auto', session: s.id, model: m.id, changed, ms: Date.now() - t0 });
    return { ...state(s, changed), ms: Date.now() - t0 };
  });

  app.post('/api/sessions/:sid/clicks', { schema: { body: SCHEMAS.clicks } }, async (req) => {
    const s = sessionOf(req);
    const body = req.body as { points: { label: number; positive: boolean; ijk: Vec3 }[] };
    const points = body.points.map((p, i) => ({ label: p.label, positive: p.positive, ijk: s.checkVoxel(p.ijk, `points[${i}]`) }));
    const t0 = Date.now();
    await ensureVista(s);
    const base = s.labelVolume();
    const r = await engine.submit('click', s.id, { type: 'vista3d-click', session: s.id, points, base }) as { labels: VolumeMessage; windowsComputed: number; cacheHits: number };
    const changed = applyResult(s, 'click', r.labels);
    const ms = Date.now() - t0;
    s.clicks.push({ time: new Date().toISOString(), points, changedVoxels: changed, windowsComputed: r.windowsComputed, cacheHits: r.cacheHits, ms });
    log.log({ event: 'click', session: s.id, points, changed, windowsComputed: r.windowsComputed, cacheHits: r.cacheHits, ms });
    return { ...state(s, changed), windowsComputed: r.windowsComputed, cacheHits: r.cacheHits, ms };
  });

  app.post('/api/sessions/:sid/brush', { schema: { body: SCHEMAS.brush } }, async (req) => {
    const s = sessionOf(req);
    const b = req.body as { label: number; erase?: boolean; radius: number; shape?: BrushShape; points: Vec3[] };
    const centres = b.points.map((p, i) => s.checkVoxel(p, `points[${i}]`));
    const idx = strokeVoxels(s.grid.size, centres, b.radius, b.shape ?? 'ball');
    let changed: number;
    if (b.erase === true) {
      // The eraser clears the chosen class only (label 0: every class), so neighbours stay intact.
      const d = s.history.data;
      const hit = idx.filter((i) => (b.label === 0 ? d[i] !== 0 : d[i] === b.label));
      changed = s.history.patch('eraser', hit, 0);
      s.logEdit('eraser', changed);
    } else {
      if (b.label === 0) throw new HttpError(400, 'brush: label 0 is background; use erase: true to clear voxels');
      changed = s.history.patch('brush', idx, b.label);
      s.logEdit('brush', changed);
    }
    return state(s, changed);
  });

  app.post('/api/sessions/:sid/undo', async (req) => {
    const s = sessionOf(req);
    const e = s.history.undo();
    if (e === null) throw new HttpError(409, 'nothing to undo');
    s.logEdit(`undo ${e.kind}`, e.idx.length);
    return { ...state(s, e.idx.length), undone: e.kind };
  });
  app.post('/api/sessions/:sid/redo', async (req) => {
    const s = sessionOf(req);
    const e = s.history.redo();
    if (e === null) throw new HttpError(409, 'nothing to redo');
    s.logEdit(`redo ${e.kind}`, e.idx.length);
    return { ...state(s, e.idx.length), redone: e.kind };
  });
  app.post('/api/sessions/:sid/save', async (req) => {
    const s = sessionOf(req);
    const r = await s.save();
    log.log({ event: 'save', session: s.id, case: s.caseId, labels: r.labels, version: r.version, sha256: r.sha256 });
    return { ...state(s), labels: path.relative(dataDir, r.labels), record: path.relative(dataDir, r.record), savedVersion: r.version, sha256: r.sha256 };
  });

  // Files from the two roots only, by relative path.
  app.get('/api/files/:root/*', async (req, reply) => {
    const p = req.params as { root: string; '*': string };
    const root = p.root === 'data' ? dataDir : p.root === 'output' ? outputDir : null;
    if (root === null) throw new HttpError(404, `unknown root '${p.root}' (data or output)`);
    const file = resolveInside(root, p['*']); // the router has decoded it once already
    if (!fs.statSync(file).isFile()) throw new HttpError(404, `'${p['*']}' is not a file`);
    reply.header('content-type', 'application/octet-stream');
    return reply.send(fs.createReadStream(file));
  });

  // Progress of engine jobs, pushed as server-sent events.
  app.get('/api/events', (req, reply) => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    res.write(`event: hello\ndata: ${JSON.stringify({ version: VERSION })}\n\n`);
    const send = (e: JobEvent): void => { res.write(`event: job\ndata: ${JSON.stringify(e)}\n\n`); };
    listeners.add(send);
    const ping = setInterval(() => res.write(': ping\n\n'), 15000);
    req.raw.on('close', () => { listeners.delete(send); clearInterval(ping); });
  });

  await app.listen({ host, port: opts.port ?? 0 });
  const addr = app.server.address();
  port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  const url = `http://${shownHost}:${port}`;
  log.log({ event: 'start', version: VERSION, url, dataDir, outputDir, models: models.map((m) => ({ id: m.id, kind: m.kind, checkpoint: m.checkpoint })) });
  return {
    app, url, openUrl: `${url}/?token=${token}`, token, port, dataDir, outputDir, engine,
    async close(): Promise<void> {
      await app.close();
      await engine.close();
      log.log({ event: 'stop' });
      log.close();
    },
  };
}

function tokenOf(req: FastifyRequest): string | null {
  const auth = req.headers.authorization;
  if (typeof auth === 'string' && auth.startsWith('Bearer ')) return auth.slice(7).trim();
  const h = req.headers['x-misfm-token'];
  if (typeof h === 'string') return h;
  const q = (req.query as Record<string, unknown> | undefined)?.['token'];
  return typeof q === 'string' ? q : null;
}
