/** The contract every CLI command module fulfils. Commands are thin: parse args, call a library function. */
export interface Command {
  name: string;
  /** One line for `misfm --help`. */
  summary: string;
  /** Full usage text for `misfm <name> --help`. */
  usage: string;
  /** Returns the process exit code. Throw MisfmError for user-facing failures. */
  run(argv: string[]): Promise<number>;
}
