/**
 * Named errors of the image I/O layer. They extend MisfmError with the shared codes, so the CLI
 * prints them as one line; the classes only add a name that tests and callers can match on.
 */
import { MisfmError } from '../../util/errors.js';

/** A DICOM folder or series that cannot be turned into one volume (code 'DICOM'). */
export class DicomError extends MisfmError {
  constructor(file: string, message: string, cause?: unknown) {
    super('DICOM', message, { file, cause });
    this.name = 'DicomError';
  }
}

/** Two images whose grids disagree, or a geometry that is unusable (code 'GEOMETRY'). */
export class GeometryError extends MisfmError {
  constructor(message: string, file?: string) {
    super('GEOMETRY', message, file !== undefined ? { file } : undefined);
    this.name = 'GeometryError';
  }
}

/** The message of anything thrown, for wrapping. */
export function reasonOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === 'number') return `wasm exception ${err}`;
  return String(err);
}
