import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { Errors } from '../../errors.js';
import type { ExternalData } from '../proto/tensor-data.js';
import { crc32 } from '../../codecs/crc32.js';

// File I/O for models on disk (jobs): reads and writes go through a file descriptor in
// bounded chunks, because readFileSync/writeFileSync refuse anything past 2 GiB and a
// model's external data routinely is.

const CHUNK = 64 * 2 ** 20;

/** dst.length bytes of fd from position into dst, in chunks (readSync caps one call at 2 GiB). */
export function readRangeInto(fd: number, position: number, dst: Uint8Array): void {
  const n = dst.length;
  let done = 0;
  while (done < n) {
    const got = readSync(fd, dst, done, Math.min(CHUNK, n - done), position + done);
    if (got === 0) throw new Errors.Onnx(`file ends after ${position + done} bytes; ${n - done} more were expected`);
    done += got;
  }
}

/** n bytes of fd from position into a new buffer. */
export function readRange(fd: number, position: number, n: number): Uint8Array {
  const out = Buffer.allocUnsafe(n);
  readRangeInto(fd, position, out);
  return new Uint8Array(out.buffer, out.byteOffset, n);
}

/** A whole file (an .onnx, which protobuf keeps under 2 GiB) read in chunks. */
export function readWholeFile(path: string): Uint8Array {
  const fd = openSync(path, 'r');
  try {
    return readRange(fd, 0, fstatSync(fd).size);
  } finally {
    closeSync(fd);
  }
}

/** External data files on disk, read by range; close() releases their descriptors. */
export class FileExternalData implements ExternalData {
  readonly #paths: ReadonlyMap<string, string>;
  readonly #fds = new Map<string, number>();

  constructor(paths: ReadonlyMap<string, string>) {
    this.#paths = paths;
  }

  #fd(location: string): number {
    let fd = this.#fds.get(location);
    if (fd === undefined) {
      const path = this.#paths.get(location);
      if (!path) throw new Errors.Onnx(`external data file '${location}' was not uploaded`);
      fd = openSync(path, 'r');
      this.#fds.set(location, fd);
    }
    return fd;
  }

  sizes(): Map<string, number> {
    return new Map([...this.#paths.keys()].map((loc) => [loc, fstatSync(this.#fd(loc)).size]));
  }

  #checked(location: string, offset: number, length: number): number {
    const fd = this.#fd(location);
    // Checked before allocating: a tensor's dims are the model's word, the file's size is not.
    const size = fstatSync(fd).size;
    if (offset + length > size) throw new Errors.Onnx(`external data: bytes ${offset}..${offset + length} of '${location}' are past its end (${size} bytes)`);
    return fd;
  }

  read(location: string, offset: number, length: number): Uint8Array {
    return readRange(this.#checked(location, offset, length), offset, length);
  }

  readInto(location: string, offset: number, dst: Uint8Array): void {
    readRangeInto(this.#checked(location, offset, dst.length), offset, dst);
  }

  close(): void {
    for (const fd of this.#fds.values()) closeSync(fd);
    this.#fds.clear();
  }
}

/** Writes pieces to a new file; returns its size and CRC-32 (for zipping it later). */
export function writePieces(path: string, pieces: Iterable<Uint8Array>): { size: number; crc: number } {
  const fd = openSync(path, 'w');
  let size = 0;
  let crc = 0;
  try {
    for (const piece of pieces) {
      for (let at = 0; at < piece.length; ) {
        const n = writeSync(fd, piece, at, Math.min(CHUNK, piece.length - at));
        crc = crc32(piece.subarray(at, at + n), crc);
        at += n;
      }
      size += piece.length;
    }
  } finally {
    closeSync(fd);
  }
  return { size, crc };
}
