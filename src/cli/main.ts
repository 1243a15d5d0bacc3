import { Command, CommanderError } from 'commander';
import { isKeywardenError, kwError } from '../errors/index.js';
import { registerCommands } from './commands/index.js';

/** Exit codes: 0 ok, 1 a catalogued error, 2 bad usage, 70 an internal error (a bug). */
export const EXIT = { ok: 0, error: 1, usage: 2, internal: 70 } as const;

/** Builds the `keywarden` program with every command registered. */
export function buildProgram(): Command {
  const program = new Command('keywarden')
    .description('DRM client agent for Linux set-top boxes')
    .version(process.env.npm_package_version ?? '0.1.0')
    .option('--verbose', 'print stack traces with errors')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  registerCommands(program);
  return program;
}

/** Runs the CLI. Returns the exit code; never throws. */
export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv]);
    return EXIT.ok;
  } catch (err) {
    return report(err, argv.includes('--verbose'));
  }
}

function report(err: unknown, verbose: boolean): number {
  if (err instanceof CommanderError) {
    if (err.exitCode === 0) return EXIT.ok;
    const coded = kwError('CLI_USAGE', err.message.replace(/^error: /, ''));
    if (!/help/.test(err.code)) process.stderr.write(`${coded.toUserString()}\n`);
    return EXIT.usage;
  }
  if (isKeywardenError(err)) {
    process.stderr.write(`keywarden: ${err.toUserString()}\n`);
    if (verbose && err.stack) process.stderr.write(`${err.stack}\n`);
    return err.code === 'CLI_USAGE' || err.code === 'CLI_BAD_KEY' ? EXIT.usage : EXIT.error;
  }
  process.stderr.write(`keywarden: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
  return EXIT.internal;
}
