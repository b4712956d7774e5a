/**
 * Medical image I/O on itk-wasm: NIfTI, NRRD, MetaImage and DICOM series to and from Volume,
 * with validation, atomic writes and geometry helpers.
 */
export { readImage, firstNonFinite, type ReadImageOptions } from './read.js';
export { writeImage, writeLike, castVoxels, type WriteImageOptions } from './write.js';
export { convertImage, type ConvertOptions } from './convert.js';
export { listDicomSeries, readDicom, formatSeriesTable, describeIrregular, type DicomReadOptions } from './dicom-read.js';
export { regridSlices, type RegridSlices } from './dicom-regrid.js';
export type { DicomSeriesInfo, IrregularGeometry } from './dicom-scan.js';
export { parseDicomHeader, describeTransferSyntax, type DicomHeader } from './dicom-header.js';
export {
  affineLPS, affineRAS, lpsToRas, orientationCode, gridDifferences, sameGrid, assertSameGeometry, describeGrid, det3,
  type Grid, type Mat4, type GeometryTolerance,
} from './geometry.js';
export { alignToGrid, latticeMapping, type LatticeMap } from './align.js';
export { formatOf, SUPPORTED_ENDINGS, type ImageFormat } from './formats.js';
export { voxelTypeOf, VOXEL_TYPES, type VoxelType } from './itk.js';
export { DicomError, GeometryError } from './errors.js';
