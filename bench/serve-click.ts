/**
 * Click latency of `misfm serve`: from posting a click to having the updated label map (the bytes
 * the page writes into its overlay), through the real server (HTTP, engine thread, VISTA3D point
 * inference on the click window, Algorithm 1 merge, diff into the edit history, labels.raw).
 * Uses the small VISTA3D fixture (random weights: timing only) on the bundled abdomen CT.
 * Measures a first click in a window (image features computed) and a later click in the same
 * window (features from the cache). As in MONAI, a click's window is centred on it (clamped at the
 * image border), so "the same window" means the same spot (a correction there) or clicks near a
 * border whose windows clamp to the same place. Wall time and the process's CPU time (all threads)
 * are reported side by side: on a shared machine the wall time mostly measures the other load.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/serve-click.js [--threads 2] [--repeats 3]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../src/serve/server.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const arg = (name: string, dflt: number): number => { const i = process.argv.indexOf(`--${name}`); return i >= 0 ? Number(process.argv[i + 1]) : dflt; };
const threads = arg('threads', 2), repeats = arg('repeats', 3);
const ckpt = path.resolve(repo, '../shared/fixtures/vista3d_small/state_dict.pt');

const data = fs.mkdtempSync(path.join(os.tmpdir(), 'misfm-bench-serve-'));
fs.copyFileSync(path.join(repo, 'data/sample/images/abdomen_ct.nii.gz'), path.join(data, 'abdomen_ct.nii.gz'));
const srv = await startServer({ dataDir: data, port: 0, threads, models: [{ id: 'vista3d', kind: 'vista3d', checkpoint: ckpt }] });
const H = { authorization: `Bearer ${srv.token}`, 'content-type': 'application/json' };
const post = async (p: string, body: unknown): Promise<Record<string, unknown>> => {
  const r = await fetch(srv.url + p, { method: 'POST', headers: H, body: JSON.stringify(body) });
  const j = (await r.json()) as Record<string, unknown>;
  if (!r.ok) throw new Error(String(j['error']));
  return j;
};
try {
  const t0 = performance.now();
  const s = await post('/api/sessions', { case: 'abdomen_ct.nii.gz' });
  const sid = String(s['session']);
  console.log(`open: ${(performance.now() - t0).toFixed(0)} ms; CT ${(s['size'] as number[]).join('x')}, ${threads} thread(s), load ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} cores`);
  const click = async (ijk: number[], positive = true): Promise<{ ms: number; cpu: number; server: number; windows: number; hits: number; changed: number }> => {
    const t = performance.now();
    const c0 = process.cpuUsage();
    const r = await post(`/api/sessions/${sid}/clicks`, { points: [{ label: 1, positive, ijk }] });
    const lab = await fetch(`${srv.url}/api/sessions/${sid}/labels.raw`, { headers: H });
    await lab.arrayBuffer();
    const c = process.cpuUsage(c0);
    return { ms: performance.now() - t, cpu: (c.user + c.system) / 1000, server: Number(r['ms']), windows: Number(r['windowsComputed']), hits: Number(r['cacheHits']), changed: Number(r['changed']) };
  };
  const rows: [string, Awaited<ReturnType<typeof click>>][] = [];
  rows.push(['first click (opens the VISTA3D session)', await click([61, 50, 56])]);
  for (let r = 0; r < repeats; r++) rows.push([`same spot again (${r % 2 === 0 ? 'negative' : 'positive'})`, await click([61, 50, 56], r % 2 === 1)]);
  rows.push(['first click near a corner', await click([4, 4, 4])]);
  for (let r = 0; r < repeats; r++) rows.push([`later click, same corner window (${r + 1})`, await click([6 + r, 5, 8])]);
  for (const [name, v] of rows) {
    console.log(`${name.padEnd(40)} ${v.ms.toFixed(0).padStart(7)} ms wall to updated labels (server ${v.server} ms), CPU ${v.cpu.toFixed(0)} ms; windows computed ${v.windows}, cache hits ${v.hits}, ${v.changed} voxels changed`);
  }
} finally {
  await srv.close();
  fs.rmSync(data, { recursive: true, force: true });
}
