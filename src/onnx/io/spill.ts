import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { DATA_LOCATION_EXTERNAL, type OnnxTensor } from '../proto/model.js';
import type { ExternalData } from '../proto/tensor-data.js';
import { readRange, readRangeInto } from './files.js';

// A job's quantized tensors, once more of them than a budget is held, go to a file beside
// the output as they are made and stay in the model as external data pointing there; the
// writer reads them back one at a time. So a job's memory stays flat however big the model:
// 4-bit weights of an 8 GiB float16 model are 2.3 GiB, which would otherwise all be held
// until the output is written.

/** Tensors under this size stay in memory (as the writer keeps them inline). */
const MIN_SPILL_BYTES = 1024;

/**
 * Where a spill write's bytes are reserved before it is made, and given back when the file
 * is deleted; a refused reservation fails the job with tooBig's error (it names the setting).
 */
export interface SpillLimit {
  tryReserve: (bytes: number) => boolean;
  release: (bytes: number) => void;
  tooBig: (bytes: number, spilled: number) => Error;
}

export class TensorSpill implements ExternalData {
  readonly location: string;
  readonly #path: string;
  readonly #base: ExternalData;
  readonly #budget: number;
  readonly #limit: SpillLimit | undefined;
  #fd: number | undefined;
  #held = 0;
  #size = 0;
  #reserved = 0;

  /**
   * Spills into dir/location (a name no upload uses) once `budget` bytes of tensors are held;
   * reads other locations from base. A write `limit` refuses makes hold() throw its error instead.
   */
  constructor(dir: string, location: string, budget: number, base: ExternalData, limit?: SpillLimit) {
    this.location = location;
    this.#path = join(dir, location);
    this.#base = base;
    this.#budget = budget;
    this.#limit = limit;
  }

  /** Takes a weight's new tensors: held while under the budget, else written out and made external (in place). */
  hold(tensors: readonly OnnxTensor[]): void {
    for (const t of tensors) {
      const data = t.rawData;
      if (!data || data.length < MIN_SPILL_BYTES) continue;
      if (this.#held + data.length <= this.#budget) {
        this.#held += data.length;
        continue;
      }
      // Reserved before the write, so the disk never holds more than the limit.
      if (this.#limit) {
        if (!this.#limit.tryReserve(data.length)) throw this.#limit.tooBig(data.length, this.#size);
        this.#reserved += data.length;
      }
      this.#fd ??= openSync(this.#path, 'w+');
      for (let at = 0; at < data.length; ) at += writeSync(this.#fd, data, at, data.length - at, this.#size + at);
      t.rawData = undefined;
      t.dataLocation = DATA_LOCATION_EXTERNAL;
      t.externalData = [
        { key: 'location', value: this.location },
        { key: 'offset', value: String(this.#size) },
        { key: 'length', value: String(data.length) },
      ];
      this.#size += data.length;
    }
  }

  read(location: string, offset: number, length: number): Uint8Array {
    if (location !== this.location) return this.#base.read(location, offset, length);
    return readRange(this.#fd!, offset, length);
  }

  readInto(location: string, offset: number, dst: Uint8Array): void {
    if (location !== this.location) {
      if (this.#base.readInto) this.#base.readInto(location, offset, dst);
      else dst.set(this.#base.read(location, offset, dst.length));
      return;
    }
    readRangeInto(this.#fd!, offset, dst);
  }

  /** Closes and deletes the spill file, and gives its reservation back (once). */
  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
    rmSync(this.#path, { force: true });
    if (this.#reserved > 0) this.#limit!.release(this.#reserved);
    this.#reserved = 0;
  }
}
