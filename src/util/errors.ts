/**
 * Typed errors. Every error misfm raises for bad input or misuse is a MisfmError with a stable
 * `code`, so callers (and the CLI) can branch on it and print one clear line instead of a stack.
 */
export type ErrorCode =
  | 'SHAPE'          // tensor shapes do not fit an op
  | 'DTYPE'          // unsupported or mismatched dtype
  | 'NATIVE'         // libtorch raised
  | 'DISPOSED'       // use of a disposed tensor
  | 'STATE_DICT'     // checkpoint keys/shapes do not fit a module
  | 'CHECKPOINT'     // unreadable / corrupt / foreign checkpoint file
  | 'IMAGE_IO'       // unreadable / corrupt / unsupported image file
  | 'GEOMETRY'       // image/label geometry mismatch
  | 'DICOM'          // DICOM series problems
  | 'CONFIG'         // invalid configuration value
  | 'DATA'           // dataset problems (missing files, empty folders, bad CSV)
  | 'ARGUMENT'       // invalid function / CLI argument
  | 'ENGINE'         // addon missing or not built
  | 'DISTRIBUTED';   // rendezvous, collectives, a failed or missing rank

export class MisfmError extends Error {
  readonly code: ErrorCode;
  /** File the problem is about, when there is one. */
  readonly file: string | undefined;
  constructor(code: ErrorCode, message: string, options?: { file?: string; cause?: unknown }) {
    super(options?.file !== undefined && !message.includes(options.file) ? `${options.file}: ${message}` : message,
      options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'MisfmError';
    this.code = code;
    this.file = options?.file;
  }
}

export class ShapeError extends MisfmError {
  constructor(op: string, message: string) {
    super('SHAPE', `${op}: ${message}`);
    this.name = 'ShapeError';
  }
}

export class CheckpointError extends MisfmError {
  constructor(file: string, message: string, cause?: unknown) {
    super('CHECKPOINT', message, { file, cause });
    this.name = 'CheckpointError';
  }
}

export class ImageIOError extends MisfmError {
  constructor(file: string, message: string, cause?: unknown) {
    super('IMAGE_IO', message, { file, cause });
    this.name = 'ImageIOError';
  }
}

export class ConfigError extends MisfmError {
  /** Dotted path of the offending key, e.g. `training.lr`. */
  readonly path: string;
  constructor(path: string, message: string, file?: string) {
    super('CONFIG', `${path}: ${message}`, file !== undefined ? { file } : undefined);
    this.name = 'ConfigError';
    this.path = path;
  }
}

/** Format a shape for messages: [1,5,32,64,64]. */
export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}
