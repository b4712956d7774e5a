/**
 * `misfm convert IN OUT`: convert between NIfTI, NRRD, MetaImage and DICOM series (input only),
 * keeping geometry; `misfm convert --list FOLDER` lists the series in a DICOM folder.
 */
import { parseArgs } from 'node:util';
import type { Command } from '../command.js';
import { MisfmError } from '../../util/errors.js';
import { convertImage, describeGrid, formatSeriesTable, listDicomSeries, VOXEL_TYPES, type VoxelType } from '../../io/image/index.js';
import { voxelTypeOf } from '../../io/image/itk.js';

const USAGE = `Usage: misfm convert IN OUT [options]
       misfm convert --list FOLDER

Convert a 3D image to the format given by OUT's ending, keeping voxel values and geometry.
IN:  .nii, .nii.gz, .hdr, .nrrd, .nhdr, .mha, .mhd, a DICOM folder (searched recursively) or a
     single DICOM file. A folder with several series needs --series (see --list).
OUT: .nii, .nii.gz, .hdr, .nrrd, .nhdr, .mha, .mhd (the folder is created if needed).

Options:
  --series ID       series to read from a DICOM folder: the id shown by --list
                    (the SeriesInstanceUID, or unnamed-N when the files carry none)
  --largest         with several series and no --series, take the one with most slices
  --list            list the image series in the DICOM folder IN and exit
  --strict-geometry refuse a DICOM series with uneven slice gaps or gantry tilt (default: resample
                    it onto a regular grid along the slice normal, with a warning)
  --slice-spacing MM slice step of that regular grid (default: the smallest regular gap)
  --dtype T         store voxels as T: ${VOXEL_TYPES.join(', ')}
                    (integers are rounded; out-of-range values are an error)
  --no-compress     write .nrrd/.nhdr/.mha/.mhd uncompressed (.nii.gz is always compressed)
  --allow-nonfinite accept NaN/Inf voxels in float inputs
`;

export const convertCommand: Command = {
  name: 'convert',
  summary: 'convert images between NIfTI, NRRD, MetaImage and DICOM series (list series with --list)',
  usage: USAGE,
  run: (argv) => runConvert(argv, (s) => process.stdout.write(s), (s) => process.stderr.write(s)),
};

/** The command with its output streams passed in (tests capture them). Returns the exit code. */
export async function runConvert(argv: string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      series: { type: 'string' },
      largest: { type: 'boolean', default: false },
      list: { type: 'boolean', default: false },
      dtype: { type: 'string' },
      'no-compress': { type: 'boolean', default: false },
      'allow-nonfinite': { type: 'boolean', default: false },
      'strict-geometry': { type: 'boolean', default: false },
      'slice-spacing': { type: 'string' },
    },
  });
  if (values.list) {
    if (positionals.length !== 1) throw new MisfmError('ARGUMENT', `--list takes one DICOM folder, got ${positionals.length} argument(s)\n${USAGE}`);
    const folder = positionals[0]!;
    const list = await listDicomSeries(folder);
    if (list.length === 0) {
      out(`${folder}: no DICOM image series\n`);
      return 1;
    }
    out(`${formatSeriesTable(list)}\n`);
    return 0;
  }
  if (positionals.length !== 2) throw new MisfmError('ARGUMENT', `expected IN and OUT, got ${positionals.length} argument(s)\n${USAGE}`);
  const [input, output] = positionals as [string, string];
  let dtype: VoxelType | undefined;
  if (values.dtype !== undefined) {
    if (!(VOXEL_TYPES as readonly string[]).includes(values.dtype)) {
      throw new MisfmError('ARGUMENT', `--dtype ${values.dtype}: expected one of ${VOXEL_TYPES.join(', ')}`);
    }
    dtype = values.dtype as VoxelType;
  }
  const sliceSpacing = values['slice-spacing'] === undefined ? undefined : Number(values['slice-spacing']);
  if (sliceSpacing !== undefined && !(Number.isFinite(sliceSpacing) && sliceSpacing > 0)) {
    throw new MisfmError('ARGUMENT', `--slice-spacing must be a positive number of mm, got '${values['slice-spacing']}'`);
  }
  const vol = await convertImage(input, output, {
    ...(sliceSpacing !== undefined ? { sliceSpacing } : {}),
    strictGeometry: values['strict-geometry'],
    ...(values.series !== undefined ? { seriesUid: values.series } : {}),
    ...(dtype !== undefined ? { dtype } : {}),
    pickLargest: values.largest,
    compress: !values['no-compress'],
    checkFinite: !values['allow-nonfinite'],
    onWarning: (m) => err(`misfm convert: warning: ${m}\n`),
  });
  out(`${output}: ${describeGrid(vol)}, ${dtype ?? voxelTypeOf(vol.data)}\n`);
  return 0;
}
