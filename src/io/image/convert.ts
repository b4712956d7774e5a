/**
 * convertImage: read any supported input (file or DICOM folder) and write it in the format of
 * the output's ending, keeping voxel values and geometry.
 */
import type { Volume } from '../volume.js';
import { readImage, type ReadImageOptions } from './read.js';
import { writeImage, type WriteImageOptions } from './write.js';

export interface ConvertOptions extends ReadImageOptions, WriteImageOptions {}

/** Convert `input` to `output`; returns the volume written. */
export async function convertImage(input: string, output: string, opts: ConvertOptions = {}): Promise<Volume> {
  const vol = await readImage(input, opts);
  await writeImage(output, vol, opts);
  return vol;
}
