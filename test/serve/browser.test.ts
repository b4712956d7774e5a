/**
 * End to end in a real browser: Debian's headless Chromium (software WebGL) driven by
 * puppeteer-core opens the page `misfm serve` prints, loads the bundled CT sample, runs automatic
 * segmentation, clicks a positive point on a missed region (VISTA3D), paints with the brush,
 * undoes, redoes and saves, and checks that the saved file holds exactly the voxels the page
 * shows, also after reopening. Per-class visibility and opacity are checked in the drawn canvas
 * pixels (hidden, half and full opacity; kept across undo/redo). Needs `chromium`
 * (scripts/setup.sh --with-browser) and the built viewer; a screenshot after the click is
 * written to dist/test-artifacts/.
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
import { colorFor } from '../../src/serve/classes.js';
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
const overlaySha = (page: Page): Promise<string> => viewer<string>(page, `crypto.subtle.digest('SHA-256', v.labels()).then((b) => Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, '0')).join(''))`);
/**
 * The colour drawn at a voxel's centre on the axial view, read back from the WebGL canvas in the
 * same task as the draw (the page does not preserve its drawing buffer).
 */
const pixelAt = (page: Page, ijk: number[]): Promise<number[]> => viewer<number[]>(page, `(() => {
  const xy = v.voxelToClient(${JSON.stringify(ijk)}, 'axial'), c = v.nv.canvas, r = c.getBoundingClientRect(), dpr = v.nv.uiData.dpr ?? 1;
  const x = Math.floor((xy[0] - r.left) * dpr), y = Math.floor((xy[1] - r.top) * dpr);
  v.nv.drawScene();
  const gl = v.nv.gl, b = new Uint8Array(4);
  gl.readPixels(x, c.height - 1 - y, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, b);
  return [b[0], b[1], b[2]]; })()`);
/** Set a range input's value as a user drag does (an input event). */
const slide = (page: Page, selector: string, value: number): Promise<unknown> =>
  page.evaluate(`(() => { const s = document.querySelector(${JSON.stringify(selector)}); s.value = '${value}'; s.dispatchEvent(new Event('input')); })()`);
function near(actual: number[], expected: number[], tol: number, what: string): void {
  assert.ok(actual.every((a, i) => Math.abs(a - expected[i]!) <= tol), `${what}: drawn ${actual}, expected ${expected} (±${tol})`);
}

async function clickAt(page: Page, ijk: number[], opts: { shift?: boolean } = {}): Promise<void> {
  const xy = await viewer<[number, number] | null>(page, `v.voxelToClient(${JSON.stringify(ijk)}, 'axial')`);
  assert.ok(xy !== null, `voxel ${ijk} is not on the axial view`);
  if (opts.shift) await page.keyboard.down('Shift');
  await page.mouse.click(xy[0], xy[1]);
  if (opts.shift) await page.keyboard.up('Shift');
}

const ready = fs.existsSync(CHROMIUM) && fs.existsSync(VIEWER);
test('browser: open, automatic segmentation, click, brush, per-class visibility and opacity, undo, redo, save; the saved file equals the view', {
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
    defaultViewport: { width: 1400, height: 900 }, timeout: 120_000,
  });
  try {
    // Puppeteer's 30 s defaults (navigation, selectors) are too short on a loaded 2-core machine.
    const page = await browser.newPage();
    page.setDefaultTimeout(120_000);
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
      const target = await viewer<number[]>(page, `(() => { const img = v.labels(); const [X, Y] = [122, 101];
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
    for (const x of [40, 45, 50]) assert.equal(await viewer<number>(page, `v.labels()[${x} + 122 * (40 + 101 * 56)]`), 9, `voxel ${x},40,56 painted`);
    await page.click('#undo');
    await page.waitForFunction(`(window.misfmViewer.overlayCounts()[9] ?? 0) === 0 && !window.misfmViewer.busy()`, { timeout: 30_000 });
    assert.deepEqual(await overlayCounts(page), afterClick);
    await page.click('#redo');
    await page.waitForFunction(`(window.misfmViewer.overlayCounts()[9] ?? 0) > 0 && !window.misfmViewer.busy()`, { timeout: 30_000 });
    assert.deepEqual(await overlayCounts(page), afterBrush);

    // Per-class visibility and opacity, checked in the rendered pixels. A second stroke (class 4)
    // gives a second class at a known place; all overlay opacity 1 so the class opacity is the alpha.
    const t0 = Date.now();
    await page.evaluate(`(() => { const i = document.getElementById('new-class'); i.value = '4'; i.dispatchEvent(new Event('change')); })()`);
    const c = await viewer<[number, number]>(page, 'v.voxelToClient([40, 60, 56], "axial")');
    const d = await viewer<[number, number]>(page, 'v.voxelToClient([50, 60, 56], "axial")');
    await page.mouse.move(c[0], c[1]);
    await page.mouse.down();
    await page.mouse.move(d[0], d[1], { steps: 5 });
    await page.mouse.up();
    await page.waitForFunction(`(window.misfmViewer.overlayCounts()[4] ?? 0) > 0 && !window.misfmViewer.busy()`, { timeout: 30_000 });
    await idle(page);
    const p9 = [45, 40, 56], p4 = [45, 60, 56];
    assert.equal(await viewer<number>(page, `v.labels()[45 + 122 * (60 + 101 * 56)]`), 4);
    await page.evaluate('window.misfmViewer.nv.setCrosshairWidth(0)');
    await slide(page, '#opacity', 1);
    const row = (value: number): string => `#classes tr[data-value="${value}"]`;
    near(await pixelAt(page, p9), colorFor(9), 2, 'class 9 at opacity 1');
    near(await pixelAt(page, p4), colorFor(4), 2, 'class 4 at opacity 1');
    await page.click(`${row(9)} input.visible`);
    const under = await pixelAt(page, p9);
    assert.ok(Math.max(...under) - Math.min(...under) <= 2, `hidden class 9: the image's grey shows, drawn ${under}`);
    assert.ok(under.some((x, i) => Math.abs(x - colorFor(9)[i]!) > 40), `hidden class 9 still drawn in its colour (${under})`);
    near(await pixelAt(page, p4), colorFor(4), 2, 'class 4 while class 9 is hidden');
    await page.click(`${row(9)} input.visible`);
    await slide(page, `${row(9)} input.class-opacity`, 0.5);
    const half = colorFor(9).map((x, i) => (x + under[i]!) / 2);
    near(await pixelAt(page, p9), half, 3, 'class 9 at opacity 0.5 (half its colour, half the image)');
    near(await pixelAt(page, p4), colorFor(4), 2, 'class 4 while class 9 is at 0.5');
    // The display state is the page's, not the label map's: it survives undo, redo and new results.
    await page.click(`${row(9)} input.visible`);
    await page.click('#undo');
    await page.waitForFunction(`(window.misfmViewer.overlayCounts()[4] ?? 0) === 0 && !window.misfmViewer.busy()`, { timeout: 30_000 });
    near(await pixelAt(page, p9), under, 2, 'class 9 stays hidden after undo');
    await page.click('#redo');
    await page.waitForFunction(`(window.misfmViewer.overlayCounts()[4] ?? 0) > 0 && !window.misfmViewer.busy()`, { timeout: 30_000 });
    await idle(page);
    near(await pixelAt(page, p9), under, 2, 'class 9 stays hidden after redo');
    near(await pixelAt(page, p4), colorFor(4), 2, 'class 4 back after redo');
    assert.equal(await viewer<boolean>(page, `document.querySelector('${row(9)} input.visible').checked`), false, 'the row still shows class 9 hidden');
    assert.equal(await viewer<string>(page, `document.querySelector('${row(9)} input.class-opacity').value`), '0.5', 'the row keeps class 9 at 0.5');
    // Window/level presets, seen through the hidden class: the grey follows the preset's linear
    // window of the CT values around the voxel (the image is drawn with linear interpolation).
    const ct = await readImage(path.join(data, 'abdomen_ct.nii.gz'));
    const hu = [-1, 0, 1].flatMap((dj) => [-1, 0, 1].map((di) => Number(ct.data[45 + di + 122 * (40 + dj + 101 * 56)])));
    const grey = (w: number, l: number, v: number): number => 255 * Math.min(1, Math.max(0, (v - (l - w / 2)) / w));
    for (const [name, w, l] of [['Lung', 1500, -600], ['Bone', 1800, 400], ['Abdomen', 400, 40]] as const) {
      await page.click(`#presets button[data-w="${w}"]`);
      const g = (await pixelAt(page, p9))[0]!;
      const lo = grey(w, l, Math.min(...hu)) - 3, hi = grey(w, l, Math.max(...hu)) + 3;
      assert.ok(g >= lo && g <= hi, `${name} preset: grey ${g}, expected ${lo.toFixed(0)}..${hi.toFixed(0)} from the CT values ${hu} around the voxel`);
    }
    t.diagnostic(`per-class visibility/opacity and preset checks: ${Date.now() - t0} ms`);
    await page.click(`${row(9)} input.visible`);
    await page.evaluate('window.misfmViewer.nv.setCrosshairWidth(1)');

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
    page2.setDefaultTimeout(120_000);
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
