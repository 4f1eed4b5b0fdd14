#!/usr/bin/env node
import { isQuantError } from '../errors.js';
import { readFileSync } from 'node:fs';
import { cliContext } from './context.js';
import { FileError } from './files.js';
import { quantizeCommand, QUANTIZE_USAGE } from './quantize-command.js';
import { serveEnv, serveHelp, SERVE_USAGE } from './serve-command.js';
import { tensorCommand, TENSOR_USAGE } from './tensor-command.js';
import { weightsCommand, WEIGHTS_USAGE } from './weights-command.js';

// `quantd <command>`: the service, or one model or tensor quantized in this process on the
// same worker pool and tasks the service runs. Errors carry the API's codes.

// Read from package.json (dist/src/cli → the package root) so the CLI starts without loading the server.
const VERSION = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** Exit codes (README, Command line). */
export const EXIT = { ok: 0, refused: 1, usage: 2, file: 3, internal: 4 } as const;

const USAGE = [
  `quantd ${VERSION}`,
  '',
  'usage:',
  `  ${SERVE_USAGE}`,
  `  ${QUANTIZE_USAGE}`,
  `  ${TENSOR_USAGE}`,
  `  ${WEIGHTS_USAGE}`,
  '',
  'quantd <command> --help lists a command\'s flags.',
  '',
].join('\n');

const print = (s: string) => process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);

async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    print(USAGE);
    return command === undefined ? EXIT.usage : EXIT.ok;
  }
  if (command === '--version' || command === '-v') {
    print(VERSION);
    return EXIT.ok;
  }
  if (command === 'serve') {
    const env = serveEnv(rest);
    if (env === 'help') {
      print(serveHelp());
      return EXIT.ok;
    }
    Object.assign(process.env, env);
    await import('../http/server.js');
    // The server owns the process from here (it exits on SIGTERM/SIGINT).
    return -1;
  }
  const commands: Record<string, typeof tensorCommand> = { quantize: quantizeCommand, tensor: tensorCommand, weights: weightsCommand };
  const handler = commands[command];
  if (!handler) {
    process.stderr.write(`quantd: unknown command '${command}'\n\n${USAGE}`);
    return EXIT.usage;
  }
  const ctx = cliContext();
  try {
    return await handler(rest, ctx, print);
  } finally {
    await ctx.close();
  }
}

function fail(err: unknown): number {
  if (err instanceof FileError) {
    process.stderr.write(`quantd: ${err.message}\n`);
    return EXIT.file;
  }
  if (isQuantError(err) && err.statusCode < 500) {
    process.stderr.write(`quantd: ${err.code}: ${err.message}\n`);
    return err.code === 'QUANT_ERR_VALIDATION' ? EXIT.usage : EXIT.refused;
  }
  if (isQuantError(err)) {
    process.stderr.write(`quantd: ${err.code}: ${err.message}\n`);
    return EXIT.internal;
  }
  if (err instanceof Error && err.message.startsWith('invalid configuration:')) {
    process.stderr.write(`quantd: QUANT_ERR_VALIDATION: ${err.message}\n`);
    return EXIT.usage;
  }
  process.stderr.write(`quantd: QUANT_ERR_INTERNAL: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return EXIT.internal;
}

const code = await run(process.argv.slice(2)).catch(fail);
if (code >= 0) process.exitCode = code;
