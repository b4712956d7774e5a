/**
 * The npm package as a new user gets it (issue 17): `npm pack`, install the tarball into an empty
 * project (dependencies come from the registry), `npx misfm doctor` names what is missing and the
 * fix, `npx misfm setup` builds the engine, `npx misfm doctor` is then happy, and the installed
 * CLI segments the bundled held-out DICOM series with the bundled model, and the liver is found
 * (Dice >= 0.8 against the series' labels, as the model's record says).
 *
 * Slow (npm install + a native build: ~2-4 min on 2 shared cores); MISFM_SKIP_PACK_TEST=1 skips it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { repoRoot } from '../helpers.js';
import { readImage } from '../../src/io/image/index.js';

const skip = process.env['MISFM_SKIP_PACK_TEST'] === '1' ? 'MISFM_SKIP_PACK_TEST=1' : false;

/** Seconds per step, reported as test diagnostics (the machine may be shared: wall time). */
const timings: string[] = [];
function sh(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeoutMs = 600_000): SpawnSyncReturns<string> {
  const t0 = Date.now();
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 << 20 });
  timings.push(`${args.slice(0, 3).join(' ')}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return r;
}
const text = (r: SpawnSyncReturns<string>): string => `${r.stdout ?? ''}${r.stderr ?? ''}`;

test('npm pack -> npm install -> npx misfm doctor / setup / doctor / predict and evaluate with the bundled model', { skip, timeout: 900_000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'misfm-pack-'));
  // A clean environment: no allocator choice inherited, the user cache in the temp folder.
  const env: NodeJS.ProcessEnv = { ...process.env, MISFM_CACHE_DIR: path.join(dir, 'cache'), npm_config_fund: 'false', npm_config_audit: 'false' };
  for (const k of ['MISFM_ALLOCATOR_SET', 'LD_PRELOAD', 'MALLOC_CONF', 'MISFM_NATIVE_ADDON']) delete env[k];
  try {
    // 1. The tarball: the files whitelist keeps tests, fixtures and build stamps out.
    const pack = sh('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], repoRoot, env);
    assert.equal(pack.status, 0, text(pack));
    const info = (JSON.parse(pack.stdout) as Array<{ filename: string; size: number; entryCount: number; files: Array<{ path: string }> }>)[0]!;
    const files = info.files.map((f) => f.path);
    t.diagnostic(`tarball ${info.filename}: ${(info.size / 1e6).toFixed(2)} MB, ${info.entryCount} files`);
    for (const bad of [/^dist\/test\//, /^test\//, /^dist\/bench\//, /build-stamp/, /^native\/build\//, /\.map$/, /fixtures/, /^experiments\//]) {
      assert.deepEqual(files.filter((f) => bad.test(f)), [], `no ${bad} in the package`);
    }
    for (const need of ['bin/misfm.js', 'dist/src/cli/main.js', 'dist/src/index.d.ts', 'native/binding.gyp', 'native/src/addon.cc', 'data/sample/images/abdomen_ct.nii.gz',
      'data/sample/heldout/labels.nii.gz', 'models/pctnet-small-abdomen8/model.pt', 'models/pctnet-small-abdomen8/README.md', 'README.md']) {
      assert.ok(files.includes(need), `${need} is in the package`);
    }
    // 2. An empty project installs it.
    const proj = path.join(dir, 'project');
    fs.mkdirSync(proj);
    fs.writeFileSync(path.join(proj, 'package.json'), JSON.stringify({ name: 'try-misfm', private: true, version: '1.0.0' }));
    const inst = sh('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', path.join(dir, info.filename)], proj, env);
    assert.equal(inst.status, 0, text(inst));
    const installed = path.join(proj, 'node_modules', 'misfm');
    assert.ok(!fs.existsSync(path.join(installed, 'native', 'build')), 'no addon is shipped');
    // 3. doctor before setup: what is missing and the one command that fixes it.
    const d0 = sh('npx', ['--no-install', 'misfm', 'doctor'], proj, env);
    assert.equal(d0.status, 1, text(d0));
    assert.match(d0.stdout, /missing: not built \(looked in .*node_modules\/misfm\/native\/build\/Release\/misfm_native\.node/);
    assert.match(d0.stdout, process.getuid?.() === 0 ? /\nfix: npx misfm setup\n/ : /\nfix: (sudo apt-get .* && )?npx misfm setup\n/);
    // 4. setup builds the engine in the package (writable here) and checks that it loads.
    const s = sh('npx', ['--no-install', 'misfm', 'setup'], proj, env);
    assert.equal(s.status, 0, text(s));
    assert.match(s.stdout, /built .*node_modules\/misfm\/native\/build\/Release\/misfm_native\.node \(package\)/);
    assert.match(s.stdout, /ready \(libtorch 1\.13/);
    const d1 = sh('npx', ['--no-install', 'misfm', 'doctor'], proj, env);
    assert.equal(d1.status, 0, text(d1));
    assert.match(d1.stdout, /libtorch\s+1\.13/);
    // The loader also finds an addon in the per-user cache (where setup builds when the package is read-only).
    const cacheDir = path.join(dir, 'cache', 'native');
    const built = path.join(installed, 'native', 'build', 'Release', 'misfm_native.node');
    const abi = `0.1.0-node${process.versions.modules}-${process.platform}-${process.arch}`;
    fs.mkdirSync(path.join(cacheDir, abi), { recursive: true });
    fs.renameSync(built, path.join(cacheDir, abi, 'misfm_native.node'));
    const d2 = sh('npx', ['--no-install', 'misfm', 'doctor'], proj, env);
    assert.equal(d2.status, 0, text(d2));
    assert.match(d2.stdout, new RegExp(`addon\\s+${path.join(cacheDir, abi).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    // 5. Segment the bundled held-out DICOM series with the bundled model, through the installed CLI.
    const model = path.join(installed, 'models', 'pctnet-small-abdomen8', 'model.pt');
    const series = path.join(installed, 'data', 'sample', 'heldout', 'ct_dicom');
    const outFile = path.join(proj, 'out', 'heldout_seg.nii.gz');
    const p = sh('npx', ['--no-install', 'misfm', 'predict', '--model', model, '--input', series, '--output', outFile], proj, env);
    assert.equal(p.status, 0, text(p));
    assert.ok(fs.existsSync(path.join(proj, 'out', 'heldout_seg.json')));
    const seg = await readImage(outFile);
    assert.deepEqual(seg.size, [512, 512, 20]);
    const json = path.join(proj, 'out', 'liver.json');
    const e = sh('npx', ['--no-install', 'misfm', 'evaluate', '--pred', outFile, '--gt', path.join(installed, 'data', 'sample', 'heldout', 'labels.nii.gz'),
      '--labels', '5', '--names', 'liver', '--metrics', 'dice', '--json', json], proj, env);
    assert.equal(e.status, 0, text(e));
    const dice = (JSON.parse(fs.readFileSync(json, 'utf8')) as { summary: { liver: { dice: { mean: number } } } }).summary.liver.dice.mean;
    t.diagnostic(`bundled model, held-out series: liver Dice ${dice.toFixed(3)}`);
    assert.ok(dice >= 0.8, `liver Dice ${dice} on the held-out series`);
  } finally {
    t.diagnostic(`wall time per step: ${timings.join('; ')}`);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
