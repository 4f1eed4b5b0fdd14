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

export function placeModel(bytes: Uint8Array, o: SessionPlace): PlacedModel {
  if (!o.besideDir) return { model: { bytes, externalData: o.externalData }, done: () => {} };
  const path = join(o.besideDir, `session-${process.pid}-${++written}.onnx`);
  writeFileSync(path, bytes);
  return { model: { path }, done: () => rmSync(path, { force: true }) };
}
