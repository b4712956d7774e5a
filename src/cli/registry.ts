/** Every CLI command, in the order `misfm --help` lists them. */
import type { Command } from './command.js';
import { doctorCommand } from './commands/doctor.js';
import { evaluateCommand } from './commands/evaluate.js';

export const COMMANDS: Command[] = [evaluateCommand, doctorCommand];
