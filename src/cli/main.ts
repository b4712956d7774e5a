/**
 * `misfm` entry point: dispatches to the command modules listed in ./registry.ts.
 * A MisfmError becomes one clear line on stderr (exit 2); anything else is a bug and keeps its stack.
 */
import { MisfmError } from '../util/errors.js';
import { COMMANDS } from './registry.js';
import { VERSION } from '../version.js';

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(helpText());
    return name === undefined ? 1 : 0;
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(`misfm ${VERSION}\n`);
    return 0;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  if (cmd === undefined) {
    process.stderr.write(`misfm: unknown command '${name}'. Run 'misfm --help' for the list.\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(cmd.usage.endsWith('\n') ? cmd.usage : cmd.usage + '\n');
    return 0;
  }
  try {
    return await cmd.run(rest);
  } catch (err) {
    if (err instanceof MisfmError) {
      process.stderr.write(`misfm ${name}: error: ${err.message}\n`);
      if (process.env['MISFM_DEBUG'] === '1') process.stderr.write(`${err.stack ?? ''}\n`);
      return 2;
    }
    if (err instanceof TypeError && /parseArgs|Unknown option|unexpected argument/i.test(String(err.message))) {
      process.stderr.write(`misfm ${name}: ${err.message}\n${cmd.usage}\n`);
      return 2;
    }
    throw err;
  }
}

function helpText(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return `misfm ${VERSION}: 3D medical image segmentation with self-supervised foundation models\n\n` +
    `Usage: misfm <command> [options]   (misfm <command> --help for details)\n\nCommands:\n${lines.join('\n')}\n`;
}
