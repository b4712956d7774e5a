/** Every CLI command, in the order `misfm --help` lists them. */
import type { Command } from './command.js';
import { doctorCommand } from './commands/doctor.js';
import { evaluateCommand } from './commands/evaluate.js';
import { convertCommand } from './commands/convert.js';

export const COMMANDS: Command[] = [convertCommand, evaluateCommand, doctorCommand];
