/**
 * End to end in a real browser: Debian's headless Chromium (software WebGL) driven by
 * puppeteer-core opens the page `misfm serve` prints, loads the bundled CT sample, runs automatic
 * segmentation, clicks a positive point on a missed region (VISTA3D), paints with the brush,
 * undoes, redoes and saves, and checks that the saved file holds exactly the voxels the page
 * shows, also after reopening. Needs `chromium` (scripts/setup.sh --with-browser) and the built
 * viewer; a screenshot after the click is written to dist/test-artifacts/.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import puppeteer, { type Page } from 'puppeteer-core';
import { startServer } from '../../src/serve/server.js';
import { readImage } from '../../src/io/image/index.js';
import { presetConfig } from '../../src/config/defaults.js';
import { fixturesDir, repoRoot } from '../helpers.js';
import { tempDir, writeTinyCheckpoint } from '../infer/helpers.js';

const CHROMIUM = process.env['MISFM_CHROMIUM'] ?? '/usr/bin/chromium';
const VIEWER = path.join(repoRoot, 'dist/viewer/app.js');
const VISTA_MODULE = path.join(repoRoot, 'dist/src/infer/vista3d/session.js');
const VISTA_CKPT = path.join(fixturesDir, 'vista3d_small/state_dict.pt');
const ARTIFACTS = path.join(repoRoot, 'dist/test-artifacts');

type Counts = Record<string, number>;
const viewer = <T>(page: Page, expr: string): Promise<T> => page.evaluate(`(async () => { const v = window.misfmViewer; return ${expr}; })()`) as Promise<T>;
async function idle(page: Page): Promise<void> {
  await page.waitForFunction('window.misfmViewer && !window.misfmViewer.busy()', { timeout: 240_000, polling: 100 });
  const err = await viewer<string>(page, 'v.lastError()');
  assert.equal(err, '', `the page reported an error: ${err}`);
}
const overlayCounts = (page: Page): Promise<Counts> => viewer<Counts>(page, 'v.overlayCounts()');
/** SHA-256 of the overlay's voxel bytes as the page holds them. */
const overlaySha = (page: Page): Promise<string> => viewer<string>(page, `crypto.subtle.digest('SHA-256', v.nv.volumes[1].img).then((b) => Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, '0')).join(''))`);
async function clickAt(page: Page, ijk: number[], opts: { shift?: boolean } = {}): Promise<void> {
  const xy = await viewer<[number, number] | null>(page, `v.voxelToClient(${JSON.stringify(ijk)}, 'axial')`);
  assert.ok(xy !== null, `voxel ${ijk} is not on the axial view`);
  if (opts.shift) await page.keyboard.down('Shift');
  await page.mouse.click(xy[0], xy[1]);
  if (opts.shift) await page.keyboard.up('Shift');
}

const ready = fs.existsSync(CHROMIUM) && fs.existsSync(VIEWER);
test('browser: open, automatic segmentation, click, brush, undo, redo, save; the saved file equals the view', {
  timeout: 600_000, skip: ready ? false : `needs ${CHROMIUM} (bash scripts/setup.sh --with-browser) and the built viewer ${VIEWER}`,
}, async (t) => {
  const withVista = fs.existsSync(VISTA_MODULE) && fs.existsSync(VISTA_CKPT);
  const root = tempDir('serve-browser');
  const data = path.join(root, 'data');
  fs.mkdirSync(data);
  fs.copyFileSync(path.join(repoRoot, 'data/sample/images/abdomen_ct.nii.gz'), path.join(data, 'abdomen_ct.nii.gz'));
  // A tiny random UNet3D stands in for a fine-tuned model (plumbing only; its labels mean nothing).
  const ckpt = path.join(root, 'model.pt');
  writeTinyCheckpoint(ckpt, { inference: { ...presetConfig('small-finetune').inference, window: [48, 48, 48], batchSize: 1, overlap: 0 } });
  const srv = await startServer({
    dataDir: data, port: 0, threads: 2,
    models: [{ id: 'm0', kind: 'predict', checkpoint: ckpt }, ...(withVista ? [{ id: 'vista3d', kind: 'vista3d' as const, checkpoint: VISTA_CKPT }] : [])],
  });
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--window-size=1400,900'],
    defaultViewport: { width: 1400, height: 900 },
  });
  try {
    const page = await browser.newPage();
    const consoleErrors: string[] = [];
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    await page.goto(srv.openUrl, { waitUntil: 'load' });
    await viewer(page, 'v.ready');
    await page.waitForSelector('li[data-case="abdomen_ct.nii.gz"]');
    await page.click('li[data-case="abdomen_ct.nii.gz"]');
    await page.waitForFunction('document.body.dataset.session !== undefined', { timeout: 120_000 });
    await idle(page);
    await page.click('button[data-view="axial"]');
    const size = await viewer<number[]>(page, 'v.state().size');
    assert.deepEqual(size, [122, 101, 112]);

    // Automatic segmentation with the model; the page's overlay shows exactly the server's map.
    await page.select('#model', 'm0');
    await page.click('#auto');
    await page.waitForFunction('window.misfmViewer.state().version > 0 && !window.misfmViewer.busy()', { timeout: 300_000, polling: 200 });
    await idle(page);
    const serverCounts = async (): Promise<Counts> => {
      const sid = await viewer<string>(page, 'v.state().session');
      const r = await fetch(`${srv.url}/api/sessions/${sid}`, { headers: { authorization: `Bearer ${srv.token}` } });
      return ((await r.json()) as { counts: Counts }).counts;
    };
    const afterAuto = await overlayCounts(page);
    assert.ok(Object.keys(afterAuto).length > 0, 'automatic segmentation labelled something');
    assert.deepEqual(afterAuto, await serverCounts());

    let afterClick = afterAuto;
    if (withVista) {
      // A positive click for a class the automatic result missed, at a body voxel that is background.
      const cls = 7;
      await page.evaluate(`(() => { const i = document.getElementById('new-class'); i.value = '${cls}'; i.dispatchEvent(new Event('change')); })()`);
      const target = await viewer<number[]>(page, `(() => { const img = v.nv.volumes[1].img; const [X, Y] = [122, 101];
        for (let r = 0; r < 40; r++) for (const [x, y] of [[61 + r, 50], [61 - r, 50], [61, 50 + r], [61, 50 - r]]) { if (img[x + X * (y + Y * 56)] === 0) return [x, y, 56]; }
        return [61, 50, 56]; })()`);
      await page.click('input[name=mode][value=click]');
      const before = (await overlayCounts(page))[cls] ?? 0;
      await clickAt(page, target);
      await page.waitForFunction('window.misfmViewer.lastClick() !== null', { timeout: 10_000 });
      await idle(page);
      const sent = await viewer<{ ijk: number[]; positive: boolean; label: number }>(page, 'v.lastClick()');
      assert.deepEqual(sent, { ijk: target, positive: true, label: cls }, 'the mouse click mapped to the intended voxel');
      afterClick = await overlayCounts(page);
      t.diagnostic(`class ${cls}: ${before} -> ${afterClick[cls] ?? 0} voxels after the click (${await page.evaluate('document.body.dataset.lastClickMs')} ms click to overlay)`);
      assert.notEqual(afterClick[cls] ?? 0, before, 'the click changed the overlay voxel count of its class');
      assert.deepEqual(afterClick, await serverCounts());
    } else {
      t.diagnostic(`click step not run: no VISTA3D session module at ${VISTA_MODULE}`);
    }
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'serve-after-click.png') });

    // Brush a stroke with class 9 by dragging the mouse; then undo and redo it.
    await page.evaluate(`(() => { const i = document.getElementById('new-class'); i.value = '9'; i.dispatchEvent(new Event('change')); })()`);
    await page.click('input[name=mode][value=brush]');
    const a = await viewer<[number, number]>(page, 'v.voxelToClient([40, 40, 56], "axial")');
    const b = await viewer<[number, number]>(page, 'v.voxelToClient([50, 40, 56], "axial")');
    await page.mouse.move(a[0], a[1]);
    await page.mouse.down();
    for (let s = 1; s <= 5; s++) await page.mouse.move(a[0] + ((b[0] - a[0]) * s) / 5, a[1] + ((b[1] - a[1]) * s) / 5);
    await page.mouse.up();
    await page.waitForFunction(`(window.misfmViewer.overlayCounts()[9] ?? 0) > 0 && !window.misfmViewer.busy()`, { timeout: 30_000 });
    await idle(page);
    const afterBrush = await overlayCounts(page);
    // Radius-2 discs along a continuous line of 11 voxels: 11 x 5 plus two caps of 4.
    assert.ok((afterBrush[9] ?? 0) >= 55, `the stroke painted only ${afterBrush[9]} voxels`);
    for (const x of [40, 45, 50]) assert.equal(await viewer<number>(page, `v.nv.volumes[1].img[${x} + 122 * (40 + 101 * 56)]`), 9, `voxel ${x},40,56 painted`);
    await page.click('#undo');
    await page.waitForFunction(`(window.misfmViewer.overlayCounts()[9] ?? 0) === 0 && !window.misfmViewer.busy()`, { timeout: 30_000 });
    assert.deepEqual(await overlayCounts(page), afterClick);
    await page.click('#redo');
    await page.waitForFunction(`(window.misfmViewer.overlayCounts()[9] ?? 0) > 0 && !window.misfmViewer.busy()`, { timeout: 30_000 });
    assert.deepEqual(await overlayCounts(page), afterBrush);

    // Save: the file beside the case equals the overlay voxel for voxel.
    const shown = await overlaySha(page);
    await page.click('#save');
    await page.waitForFunction(`document.getElementById('status').textContent.startsWith('saved ')`, { timeout: 60_000 });
    const saved = await readImage(path.join(data, 'abdomen_ct.seg.nii.gz'));
    const sha = createHash('sha256').update(new Uint8Array(saved.data.buffer, saved.data.byteOffset, saved.data.byteLength)).digest('hex');
    assert.equal(saved.data.BYTES_PER_ELEMENT, 1);
    assert.equal(sha, shown, 'the saved label map differs from the one shown');
    const record = JSON.parse(fs.readFileSync(path.join(data, 'abdomen_ct.seg.json'), 'utf8')) as { clicks: unknown[]; labelSha256: string };
    assert.equal(record.labelSha256, shown);
    assert.equal(record.clicks.length, withVista ? 1 : 0);

    // Reopen in a fresh page: the saved state is shown.
    const page2 = await browser.newPage();
    await page2.goto(srv.openUrl, { waitUntil: 'load' });
    await viewer(page2, 'v.ready');
    await page2.waitForSelector('li.saved[data-case="abdomen_ct.nii.gz"]');
    await page2.click('li[data-case="abdomen_ct.nii.gz"]');
    await page2.waitForFunction('document.body.dataset.session !== undefined', { timeout: 120_000 });
    await idle(page2);
    assert.equal(await overlaySha(page2), shown);
    assert.deepEqual(consoleErrors, []);
  } finally {
    await browser.close();
    await srv.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
});
