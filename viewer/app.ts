/**
 * The `misfm serve` page: NiiVue views of the open case with its label map as an overlay, and
 * the review tools (automatic segmentation, VISTA3D clicks, brush, eraser, undo/redo, save).
 * Every edit happens on the server (the page sends voxel indices, the server answers with the new
 * state); the page then refreshes the overlay's voxels in place. Bundled by scripts/build-viewer.mjs.
 *
 * Voxel indices: the API speaks (i,j,k) of the image file's own grid. NiiVue works in a
 * RAS-reordered grid, so positions go through millimetres and the NIfTI affine both ways.
 */
import { Niivue, SLICE_TYPE } from '@niivue/niivue';

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
const hidden = new Set<number>();
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
function overlay(): { img: Uint8Array | Uint16Array } | null {
  return (nv.volumes[1] as unknown as { img: Uint8Array | Uint16Array } | undefined) ?? null;
}
function overlayCounts(): Record<string, number> {
  const o = overlay();
  const c: Record<string, number> = {};
  if (o === null) return c;
  for (let i = 0; i < o.img.length; i++) { const v = o.img[i]!; if (v !== 0) c[v] = (c[v] ?? 0) + 1; }
  return c;
}
function applyColormap(): void {
  const vol = nv.volumes[1];
  if (vol === undefined || st === null) return;
  const max = Math.max(1, ...st.classes.map((c) => c.value), ...Object.keys(st.counts).map(Number));
  const R: number[] = [], G: number[] = [], B: number[] = [], A: number[] = [], I: number[] = [], labels: string[] = [];
  const byValue = new Map(st.classes.map((c) => [c.value, c]));
  // NiiVue lifts any value above the LUT minimum to at least 2/256 of the LUT (its shader's
  // "round up to opaque" rule), which for tables longer than ~64 entries samples background 0
  // halfway into class 1 (a tinted wash over the whole image). Transparent entries below 0 keep
  // 0 at its own texel.
  const pad = Math.ceil((max + 1) / 128) + 1;
  for (let v = -pad; v <= max; v++) {
    const c = byValue.get(v);
    const col = c?.color ?? [255, 255, 255];
    R.push(col[0]); G.push(col[1]); B.push(col[2]); A.push(v <= 0 || hidden.has(v) ? 0 : 255); I.push(v);
    labels.push(c?.name ?? (v === 0 ? 'background' : `label ${v}`));
  }
  vol.setColormapLabel({ R, G, B, A, I, labels });
  nv.setOpacity(1, opacity);
  nv.updateGLVolume();
}
async function refreshOverlay(): Promise<void> {
  if (st === null || st.version === overlayVersion) return;
  const r = await fetch(`/api/sessions/${st.session}/labels.raw`, { headers: auth });
  if (!r.ok) throw new Error(`labels: ${r.status}`);
  const buf = await r.arrayBuffer();
  const o = overlay();
  if (o === null) return;
  const data = o.img instanceof Uint16Array ? new Uint16Array(buf) : new Uint8Array(buf);
  if (data.length !== o.img.length) throw new Error(`labels: ${data.length} voxels, the view holds ${o.img.length}`);
  o.img.set(data);
  overlayVersion = Number(r.headers.get('x-misfm-version'));
  applyColormap();
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
  if (!shown.has(activeClass)) shown.set(activeClass, { value: activeClass, name: `label ${activeClass}`, color: [255, 255, 255] });
  for (const c of [...shown.values()].sort((a, b) => a.value - b.value)) {
    const tr = document.createElement('tr');
    tr.dataset['value'] = String(c.value);
    if (c.value === activeClass) tr.className = 'active';
    const vis = document.createElement('input');
    vis.type = 'checkbox';
    vis.checked = !hidden.has(c.value);
    vis.addEventListener('click', (e) => { e.stopPropagation(); if (vis.checked) hidden.delete(c.value); else hidden.add(c.value); applyColormap(); });
    const cells = [vis, Object.assign(document.createElement('span'), { className: 'swatch' }), String(c.value), c.name, String(counts[c.value] ?? 0)];
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
  await nv.loadVolumes([
    { url: `/api/sessions/${s.session}/image.nii.gz`, headers: auth, name: 'image.nii.gz' },
    { url: `/api/sessions/${s.session}/labels.nii.gz`, headers: auth, name: 'labels.nii.gz' },
  ]);
  overlayVersion = s.version;
  applyPreset(400, 40);
  applyColormap();
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
  $('opacity').addEventListener('input', () => { opacity = Number(($('opacity') as HTMLInputElement).value); applyColormap(); });
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
  ready, nv, overlayCounts, voxelToClient, openCase: (id: string) => act('open', () => openCase(id)),
  state: () => st, lastError: () => lastError, lastClick: () => lastClick, busy: () => busy,
};
