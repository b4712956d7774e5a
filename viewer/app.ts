/**
 * The `misfm serve` page: NiiVue views of the open case with its label map as an overlay, and
 * the review tools (automatic segmentation, VISTA3D clicks, brush, eraser, undo/redo, save).
 * Every edit happens on the server (the page sends voxel indices, the server answers with the new
 * state); the page then refreshes the overlay's voxels in place. Bundled by scripts/build-viewer.mjs.
 *
 * Voxel indices: the API speaks (i,j,k) of the image file's own grid. NiiVue works in a
 * RAS-reordered grid, so positions go through millimetres and the NIfTI affine both ways.
 */
import { Niivue, NVImage, SLICE_TYPE } from '@niivue/niivue';
import { colorFor } from '../src/serve/classes.js';

type Vec3 = [number, number, number];
interface ClassEntry { value: number; name: string; color: [number, number, number] }
interface State {
  session: string; case: string; version: number; savedVersion: number; canUndo: boolean; canRedo: boolean;
  counts: Record<string, number>; classes: ClassEntry[]; clicks: number; size?: Vec3; labelType?: 'uint8' | 'uint16';
  changed?: number; windowsComputed?: number; cacheHits?: number; ms?: number;
}
type Mode = 'navigate' | 'click' | 'brush' | 'eraser';

const token = new URLSearchParams(location.search).get('token') ?? '';
const auth = { Authorization: `Bearer ${token}` };
const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

const nv = new Niivue({ backColor: [0.07, 0.07, 0.07, 1], show3Dcrosshair: true, isColorbar: false, dragAndDropEnabled: false });
let st: State | null = null;
let overlayVersion = -1;
let activeClass = 1;
let opacity = 0.5;
let mode: Mode = 'navigate';
let busy = false;
let lastError = '';
let lastClick: { ijk: Vec3; positive: boolean; label: number } | null = null;

function status(text: string, error = false): void {
  const el = $('status');
  el.textContent = text;
  el.className = error ? 'error' : '';
  if (error) lastError = text;
}

async function api<T = State>(method: string, path: string, body?: unknown): Promise<T> {
  const r = await fetch(path, { method, headers: { ...auth, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const j = (await r.json()) as T & { error?: string };
  if (!r.ok) throw new Error(j.error ?? `${r.status}`);
  return j;
}

/** Run one server action with the buttons locked; errors go to the status line. */
async function act(label: string, f: () => Promise<void>): Promise<void> {
  if (busy) { status(`busy: wait for the running ${label === '' ? 'job' : 'action'} to finish`); return; }
  busy = true;
  document.body.dataset['busy'] = '1';
  try { await f(); } catch (e) { status(`${label}: ${(e as Error).message}`, true); } finally {
    busy = false;
    delete document.body.dataset['busy'];
    refreshButtons();
  }
}

// ---- geometry: native voxel <-> NiiVue fractions ----
function affine(): number[][] {
  const a = (nv.volumes[0]!.hdr as unknown as { affine: number[][] }).affine;
  return a;
}
function voxToMM(v: Vec3): Vec3 {
  const a = affine();
  return [0, 1, 2].map((r) => a[r]![0]! * v[0] + a[r]![1]! * v[1] + a[r]![2]! * v[2] + a[r]![3]!) as Vec3;
}
function mmToVox(mm: ArrayLike<number>): Vec3 {
  const a = affine();
  // Solve A v = mm - t for the 3x3 part (Cramer's rule).
  const m = [[a[0]![0]!, a[0]![1]!, a[0]![2]!], [a[1]![0]!, a[1]![1]!, a[1]![2]!], [a[2]![0]!, a[2]![1]!, a[2]![2]!]];
  const b = [mm[0]! - a[0]![3]!, mm[1]! - a[1]![3]!, mm[2]! - a[2]![3]!];
  const det = (x: number[][]): number => x[0]![0]! * (x[1]![1]! * x[2]![2]! - x[1]![2]! * x[2]![1]!) - x[0]![1]! * (x[1]![0]! * x[2]![2]! - x[1]![2]! * x[2]![0]!) + x[0]![2]! * (x[1]![0]! * x[2]![1]! - x[1]![1]! * x[2]![0]!);
  const d = det(m);
  return [0, 1, 2].map((c) => Math.round(det(m.map((row, r) => row.map((v, k) => (k === c ? b[r]! : v)))) / d)) as Vec3;
}
function inside(v: Vec3): boolean {
  const s = st?.size;
  return s !== undefined && v.every((x, i) => x >= 0 && x < s[i]!);
}
/** The native voxel under a pointer event, or null off the slices. */
function voxelAt(e: PointerEvent | MouseEvent): Vec3 | null {
  const rect = nv.canvas!.getBoundingClientRect();
  const dpr = nv.uiData.dpr ?? window.devicePixelRatio;
  const frac = nv.canvasPos2frac([(e.clientX - rect.left) * dpr, (e.clientY - rect.top) * dpr]);
  if (frac[0]! < 0) return null;
  const v = mmToVox(nv.frac2mm(frac));
  return inside(v) ? v : null;
}
/** Page coordinates of a native voxel on the 2D view (tests click there). */
function voxelToClient(v: Vec3, slice: 'axial' | 'coronal' | 'sagittal' = 'axial'): [number, number] | null {
  const mm = voxToMM(v);
  const frac = nv.mm2frac(mm);
  nv.scene.crosshairPos = frac;
  nv.drawScene();
  const t = nv.frac2canvasPosWithTile(frac, slice === 'axial' ? SLICE_TYPE.AXIAL : slice === 'coronal' ? SLICE_TYPE.CORONAL : SLICE_TYPE.SAGITTAL);
  if (t === null) return null;
  const rect = nv.canvas!.getBoundingClientRect();
  const dpr = nv.uiData.dpr ?? window.devicePixelRatio;
  return [rect.left + t.pos[0]! / dpr, rect.top + t.pos[1]! / dpr];
}
/** The native axis most aligned with the normal of the 2D view shown (brush discs lie in that plane). */
function brushShape(): 'ball' | 'x' | 'y' | 'z' {
  const stype = nv.opts.sliceType;
  const normal = stype === SLICE_TYPE.AXIAL ? 2 : stype === SLICE_TYPE.CORONAL ? 1 : stype === SLICE_TYPE.SAGITTAL ? 0 : -1;
  if (normal < 0) return 'ball';
  const a = affine();
  let best = 0, bestV = -1;
  for (let c = 0; c < 3; c++) {
    const col = [a[0]![c]!, a[1]![c]!, a[2]![c]!];
    const v = Math.abs(col[normal]!) / Math.hypot(...col);
    if (v > bestV) { bestV = v; best = c; }
  }
  return (['x', 'y', 'z'] as const)[best]!;
}

// ---- overlay ----
// NiiVue 0.69 draws a label colormap's alpha as all or nothing: its overlay shaders set a label
// voxel's alpha to 1 whenever the LUT's A is above 0 (fragOrientShader: `FragColor.a = step(..)`
// for layers above the background; the atlas shader: `if (clr.a > 0.0) clr.a = 1.0`), and only the
// volume's one `opacity` scales it. Its RGBA path (fragRGBOrientShader with hasAlpha) keeps each
// voxel's own alpha and composites it over the image. So the page keeps the label values itself and
// gives NiiVue an RGBA overlay painted from them: colour = the class colour, alpha = the class's
// opacity (0 when hidden). The overlay slider scales all classes at once (the volume's opacity).

/** Label values of the open case in the image file's voxel order (the server's raw bytes). */
let labels: Uint8Array | Uint16Array | null = null;
/** The overlay NiiVue draws: 4 bytes per label voxel, painted from `labels` by paintOverlay(). */
let colourLayer: NVImage | null = null;
const DT_RGBA32 = 2304;
interface ClassStyle { visible: boolean; opacity: number }
/** Per-class display state by label value; it outlives edits, undo/redo, new results and cases. */
const styles = new Map<number, ClassStyle>();
function styleOf(value: number): ClassStyle {
  let s = styles.get(value);
  if (s === undefined) { s = { visible: true, opacity: 1 }; styles.set(value, s); }
  return s;
}
/** The class table's colour, else the colour the server's table would give that value. */
function colourOf(value: number): [number, number, number] {
  return st?.classes.find((c) => c.value === value)?.color ?? colorFor(value);
}

function overlayCounts(): Record<string, number> {
  const c: Record<string, number> = {};
  if (labels === null) return c;
  for (let i = 0; i < labels.length; i++) { const v = labels[i]!; if (v !== 0) c[v] = (c[v] ?? 0) + 1; }
  return c;
}
/** Repaint the RGBA overlay from the label values and the class styles, and redraw it once it is shown. */
function paintOverlay(): void {
  if (labels === null || colourLayer === null) return;
  let max = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i]! > max) max = labels[i]!;
  const lut = new Uint8Array(4 * (max + 1)); // value 0 stays transparent
  for (let v = 1; v <= max; v++) {
    const s = styleOf(v), col = colourOf(v);
    lut.set([col[0], col[1], col[2], s.visible ? Math.round(255 * s.opacity) : 0], 4 * v);
  }
  const out = colourLayer.img as Uint8Array;
  for (let i = 0, j = 0; i < labels.length; i++, j += 4) {
    const k = 4 * labels[i]!;
    out[j] = lut[k]!; out[j + 1] = lut[k + 1]!; out[j + 2] = lut[k + 2]!; out[j + 3] = lut[k + 3]!;
  }
  colourLayer.opacity = opacity;
  // Only the overlay changed: re-render that layer alone. updateGLVolume() re-renders every layer
  // (measured in headless Chromium with software GL: 910 ms against 60 ms per slider step).
  const layer = nv.volumes.indexOf(colourLayer);
  if (layer < 1) return;
  nv.refreshLayers(colourLayer, layer);
  nv.drawScene();
}
/** Turn the loaded label image into the RGBA overlay, keeping its values in `labels`. */
function adoptLabelImage(vol: NVImage): void {
  labels = vol.img as Uint8Array | Uint16Array;
  vol.img = new Uint8Array(4 * labels.length);
  vol.hdr!.datatypeCode = DT_RGBA32;
  vol.hdr!.numBitsPerVoxel = 32;
  vol.hdr!.intent_code = 0;
  vol.colormapLabel = null;
  colourLayer = vol;
}
async function refreshOverlay(): Promise<void> {
  if (st === null || st.version === overlayVersion) return;
  const r = await fetch(`/api/sessions/${st.session}/labels.raw`, { headers: auth });
  if (!r.ok) throw new Error(`labels: ${r.status}`);
  const buf = await r.arrayBuffer();
  if (labels === null) return;
  const data = labels instanceof Uint16Array ? new Uint16Array(buf) : new Uint8Array(buf);
  if (data.length !== labels.length) throw new Error(`labels: ${data.length} voxels, the view holds ${labels.length}`);
  labels.set(data);
  overlayVersion = Number(r.headers.get('x-misfm-version'));
  paintOverlay();
}

// ---- panels ----
function refreshButtons(): void {
  ($('undo') as HTMLButtonElement).disabled = busy || st === null || !st.canUndo;
  ($('redo') as HTMLButtonElement).disabled = busy || st === null || !st.canRedo;
  ($('save') as HTMLButtonElement).disabled = busy || st === null;
  ($('auto') as HTMLButtonElement).disabled = busy || st === null || ($('model') as HTMLSelectElement).options.length === 0;
}
function renderClasses(): void {
  const body = document.querySelector('#classes tbody')!;
  body.innerHTML = '';
  if (st === null) return;
  const counts = overlayCounts();
  const shown = new Map(st.classes.map((c) => [c.value, c]));
  for (const v of [activeClass, ...Object.keys(counts).map(Number)]) if (!shown.has(v)) shown.set(v, { value: v, name: `label ${v}`, color: colourOf(v) });
  for (const c of [...shown.values()].sort((a, b) => a.value - b.value)) {
    const tr = document.createElement('tr');
    tr.dataset['value'] = String(c.value);
    if (c.value === activeClass) tr.className = 'active';
    const style = styleOf(c.value);
    const vis = document.createElement('input');
    vis.type = 'checkbox';
    vis.className = 'visible';
    vis.checked = style.visible;
    vis.title = 'show this class';
    vis.addEventListener('click', (e) => { e.stopPropagation(); style.visible = vis.checked; paintOverlay(); });
    const alpha = document.createElement('input');
    alpha.type = 'range';
    alpha.className = 'class-opacity';
    Object.assign(alpha, { min: '0', max: '1', step: '0.05', value: String(style.opacity), title: 'opacity of this class' });
    alpha.addEventListener('click', (e) => e.stopPropagation());
    alpha.addEventListener('input', () => { style.opacity = Number(alpha.value); paintOverlay(); });
    const cells = [vis, Object.assign(document.createElement('span'), { className: 'swatch' }), String(c.value), c.name, alpha, String(counts[c.value] ?? 0)];
    (cells[1] as HTMLElement).style.background = `rgb(${c.color.join(',')})`;
    for (const x of cells) { const td = document.createElement('td'); if (typeof x === 'string') td.textContent = x; else td.append(x); tr.append(td); }
    tr.lastElementChild!.className = 'count';
    tr.addEventListener('click', () => { activeClass = c.value; ($('new-class') as HTMLInputElement).value = String(c.value); renderClasses(); });
    body.append(tr);
  }
}
async function setState(s: State): Promise<void> {
  st = { ...st, ...s } as State;
  await refreshOverlay();
  renderClasses();
  refreshButtons();
}

async function loadCases(): Promise<void> {
  const { cases } = await api<{ cases: { id: string; saved: boolean }[] }>('GET', '/api/cases');
  const ul = $('cases');
  ul.innerHTML = '';
  for (const c of cases) {
    const li = document.createElement('li');
    li.textContent = c.id;
    li.dataset['case'] = c.id;
    if (c.saved) li.classList.add('saved');
    if (st?.case === c.id) li.classList.add('active');
    li.addEventListener('click', () => void act('open', () => openCase(c.id)));
    ul.append(li);
  }
}
async function loadModels(): Promise<void> {
  const { models } = await api<{ models: { id: string; kind: string; name: string }[] }>('GET', '/api/models');
  const sel = $('model') as HTMLSelectElement;
  sel.innerHTML = '';
  for (const m of models) sel.append(new Option(`${m.kind === 'vista3d' ? 'VISTA3D' : 'model'} ${m.id}: ${m.name}`, m.id));
}

async function openCase(id: string): Promise<void> {
  status(`opening ${id}`);
  if (st !== null) await api('DELETE', `/api/sessions/${st.session}`).catch(() => undefined);
  const s = await api('POST', '/api/sessions', { case: id });
  st = s;
  overlayVersion = -1;
  labels = null;
  colourLayer = null;
  await nv.loadVolumes([{ url: `/api/sessions/${s.session}/image.nii.gz`, headers: auth, name: 'image.nii.gz' }]);
  const lab = await NVImage.loadFromUrl({ url: `/api/sessions/${s.session}/labels.nii.gz`, headers: auth, name: 'labels.nii.gz' });
  adoptLabelImage(lab);
  overlayVersion = s.version;
  applyPreset(400, 40);
  paintOverlay();
  nv.addVolume(lab);
  await loadCases();
  renderClasses();
  status(`${id}: ${s.size!.join('x')} voxels${s.version === 0 && (s as unknown as { savedFrom: string | null }).savedFrom !== null ? ', saved segmentation loaded' : ''}`);
  document.body.dataset['session'] = s.session;
}

function applyPreset(w: number, l: number): void {
  const v = nv.volumes[0];
  if (v === undefined) return;
  v.cal_min = l - w / 2;
  v.cal_max = l + w / 2;
  nv.updateGLVolume();
}

// ---- edits ----
async function sendClick(ijk: Vec3, positive: boolean): Promise<void> {
  if (st === null) return;
  const label = activeClass;
  lastClick = { ijk, positive, label };
  const t0 = performance.now();
  status(`${positive ? 'positive' : 'negative'} click at ${ijk.join(',')} for class ${label}`);
  const r = await api('POST', `/api/sessions/${st.session}/clicks`, { points: [{ label, positive, ijk }] });
  await setState(r);
  status(`click: ${r.changed} voxels changed, ${r.windowsComputed} window(s) computed, ${r.cacheHits} cached; ${Math.round(performance.now() - t0)} ms to the updated overlay`);
  document.body.dataset['lastClickMs'] = String(Math.round(performance.now() - t0));
}
async function sendStroke(points: Vec3[], erase: boolean): Promise<void> {
  if (st === null || points.length === 0) return;
  const radius = Number(($('radius') as HTMLInputElement).value);
  const r = await api('POST', `/api/sessions/${st.session}/brush`, { label: activeClass, erase, radius, shape: brushShape(), points });
  await setState(r);
  status(`${erase ? 'eraser' : 'brush'}: ${r.changed} voxels changed`);
}

let stroke: Vec3[] | null = null;
function onPointerDown(e: PointerEvent): void {
  if (mode === 'navigate' || st === null) return;
  const v = voxelAt(e);
  e.stopPropagation();
  e.preventDefault();
  if (v === null) return;
  if (mode === 'click') {
    void act('click', () => sendClick(v, !(e.shiftKey || e.button === 2)));
  } else {
    stroke = [v];
  }
}
function onPointerMove(e: PointerEvent): void {
  if (stroke === null) return;
  e.stopPropagation();
  const v = voxelAt(e);
  const last = stroke[stroke.length - 1]!;
  if (v === null || v.every((x, i) => x === last[i])) return;
  // Fill the gap between pointer samples so a fast drag still paints a continuous stroke.
  const n = Math.max(...v.map((x, i) => Math.abs(x - last[i]!)));
  for (let s = 1; s <= n; s++) stroke.push(v.map((x, i) => Math.round(last[i]! + ((x - last[i]!) * s) / n)) as Vec3);
}
function onPointerUp(e: PointerEvent): void {
  if (stroke === null) return;
  e.stopPropagation();
  const pts = stroke;
  stroke = null;
  void act(mode, () => sendStroke(pts, mode === 'eraser'));
}

// ---- wiring ----
function wire(): void {
  const stage = $('stage');
  for (const [t, f] of [['pointerdown', onPointerDown], ['pointermove', onPointerMove], ['pointerup', onPointerUp]] as const) {
    stage.addEventListener(t, f as (e: Event) => void, { capture: true });
  }
  // NiiVue listens to mouse events on the canvas: keep them from it while a tool is active.
  for (const t of ['mousedown', 'mousemove', 'mouseup']) stage.addEventListener(t, (e) => { if (mode !== 'navigate') e.stopPropagation(); }, { capture: true });
  stage.addEventListener('contextmenu', (e) => { if (mode !== 'navigate') { e.preventDefault(); e.stopPropagation(); } }, { capture: true });
  document.querySelectorAll<HTMLInputElement>('input[name=mode]').forEach((r) => r.addEventListener('change', () => { mode = r.value as Mode; }));
  $('undo').addEventListener('click', () => void act('undo', async () => { await setState(await api('POST', `/api/sessions/${st!.session}/undo`)); status('undone'); }));
  $('redo').addEventListener('click', () => void act('redo', async () => { await setState(await api('POST', `/api/sessions/${st!.session}/redo`)); status('redone'); }));
  $('save').addEventListener('click', () => void act('save', async () => {
    const r = await api<State & { labels: string; record: string }>('POST', `/api/sessions/${st!.session}/save`);
    await setState(r);
    await loadCases();
    status(`saved ${r.labels} and ${r.record}`);
  }));
  $('auto').addEventListener('click', () => void act('automatic segmentation', async () => {
    const model = ($('model') as HTMLSelectElement).value;
    const text = ($('vista-classes') as HTMLInputElement).value.trim();
    const classes = text === '' ? 'everything' : text.split(',').map((s) => s.trim()).map((s) => (/^\d+$/.test(s) ? Number(s) : s));
    status(`automatic segmentation with ${model} (queued)`);
    const t0 = performance.now();
    const r = await api('POST', `/api/sessions/${st!.session}/auto`, model === 'vista3d' ? { model, classes } : { model });
    await setState(r);
    status(`automatic segmentation: ${r.changed} voxels changed in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }));
  $('views').addEventListener('click', (e) => {
    const v = (e.target as HTMLElement).dataset['view'];
    const map: Record<string, SLICE_TYPE> = { mpr: SLICE_TYPE.MULTIPLANAR, axial: SLICE_TYPE.AXIAL, coronal: SLICE_TYPE.CORONAL, sagittal: SLICE_TYPE.SAGITTAL, render: SLICE_TYPE.RENDER };
    if (v !== undefined && map[v] !== undefined) nv.setSliceType(map[v]);
  });
  $('presets').addEventListener('click', (e) => {
    const d = (e.target as HTMLElement).dataset;
    if (d['w'] !== undefined) applyPreset(Number(d['w']), Number(d['l']));
  });
  $('opacity').addEventListener('input', () => { opacity = Number(($('opacity') as HTMLInputElement).value); paintOverlay(); });
  $('new-class').addEventListener('change', () => { activeClass = Math.max(1, Math.round(Number(($('new-class') as HTMLInputElement).value))); renderClasses(); });
  // Progress of engine jobs for this session, pushed by the server.
  const es = new EventSource(`/api/events?token=${encodeURIComponent(token)}`);
  es.addEventListener('job', (m) => {
    const e = JSON.parse((m as MessageEvent<string>).data) as { session: string | null; kind: string; state: string; done: number; total: number; position: number };
    if (st === null || e.session !== st.session) return;
    const bar = $('bar');
    if (e.state === 'queued') status(`${e.kind}: queued behind ${e.position} job(s)`);
    if (e.state === 'running') { bar.style.width = e.total > 0 ? `${(100 * e.done) / e.total}%` : '5%'; if (e.total > 0) status(`${e.kind}: ${e.done}/${e.total} windows`); }
    if (e.state === 'done' || e.state === 'failed') bar.style.width = '0';
  });
}

async function main(): Promise<void> {
  await nv.attachToCanvas($('gl') as HTMLCanvasElement);
  nv.setSliceType(SLICE_TYPE.MULTIPLANAR);
  wire();
  await loadModels();
  await loadCases();
  refreshButtons();
  status(token === '' ? 'no token in the URL: open the URL misfm serve printed' : 'choose a case');
}

const ready = main().catch((e: unknown) => status(`start: ${(e as Error).message}`, true));

/** For scripted checks (the browser test) and the console. */
(window as unknown as Record<string, unknown>)['misfmViewer'] = {
  ready, nv, overlayCounts, voxelToClient, labels: () => labels, openCase: (id: string) => act('open', () => openCase(id)),
  state: () => st, lastError: () => lastError, lastClick: () => lastClick, busy: () => busy,
};
