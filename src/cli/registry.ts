/** Every CLI command, in the order `misfm --help` lists them. */
import type { Command } from './command.js';
import { doctorCommand } from './commands/doctor.js';
import { evaluateCommand } from './commands/evaluate.js';
import { convertCommand } from './commands/convert.js';
import { prepareCommand } from './commands/prepare.js';
import { pretrainCommand } from './commands/pretrain.js';
import { trainCommand } from './commands/train.js';
import { predictCommand } from './commands/predict.js';
import { plotCommand } from './commands/plot.js';
import { inspectCommand } from './commands/inspect.js';
import { demoCommand } from './commands/demo.js';
import { setupCommand } from './commands/setup.js';
import { segmentCommand } from './commands/segment.js';
import { serveCommand } from './commands/serve.js';
import { launchCommand } from './commands/launch.js';
import { exportCommand } from './commands/export.js';

export const COMMANDS: Command[] = [demoCommand, convertCommand, prepareCommand, pretrainCommand, trainCommand, predictCommand, segmentCommand, evaluateCommand, inspectCommand, exportCommand, plotCommand, serveCommand, launchCommand, doctorCommand, setupCommand];
