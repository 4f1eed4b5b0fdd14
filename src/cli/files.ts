import { accessSync, constants, writeFileSync } from 'node:fs';
import { dirname, extname, join, basename } from 'node:path';
import { readWholeFile } from '../onnx/io/files.js';

// The command's own files: a file that cannot be read or written is the user's path, not
// bad input, so it gets its own exit code and a message with the path and the reason.

export class FileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FileError';
  }
}

function reason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const why: Record<string, string> = { ENOENT: 'no such file or directory', EACCES: 'permission denied', EISDIR: 'it is a directory', ENOTDIR: 'a parent is not a directory' };
  return e.code ? `${why[e.code] ?? e.message} (${e.code})` : String(err);
}

export function readInput(path: string): Uint8Array {
  try {
    return readWholeFile(path);
  } catch (err) {
    throw new FileError(`cannot read ${path}: ${reason(err)}`);
  }
}

export function assertReadable(path: string): void {
  try {
    accessSync(path, constants.R_OK);
  } catch (err) {
    throw new FileError(`cannot read ${path}: ${reason(err)}`);
  }
}

export function writeOutput(path: string, bytes: Uint8Array | string): void {
  try {
    writeFileSync(path, bytes);
  } catch (err) {
    throw new FileError(`cannot write ${path}: ${reason(err)}`);
  }
}

/** --report, or `<output without its extension>.report.json` beside the output. */
export function reportPath(output: string, flag: string | boolean | undefined): string {
  if (typeof flag === 'string') return flag;
  return join(dirname(output), `${basename(output, extname(output))}.report.json`);
}

/** The output's directory must exist and be writable before any work starts. */
export function assertWritable(output: string): void {
  try {
    accessSync(dirname(output), constants.W_OK);
  } catch (err) {
    throw new FileError(`cannot write ${output}: ${reason(err)}`);
  }
}
