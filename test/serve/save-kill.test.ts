/**
 * Saving is atomic: the server process is killed (SIGKILL) at several moments during a save of a
 * changed label map; afterwards the saved file is always complete and equal to either the
 * previous save or the new one, and at least one kill landed mid-write (its temp folder remained)
 * with the previous file intact.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { repoRoot } from '../helpers.js';
import { tempDir, writeVolume } from '../infer/helpers.js';
import { readImage } from '../../src/io/image/index.js';
import { client } from './helpers.js';

interface Child { proc: ChildProcess; url: string; token: string }

function startChild(data: string): Promise<Child> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [path.join(repoRoot, 'bin/misfm.js'), 'serve', data, '--port', '0', '--threads', '1'], {
      env: { ...process.env, MISFM_ALLOCATOR_SET: '1' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '', err = '';
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /open (http:\/\/[^/]+)\/\?token=([0-9a-f]+)/.exec(out);
      if (m !== null) resolve({ proc, url: m[1]!, token: m[2]! });
    });
    proc.stderr!.on('data', (c: Buffer) => { err += c.toString(); });
    proc.on('exit', (code) => reject(new Error(`server exited (${code}) before printing its URL: ${out}${err}`)));
  });
}

const killed = (c: Child): Promise<void> => new Promise((r) => { c.proc.on('exit', () => r()); c.proc.kill('SIGKILL'); });

/** Random scattered voxels of label 2: a map that compresses slowly, so the save takes a while. */
function scatter(size: number[], seed: number): number[][] {
  let s = seed;
  const rnd = (n: number): number => { s = (s * 1103515245 + 12345) % 2147483648; return s % n; };
  return Array.from({ length: 8000 }, () => [rnd(size[0]!), rnd(size[1]!), rnd(size[2]!)]);
}

test('killing the server during a save leaves the previous file intact (never a partial one)', { timeout: 240_000 }, async (t) => {
  const root = tempDir('serve-kill');
  const data = path.join(root, 'data');
  fs.mkdirSync(data);
  const size: [number, number, number] = [160, 160, 64];
  await writeVolume(path.join(data, 'big.nii.gz'), size, (i, j, k) => (i + 2 * j + 3 * k) % 1000);
  const seg = path.join(data, 'big.seg.nii.gz');
  const editAndSave = async (c: Child, withScatter: boolean): Promise<number> => {
    const api = client(c.url, c.token);
    const s = (await api.post('/api/sessions', { case: 'big.nii.gz' })).json();
    const sid = String(s['session']);
    if (!withScatter) {
      assert.equal((await api.post(`/api/sessions/${sid}/brush`, { label: 1, radius: 20, points: [[80, 80, 32]] })).status, 200);
    } else {
      for (let r = 0; r < 4; r++) assert.equal((await api.post(`/api/sessions/${sid}/brush`, { label: 2, radius: 0, points: scatter(size, r + 1) })).status, 200);
    }
    const t0 = Date.now();
    assert.equal((await api.post(`/api/sessions/${sid}/save`)).status, 200);
    return Date.now() - t0;
  };
  const tempLeft = (): boolean => fs.readdirSync(data).some((n) => n.startsWith('.misfm-tmp-'));
  try {
    // v1: a ball, saved completely. v2: v1 plus scattered voxels (measured once, saved completely).
    let c = await startChild(data);
    await editAndSave(c, false);
    await killed(c);
    const v1 = fs.readFileSync(seg);
    const v1Labels = (await readImage(seg)).data;
    c = await startChild(data);
    const saveMs = await editAndSave(c, true);
    await killed(c);
    const v2 = fs.readFileSync(seg);
    assert.notDeepEqual(v2, v1);
    // Trials: back to v1, the same edits, save, kill after a varying delay.
    const outcomes: string[] = [];
    let midWrite = 0;
    for (const frac of [0.3, 0.6, 0.9]) {
      fs.writeFileSync(seg, v1);
      fs.rmSync(path.join(data, 'big.seg.json'), { force: true });
      for (const n of fs.readdirSync(data)) if (n.startsWith('.misfm-tmp-')) fs.rmSync(path.join(data, n), { recursive: true, force: true });
      c = await startChild(data);
      const api = client(c.url, c.token);
      const s = (await api.post('/api/sessions', { case: 'big.nii.gz' })).json();
      const sid = String(s['session']);
      for (let r = 0; r < 4; r++) await api.post(`/api/sessions/${sid}/brush`, { label: 2, radius: 0, points: scatter(size, r + 1) });
      api.post(`/api/sessions/${sid}/save`).catch(() => undefined);
      await new Promise((r) => setTimeout(r, saveMs * frac));
      await killed(c);
      const now = fs.readFileSync(seg);
      const same1 = now.equals(v1), same2 = now.equals(v2);
      assert.ok(same1 || same2, `after a kill at ${frac} the saved file is neither the previous nor the new save`);
      if (same1 && tempLeft()) midWrite++;
      outcomes.push(same1 ? (tempLeft() ? 'old+temp' : 'old') : 'new');
      // Whatever is there reads as a complete label map.
      const labels = (await readImage(seg)).data;
      assert.equal(labels.length, size[0] * size[1] * size[2]);
      if (same1) assert.deepEqual(labels, v1Labels);
    }
    t.diagnostic(`save ${saveMs} ms; outcomes ${outcomes.join(', ')}`);
    assert.ok(midWrite > 0, `no kill landed during the write (outcomes ${outcomes.join(', ')}, full save ${saveMs} ms)`);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
