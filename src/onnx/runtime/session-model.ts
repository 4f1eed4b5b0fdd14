import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelBytes } from './validate.js';

// How an encoded model reaches onnxruntime. In a worker: the bytes, with the model's external
// data files in memory beside them. In the onnxruntime host the external data files are
// staged on disk, and onnxruntime-node takes external data only as bytes (a file path there
// is refused), so the model is written into the same directory and loaded from its path:
// onnxruntime then reads the external data itself, and no process holds a copy of it.

export interface SessionPlace {
  /** The model's external data files, by the location its tensors name. */
  externalData?: { path: string; data: Uint8Array }[] | undefined;
  /** The directory of the model's staged external data files (the onnxruntime host). */
  besideDir?: string | undefined;
}

export interface PlacedModel {
  model: ModelBytes;
  /** Call once the session is created: onnxruntime has read the model by then. */
  done(): void;
}

let written = 0;

/**
 * Writes bytes to a new file in dir named from `stem`, never over an existing one: the
 * directory may hold the user's external data files, under names the user chose.
 */
export function writeNewFile(dir: string, stem: string, bytes: Uint8Array): string {
  for (;;) {
    const path = join(dir, `${stem}-${process.pid}-${++written}.onnx`);
    try {
      writeFileSync(path, bytes, { flag: 'wx' });
      return path;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

export function placeModel(bytes: Uint8Array, o: SessionPlace): PlacedModel {
  if (!o.besideDir) return { model: { bytes, externalData: o.externalData }, done: () => {} };
  const path = writeNewFile(o.besideDir, 'quantd-session', bytes);
  return { model: { path }, done: () => rmSync(path, { force: true }) };
}
