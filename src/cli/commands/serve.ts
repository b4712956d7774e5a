/**
 * `misfm serve`: the browser viewer for reviewing and correcting segmentations (src/serve/).
 * Prints the URL with its token and runs until interrupted.
 */
import { parseArgs } from 'node:util';
import type { Command } from '../command.js';
import { MisfmError } from '../../util/errors.js';
import { nonNegativeInt, positiveInt } from '../args.js';
import { parseIntensity } from './predict.js';
import { startServer, type ServedModel } from '../../serve/server.js';
import type { LoadModelOptions } from '../../infer/model.js';

const USAGE = `Usage: misfm serve DATA_FOLDER [options]

Start a local web server to review scans and segmentations in the browser and correct them:
automatic segmentation, VISTA3D clicks (left = positive, shift/right = negative), brush and eraser,
undo/redo, save (<case>.seg.nii.gz + <case>.seg.json beside the case). Open the printed URL; it holds
the access token every API call needs (see docs/serve-api.md for scripting the same endpoints).

Cases: NIfTI, NRRD and MetaImage files and DICOM series folders under DATA_FOLDER.

Options:
  --model CKPT         a segmentation model for automatic segmentation (misfm training checkpoint, or
                       a PyMIC .pt / safetensors with --model-config and --intensity); repeatable
  --model-config C     model config preset or JSON for checkpoints that record none
  --intensity I        ct-window[:LO,HI], zscore or none, for checkpoints that record none
  --vista3d CKPT       a VISTA3D checkpoint (.pt or safetensors): automatic classes and click correction
  --host H             address to bind (default 127.0.0.1; anything else exposes the server to the network)
  --port P             port (default 8765; 0 picks a free one)
  --output DIR         output folder for logs and converted images (default DATA_FOLDER/.misfm-serve)
  --reuse-windows N    VISTA3D clicks, misfm not MONAI: a click whose centred window was not computed is
                       answered in a cached window holding it at least N voxels inside (the point head
                       alone, no encoder pass); off by default
  --threads N          libtorch threads for the engine (default: all cores or MISFM_NUM_THREADS)
  --max-body BYTES     largest accepted request body (default 1048576)
`;

export const serveCommand: Command = {
  name: 'serve',
  summary: 'review and correct segmentations in the browser (local server, NiiVue viewer, VISTA3D clicks)',
  usage: USAGE,
  async run(argv: string[]): Promise<number> {
    const { values: v, positionals } = parseArgs({
      args: argv,
      options: {
        model: { type: 'string', multiple: true }, 'model-config': { type: 'string' }, intensity: { type: 'string' }, vista3d: { type: 'string' },
        host: { type: 'string' }, port: { type: 'string' }, output: { type: 'string' }, threads: { type: 'string' }, 'max-body': { type: 'string' }, 'reuse-windows': { type: 'string' },
      },
      allowPositionals: true,
      strict: true,
    });
    if (positionals.length !== 1) throw new MisfmError('ARGUMENT', `give exactly one DATA_FOLDER\n${USAGE}`);
    const load: LoadModelOptions = {};
    if (v['model-config'] !== undefined) load.modelConfig = v['model-config'];
    if (v.intensity !== undefined) load.preprocess = { intensity: parseIntensity(v.intensity) };
    const models: ServedModel[] = (v.model ?? []).map((checkpoint, i) => ({ id: `m${i}`, kind: 'predict', checkpoint, load }));
    if (v.vista3d !== undefined) models.push({ id: 'vista3d', kind: 'vista3d', checkpoint: v.vista3d });
    let port = 8765;
    if (v.port !== undefined) {
      port = Number(v.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new MisfmError('ARGUMENT', `--port must be 0..65535, got '${v.port}'`);
    }
    const host = v.host ?? '127.0.0.1';
    if (!['127.0.0.1', 'localhost', '::1'].includes(host)) {
      process.stderr.write(`misfm serve: warning: binding ${host} exposes patient images and the engine to the network; anyone with the token can read and write the data folder\n`);
    }
    const server = await startServer({
      dataDir: positionals[0]!, host, port, models,
      ...(v.output !== undefined ? { outputDir: v.output } : {}),
      ...(v.threads !== undefined ? { threads: positiveInt('threads', v.threads) } : {}),
      ...(v['max-body'] !== undefined ? { bodyLimit: positiveInt('max-body', v['max-body']) } : {}),
      ...(v['reuse-windows'] !== undefined ? { reuseWindows: nonNegativeInt('reuse-windows', v['reuse-windows']) } : {}),
    });
    process.stdout.write(`misfm serve: ${server.dataDir} (output ${server.outputDir}), models: ${models.map((m) => `${m.id}=${m.checkpoint}`).join(', ') || 'none'}\n`);
    process.stdout.write(`open ${server.openUrl}\n`);
    await new Promise<void>((resolve) => {
      const stop = (): void => { process.off('SIGINT', stop); process.off('SIGTERM', stop); resolve(); };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    process.stdout.write('misfm serve: stopping\n');
    await server.close();
    return 0;
  },
};
