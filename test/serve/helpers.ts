/** Helpers for the `misfm serve` tests: a data folder on disk, an API client, raw HTTP and SSE. */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir, writeTinyCheckpoint, writeVolume } from '../infer/helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The compiled test double of the VISTA3D session. */
export const vista3dDouble = path.join(here, 'vista3d-double.js');

export interface DataFolder { root: string; data: string; outside: string; ckpt: string }

/** data/: a.nii.gz, sub/b.nrrd, links escaping the folder; outside/: a secret image; a tiny model. */
export async function makeDataFolder(tag: string): Promise<DataFolder> {
  const root = tempDir(tag);
  const data = path.join(root, 'data'), outside = path.join(root, 'outside');
  fs.mkdirSync(path.join(data, 'sub'), { recursive: true });
  fs.mkdirSync(outside);
  await writeVolume(path.join(data, 'a.nii.gz'), [24, 20, 12], (i, j, k) => (i < 12 ? 300 : -300) + j + k);
  await writeVolume(path.join(data, 'sub', 'b.nrrd'), [16, 18, 10], (i, j, k) => ((i + j) % 7) * 60 - 150 + k, { spacing: [0.8, 0.8, 2] });
  await writeVolume(path.join(outside, 'secret.nii.gz'), [4, 4, 4], () => 7);
  fs.symlinkSync(path.join(outside, 'secret.nii.gz'), path.join(data, 'escape.nii.gz'));
  fs.symlinkSync(outside, path.join(data, 'linkdir'));
  const ckpt = path.join(root, 'model.pt');
  writeTinyCheckpoint(ckpt);
  return { root, data, outside, ckpt };
}

export interface Reply { status: number; headers: http.IncomingHttpHeaders; body: Buffer; json: () => Record<string, unknown> }

/** One HTTP request with full control over the headers (fetch forbids Host and Origin). */
export function raw(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer; signal?: AbortSignal } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers ?? {}, ...(opts.signal ? { signal: opts.signal } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body.toString('utf8')) as Record<string, unknown> });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

/** A client for one server: JSON calls with the token. */
export function client(base: string, token: string): {
  get: (p: string) => Promise<Reply>;
  post: (p: string, body?: unknown, signal?: AbortSignal) => Promise<Reply>;
} {
  const auth = { authorization: `Bearer ${token}` };
  return {
    get: (p) => raw(base + p, { headers: auth }),
    post: (p, body, signal) => raw(base + p, {
      method: 'POST', headers: { ...auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }), ...(signal ? { signal } : {}),
    }),
  };
}

/** Collect server-sent job events until stopped. */
export function collectEvents(url: string): { events: Record<string, unknown>[]; stop: () => void; ready: Promise<void> } {
  const events: Record<string, unknown>[] = [];
  const ac = new AbortController();
  let buf = '';
  let readyResolve: () => void = () => undefined;
  const ready = new Promise<void>((r) => { readyResolve = r; });
  const req = http.get(url, { signal: ac.signal }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (c: string) => {
      buf += c;
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const ev = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (ev === 'hello') readyResolve();
        if (ev === 'job' && data !== undefined) events.push(JSON.parse(data) as Record<string, unknown>);
      }
    });
    res.on('error', () => undefined);
  });
  req.on('error', () => undefined);
  return { events, stop: () => ac.abort(), ready };
}
