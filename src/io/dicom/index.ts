/**
 * DICOM objects misfm writes and reads itself: a dataset codec (explicit VR little endian with
 * sequences) and DICOM Segmentation (SEG) output referencing a source series, with its reader.
 * Image series are read by ../image (header scan + itk-wasm pixel decoding).
 */
export { readDicomSource, type DicomSourceSeries } from './source.js';
export { encodeDicomSeg, writeDicomSeg, newUid, SEG_SOP_CLASS, type SegSegment, type DicomSegOptions } from './seg-write.js';
export { readDicomSeg, type DicomSegRead, type SegSegmentInfo } from './seg-read.js';
export { segmentCodes, defaultColour, rgbToDicomLab, dicomLabToRgb } from './seg-codes.js';
export { parseDataset, encodePart10, dataset, tag, getString, getNumbers, getItems, getBytes, type DicomItem, type DicomElement, type DicomValue } from './dataset.js';
