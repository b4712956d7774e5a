/**
 * `misfm serve` API: token and origin checks, confinement to the served folders, body limits,
 * concurrent sessions through the one engine queue, a client leaving during a job, edits with
 * undo/redo, clicks (through the VISTA3D test double), save and reopen.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startServer, type RunningServer } from '../../src/serve/server.js';
import { loadModelForInference } from '../../src/infer/model.js';
import { predictCase } from '../../src/infer/predict.js';
import { readImage } from '../../src/io/image/index.js';
import { dataDir } from '../helpers.js';
import { client, collectEvents, makeDataFolder, raw, vista3dDouble, type DataFolder } from './helpers.js';

let df: DataFolder;
let srv: RunningServer;
let api: ReturnType<typeof client>;

before(async () => {
  df = await makeDataFolder('serve-api');
  process.env['MISFM_TEST_VISTA3D_DELAY_FILE'] = path.join(df.root, 'delay-ms');
  process.env['MISFM_TEST_VISTA3D_OPTIONS_FILE'] = path.join(df.root, 'vista-options.json');
  srv = await startServer({
    dataDir: df.data, port: 0, threads: 1, bodyLimit: 8192, vista3dModule: vista3dDouble, reuseWindows: 6,
    models: [{ id: 'm0', kind: 'predict', checkpoint: df.ckpt }, { id: 'vista3d', kind: 'vista3d', checkpoint: path.join(df.root, 'vista.pt') }],
  });
  api = client(srv.url, srv.token);
});
after(async () => {
  await srv.close();
  fs.rmSync(df.root, { recursive: true, force: true });
});

async function open(caseId: string): Promise<Record<string, unknown>> {
  const r = await api.post('/api/sessions', { case: caseId });
  assert.equal(r.status, 200, r.body.toString());
  return r.json();
}

async function labelsOf(sid: string): Promise<Uint8Array> {
  const r = await api.get(`/api/sessions/${sid}/labels.raw`);
  assert.equal(r.status, 200);
  assert.equal(r.headers['x-misfm-label-type'], 'uint8');
  return new Uint8Array(r.body);
}

test('the token is required on every API call and checked; other origins and hosts are refused', async () => {
  const missing = await raw(`${srv.url}/api/cases`);
  assert.equal(missing.status, 401);
  assert.match(String(missing.json()['error']), /missing token/);
  const wrong = await raw(`${srv.url}/api/cases`, { headers: { authorization: `Bearer ${'0'.repeat(srv.token.length)}` } });
  assert.equal(wrong.status, 403);
  assert.match(String(wrong.json()['error']), /wrong token/);
  const short = await raw(`${srv.url}/api/cases?token=abc`);
  assert.equal(short.status, 403);
  assert.equal((await raw(`${srv.url}/api/cases?token=${srv.token}`)).status, 200);
  assert.equal((await raw(`${srv.url}/api/cases`, { headers: { 'x-misfm-token': srv.token } })).status, 200);
  // Replay of a valid token from another web page: refused by Origin, by Sec-Fetch-Site, and by Host (DNS rebinding).
  const auth = { authorization: `Bearer ${srv.token}` };
  const evil = await raw(`${srv.url}/api/cases`, { headers: { ...auth, origin: 'http://evil.example' } });
  assert.equal(evil.status, 403);
  assert.match(String(evil.json()['error']), /origin 'http:\/\/evil\.example' are refused/);
  const otherPort = await raw(`${srv.url}/api/cases`, { headers: { ...auth, origin: `http://127.0.0.1:${srv.port + 1}` } });
  assert.equal(otherPort.status, 403);
  assert.equal((await raw(`${srv.url}/api/cases`, { headers: { ...auth, 'sec-fetch-site': 'cross-site' } })).status, 403);
  const rebound = await raw(`${srv.url}/api/cases`, { headers: { ...auth, host: `evil.example:${srv.port}` } });
  assert.equal(rebound.status, 403);
  assert.match(String(rebound.json()['error']), /unexpected Host/);
  const same = await raw(`${srv.url}/api/cases`, { headers: { ...auth, origin: srv.url } });
  assert.equal(same.status, 200);
  // The event stream needs it too.
  assert.equal((await raw(`${srv.url}/api/events`)).status, 401);
  assert.equal(srv.url.startsWith('http://127.0.0.1:'), true, 'binds loopback by default');
});

test('cases are listed from the data folder only; traversal, absolute paths and symlink escapes are refused', async () => {
  const cases = (await api.get('/api/cases')).json()['cases'] as { id: string; kind: string }[];
  assert.deepEqual(cases.map((c) => c.id), ['a.nii.gz', 'sub/b.nrrd']);
  for (const bad of ['../outside/secret.nii.gz', 'sub/../../outside/secret.nii.gz', '/etc/passwd', path.join(df.outside, 'secret.nii.gz'), 'escape.nii.gz', 'linkdir/secret.nii.gz', 'a.nii.gz\0x']) {
    const r = await api.post('/api/sessions', { case: bad });
    assert.equal(r.status, 403, `${bad}: ${r.body.toString()}`);
    assert.match(String(r.json()['error']), /outside the served folder|leaves the served folder|absolute path|forbidden character/);
  }
  assert.equal((await api.post('/api/sessions', { case: 'nope.nii.gz' })).status, 404);
  const file = await api.get('/api/files/data/a.nii.gz');
  assert.equal(file.status, 200);
  assert.deepEqual(file.body, fs.readFileSync(path.join(df.data, 'a.nii.gz')));
  assert.equal((await api.get('/api/files/data/sub%2Fb.nrrd')).status, 200);
  assert.equal((await api.get('/api/files/data/%252e%252e%252foutside%252fsecret.nii.gz')).status, 404, 'decoded once only: a literal %2e%2e name, not found');
  for (const bad of ['..%2Foutside%2Fsecret.nii.gz', 'escape.nii.gz', 'linkdir/secret.nii.gz', '%2Fetc%2Fpasswd', 'sub%2F..%2F..%2Foutside%2Fsecret.nii.gz']) {
    const r = await api.get(`/api/files/data/${bad}`);
    assert.equal(r.status, 403, `${bad}: ${r.body.toString()}`);
  }
  // URL-level dot segments are normalised away by the client; the server never sees them outside the root.
  const dotted = await raw(`${srv.url}/api/files/data/../../../etc/passwd`, { headers: { authorization: `Bearer ${srv.token}` } });
  assert.notEqual(dotted.status, 200);
  assert.equal((await api.get('/api/files/elsewhere/a.nii.gz')).status, 404);
});

test('oversized, malformed and ill-formed bodies are rejected with clear errors', async () => {
  const s = await open('a.nii.gz');
  const sid = String(s['session']);
  const big = await api.post(`/api/sessions/${sid}/brush`, { label: 1, radius: 1, points: Array.from({ length: 2000 }, () => [1, 1, 1]) });
  assert.equal(big.status, 413);
  assert.match(String(big.json()['error']), /request body too large \(limit 8192 bytes\)/);
  const malformed = await raw(`${srv.url}/api/sessions/${sid}/clicks`, { method: 'POST', headers: { authorization: `Bearer ${srv.token}`, 'content-type': 'application/json' }, body: '{"points": [' });
  assert.equal(malformed.status, 400);
  assert.match(String(malformed.json()['error']), /malformed JSON body/);
  const schema = await api.post(`/api/sessions/${sid}/clicks`, { points: 'here' });
  assert.equal(schema.status, 400);
  assert.match(String(schema.json()['error']), /invalid request: body\/points must be array/);
  const extra = await api.post(`/api/sessions/${sid}/clicks`, { points: [{ label: 1, positive: true, ijk: [1, 2, 3], evil: 1 }] });
  assert.equal(extra.status, 400);
  assert.match(String(extra.json()['error']), /must NOT have additional properties/);
  const outside = await api.post(`/api/sessions/${sid}/clicks`, { points: [{ label: 1, positive: true, ijk: [24, 0, 0] }] });
  assert.equal(outside.status, 400);
  assert.match(String(outside.json()['error']), /points\[0\]: voxel index \[24,0,0\] must be three integers inside the image \(24x20x12\)/);
  const model = await api.post(`/api/sessions/${sid}/auto`, { model: 'nope' });
  assert.equal(model.status, 400);
  assert.match(String(model.json()['error']), /unknown model 'nope'; the server offers m0, vista3d/);
  const plain = await raw(`${srv.url}/api/sessions/${sid}/clicks`, { method: 'POST', headers: { authorization: `Bearer ${srv.token}`, 'content-type': 'text/plain' }, body: 'hello' });
  assert.equal(plain.status, 400);
  assert.match(String(plain.json()['error']), /invalid request: body must be object/);
  assert.equal((await api.get('/api/health')).json()['ok'], true);
});

test('two sessions on two cases: automatic segmentation runs one job at a time and matches predict', async () => {
  const ev = collectEvents(`${srv.url}/api/events?token=${srv.token}`);
  await ev.ready;
  try {
    const a = await open('a.nii.gz'), b = await open('sub/b.nrrd');
    const [ra, rb] = await Promise.all([
      api.post(`/api/sessions/${String(a['session'])}/auto`, { model: 'm0' }),
      api.post(`/api/sessions/${String(b['session'])}/auto`, { model: 'm0' }),
    ]);
    assert.equal(ra.status, 200, ra.body.toString());
    assert.equal(rb.status, 200, rb.body.toString());
    // Same labels as `misfm predict` with the same model.
    const bundle = await loadModelForInference(df.ckpt);
    try {
      for (const [s, file] of [[a, 'a.nii.gz'], [b, 'sub/b.nrrd']] as const) {
        const out = path.join(df.root, `expect-${path.basename(file).replace(/\./g, '_')}.nii.gz`);
        await predictCase(bundle, path.join(df.data, file), out, { sidecar: false });
        const expected = (await readImage(out)).data;
        const got = await labelsOf(String(s['session']));
        assert.deepEqual(Array.from(got), Array.from(expected), `${file}: served labels differ from predict`);
      }
    } finally {
      bundle.model.dispose();
    }
    await new Promise((r) => setTimeout(r, 100));
    const jobs = new Map<number, Record<string, unknown>>();
    for (const e of ev.events) if (e['state'] === 'done') jobs.set(Number(e['job']), e);
    const runs = [...jobs.values()].filter((e) => e['kind'] === 'auto').map((e) => [Number(e['startedAt']), Number(e['endedAt'])] as const).sort((x, y) => x[0] - y[0]);
    assert.equal(runs.length, 2, JSON.stringify(ev.events));
    assert.ok(runs[1]![0] >= runs[0]![1], `jobs overlapped: ${JSON.stringify(runs)}`);
    assert.ok(ev.events.some((e) => e['state'] === 'queued' && Number(e['position']) === 1), 'the second job waited in the queue');
    assert.ok(ev.events.some((e) => e['state'] === 'running' && Number(e['total']) > 0), 'progress was pushed');
  } finally {
    ev.stop();
  }
});

test('a client that disconnects during a job leaves the server healthy and the result applied', async () => {
  const s = await open('a.nii.gz');
  const sid = String(s['session']);
  // Warm the VISTA3D session, then make the next call slow (the double reads the variable per call).
  assert.equal((await api.post(`/api/sessions/${sid}/clicks`, { points: [{ label: 3, positive: true, ijk: [2, 2, 2] }] })).status, 200);
  const v0 = Number((await api.get(`/api/sessions/${sid}`)).json()['version']);
  fs.writeFileSync(path.join(df.root, 'delay-ms'), '1000');
  const ac = new AbortController();
  const pending = api.post(`/api/sessions/${sid}/clicks`, { points: [{ label: 3, positive: true, ijk: [18, 10, 6] }] }, ac.signal);
  await new Promise((r) => setTimeout(r, 150));
  ac.abort();
  await assert.rejects(pending);
  const h = (await api.get('/api/health')).json();
  assert.equal(h['ok'], true);
  assert.equal((h['engine'] as Record<string, unknown>)['busy'], true, 'the job is still running after the client left');
  fs.writeFileSync(path.join(df.root, 'delay-ms'), '0');
  for (let i = 0; i < 100 && Number((await api.get(`/api/sessions/${sid}`)).json()['version']) === v0; i++) await new Promise((r) => setTimeout(r, 50));
  const after1 = (await api.get(`/api/sessions/${sid}`)).json();
  assert.equal(after1['version'], v0 + 1, 'the job finished and its result was applied');
  const lab = await labelsOf(sid);
  assert.equal(lab[18 + 24 * (10 + 20 * 6)], 3);
  const next = await api.post(`/api/sessions/${sid}/brush`, { label: 1, radius: 0, points: [[0, 0, 0]] });
  assert.equal(next.status, 200);
});

test('clicks, brush, eraser, undo and redo edit the map exactly; save writes it beside the case and reopening shows it', async () => {
  const s = await open('sub/b.nrrd');
  const sid = String(s['session']);
  const size = s['size'] as number[];
  const at = (x: number, y: number, z: number): number => x + size[0]! * (y + size[1]! * z);
  const auto = await api.post(`/api/sessions/${sid}/auto`, { model: 'vista3d', classes: [1] });
  assert.equal(auto.status, 200, auto.body.toString());
  const afterAuto = await labelsOf(sid);
  const img = await readImage(path.join(df.data, 'sub/b.nrrd'));
  assert.deepEqual(Array.from(afterAuto), Array.from(img.data, (v) => (v > 100 ? 1 : 0)));
  const names = (auto.json()['classes'] as { value: number; name: string }[]).map((c) => `${c.value}:${c.name}`);
  assert.ok(names.includes('1:bright'), names.join(','));

  const click = await api.post(`/api/sessions/${sid}/clicks`, { points: [{ label: 3, positive: true, ijk: [8, 9, 5] }] });
  // The server's VISTA3D settings reach the session it opens.
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(df.root, 'vista-options.json'), 'utf8')), { threads: 1, reuseWindows: 6 });
  assert.equal(click.status, 200, click.body.toString());
  const cj = click.json();
  assert.equal(cj['windowsComputed'], 1);
  const click2 = (await api.post(`/api/sessions/${sid}/clicks`, { points: [{ label: 3, positive: true, ijk: [9, 9, 5] }] })).json();
  assert.equal(click2['cacheHits'], 1, 'a later click in the same window reuses it');
  const afterClicks = await labelsOf(sid);
  assert.equal(afterClicks[at(8, 9, 5)], afterAuto[at(8, 9, 5)] === 0 ? 3 : afterAuto[at(8, 9, 5)]);
  assert.ok(Number((click2['counts'] as Record<string, number>)['3']) > 0);

  const brush = (await api.post(`/api/sessions/${sid}/brush`, { label: 2, radius: 1, shape: 'z', points: [[2, 2, 1], [3, 2, 1]] })).json();
  assert.equal(brush['changed'], 8, 'two overlapping discs of radius 1 in one slice cover 8 voxels');
  const erase = (await api.post(`/api/sessions/${sid}/brush`, { label: 2, erase: true, radius: 0, points: [[2, 2, 1]] })).json();
  assert.equal(erase['changed'], 1);
  const edited = await labelsOf(sid);
  assert.equal(edited[at(2, 2, 1)], 0);
  assert.equal(edited[at(3, 2, 1)], 2);

  // Undo back to the automatic result, redo forward again.
  for (let i = 0; i < 4; i++) assert.equal((await api.post(`/api/sessions/${sid}/undo`)).status, 200);
  assert.deepEqual(await labelsOf(sid), afterAuto);
  const undoAll = await api.post(`/api/sessions/${sid}/undo`);
  assert.equal(undoAll.status, 200);
  assert.ok((await labelsOf(sid)).every((v) => v === 0));
  const none = await api.post(`/api/sessions/${sid}/undo`);
  assert.equal(none.status, 409);
  for (let i = 0; i < 5; i++) assert.equal((await api.post(`/api/sessions/${sid}/redo`)).status, 200);
  assert.deepEqual(await labelsOf(sid), edited);
  assert.equal((await api.post(`/api/sessions/${sid}/redo`)).status, 409);

  const save = await api.post(`/api/sessions/${sid}/save`);
  assert.equal(save.status, 200, save.body.toString());
  assert.equal(save.json()['labels'], 'sub/b.seg.nii.gz');
  const saved = await readImage(path.join(df.data, 'sub/b.seg.nii.gz'));
  assert.deepEqual(Array.from(saved.data), Array.from(edited));
  assert.deepEqual(saved.size, img.size);
  assert.deepEqual(saved.spacing.map((v) => +v.toFixed(5)), img.spacing.map((v) => +v.toFixed(5)));
  const record = JSON.parse(fs.readFileSync(path.join(df.data, 'sub/b.seg.json'), 'utf8')) as Record<string, unknown>;
  assert.equal((record['clicks'] as unknown[]).length, 2);
  assert.deepEqual((record['clicks'] as { points: unknown }[])[0]!.points, [{ label: 3, positive: true, ijk: [8, 9, 5] }]);
  // The saved file is not listed as a case; reopening the case starts from it.
  assert.deepEqual(((await api.get('/api/cases')).json()['cases'] as { id: string; saved: boolean }[]).map((c) => [c.id, c.saved]), [['a.nii.gz', false], ['sub/b.nrrd', true]]);
  const again = await open('sub/b.nrrd');
  assert.equal(again['savedFrom'], 'sub/b.seg.nii.gz');
  assert.deepEqual(await labelsOf(String(again['session'])), edited);
  assert.equal(again['clicks'], 2);
  assert.ok((again['classes'] as { value: number; name: string }[]).some((c) => c.value === 3 && c.name === 'clicked'));
});

test('a DICOM series folder is a case: the viewer gets it as NIfTI on the same grid, and it saves beside the folder', async () => {
  const src = path.join(dataDir, '05_dcmqi_ct_3slice/dicom');
  const root = fs.mkdtempSync(path.join(df.root, 'dicom-'));
  fs.cpSync(src, path.join(root, 'series'), { recursive: true });
  const s2 = await startServer({ dataDir: root, port: 0, threads: 1 });
  try {
    const c = client(s2.url, s2.token);
    assert.deepEqual(((await c.get('/api/cases')).json()['cases'] as { id: string; kind: string }[]).map((x) => `${x.id}:${x.kind}`), ['series:dicom']);
    const s = (await c.post('/api/sessions', { case: 'series' })).json();
    const ref = await readImage(src);
    assert.deepEqual(s['size'], ref.size);
    const img = await c.get(`/api/sessions/${String(s['session'])}/image.nii.gz`);
    assert.equal(img.status, 200);
    const viewerFile = path.join(df.root, 'viewer-image.nii.gz');
    fs.writeFileSync(viewerFile, img.body);
    const v = await readImage(viewerFile);
    assert.deepEqual(Array.from(v.data), Array.from(ref.data), 'same voxels in the same order');
    assert.equal((await c.post(`/api/sessions/${String(s['session'])}/brush`, { label: 4, radius: 1, points: [[10, 10, 1]] })).status, 200);
    assert.equal((await c.post(`/api/sessions/${String(s['session'])}/save`)).json()['labels'], 'series.seg.nii.gz');
    const saved = await readImage(path.join(root, 'series.seg.nii.gz'));
    assert.deepEqual(saved.size, ref.size);
    assert.equal(Array.from(saved.data).filter((x) => x === 4).length, 7);
  } finally {
    await s2.close();
  }
});
