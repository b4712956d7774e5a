/**
 * TEST DOUBLE of the VISTA3D session (src/serve/vista3d-types.ts), for the server's API tests
 * only: no network runs. It answers like a click model so the server's plumbing (engine thread,
 * queue, Algorithm-1 style merge into the current mask, undo, save) can be checked exactly:
 * - autoSegment: label 1 where the image is > 100, label 2 where it is < -100 (or only the asked classes);
 * - click: a ball of radius 2 voxels around each point; positive points set the class on voxels that
 *   are background or that class, negative points clear that class; everything else keeps `base`.
 * `windowsComputed` is 1 for a click in a new 8^3 block, `cacheHits` 1 for a block seen before.
 * Each call waits the milliseconds written in the file MISFM_TEST_VISTA3D_DELAY_FILE names, read per
 * call (a worker's environment is fixed when it starts), to test clients that go away during a job.
 * Opening a session writes the options it got to the file MISFM_TEST_VISTA3D_OPTIONS_FILE names.
 */
import * as fs from 'node:fs';
import type { Volume } from '../../src/io/volume.js';
import type { ClickPoint, ClickResult, Vista3dSession } from '../../src/serve/vista3d-types.js';

function delayMs(): number {
  const f = process.env['MISFM_TEST_VISTA3D_DELAY_FILE'];
  return f !== undefined && fs.existsSync(f) ? Number(fs.readFileSync(f, 'utf8')) : 0;
}
const delay = (): Promise<void> => new Promise((r) => setTimeout(r, delayMs()));

export async function openVista3dSession(checkpointPath: string, image: Volume, opts: Record<string, unknown> = {}): Promise<Vista3dSession> {
  if (checkpointPath.includes('missing')) throw new Error(`${checkpointPath}: not found`);
  // The session options the server passed, for the tests of its settings.
  const optsFile = process.env['MISFM_TEST_VISTA3D_OPTIONS_FILE'];
  if (optsFile !== undefined) fs.writeFileSync(optsFile, JSON.stringify(opts));
  const seen = new Set<string>();
  const like = (data: Uint8Array): Volume => ({ data, size: image.size, spacing: image.spacing, origin: image.origin, direction: image.direction });
  return {
    image,
    classes: new Map([[1, 'bright'], [2, 'dark'], [3, 'clicked']]),
    async autoSegment(classes, onProgress) {
      await delay();
      const want = (c: number): boolean => classes === 'everything' || classes.includes(c);
      const out = new Uint8Array(image.data.length);
      for (let i = 0; i < out.length; i++) {
        const v = image.data[i]!;
        out[i] = v > 100 && want(1) ? 1 : v < -100 && want(2) ? 2 : 0;
      }
      onProgress?.(1, 1);
      return like(out);
    },
    async click(points: readonly ClickPoint[], base: Volume | null, onProgress): Promise<ClickResult> {
      await delay();
      const [X, Y, Z] = image.size;
      const out = new Uint8Array(image.data.length);
      if (base !== null) out.set(base.data);
      let windowsComputed = 0, cacheHits = 0;
      for (const p of points) {
        const key = p.ijk.map((v) => Math.floor(v / 8)).join(',');
        if (seen.has(key)) cacheHits++; else { seen.add(key); windowsComputed++; }
        for (let z = p.ijk[2] - 2; z <= p.ijk[2] + 2; z++) for (let y = p.ijk[1] - 2; y <= p.ijk[1] + 2; y++) for (let x = p.ijk[0] - 2; x <= p.ijk[0] + 2; x++) {
          if (x < 0 || y < 0 || z < 0 || x >= X || y >= Y || z >= Z) continue;
          if ((x - p.ijk[0]) ** 2 + (y - p.ijk[1]) ** 2 + (z - p.ijk[2]) ** 2 > 4) continue;
          const i = x + X * (y + Y * z);
          if (p.positive && (out[i] === 0 || out[i] === p.label)) out[i] = p.label;
          if (!p.positive && out[i] === p.label) out[i] = 0;
        }
      }
      onProgress?.(1, 1);
      return { labels: like(out), windowsComputed, cacheHits };
    },
    dispose() { seen.clear(); },
  };
}
