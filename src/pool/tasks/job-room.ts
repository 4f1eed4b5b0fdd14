import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Errors } from '../../errors.js';
import type { SpillLimit } from '../../onnx/io/spill.js';
import type { ReserveFile } from '../../onnx/io/write-model.js';
import { LedgerAccount, type StorageRoom } from '../storage-ledger.js';

// A job's own writes into the job store, its spill file and then its result files, take
// their bytes from the store's ledger before they are made: the result is written while
// the spill file still exists, so a job needs both at once. A refused write fails the job
// with QUANT_ERR_STORAGE_FULL naming the limit; what a failed job wrote is deleted and
// given back here, and the runner settles the rest (pool/storage-ledger.ts, jobs/runner.ts).

const RETRY = 'submit it again when jobs have expired or been deleted, or raise JOBS_MAX_BYTES';

export class JobRoom {
  readonly #account: LedgerAccount;
  readonly #maxBytes: number;
  readonly #dir: string;
  #results: string[] = [];
  #resultBytes = 0;

  constructor(room: StorageRoom, outputDir: string) {
    this.#account = LedgerAccount.of(room);
    this.#maxBytes = room.maxBytes;
    this.#dir = outputDir;
  }

  #free(): string {
    const free = Math.max(0, this.#maxBytes - this.#account.ledger.used);
    return `the job store has ${free} bytes of JOBS_MAX_BYTES=${this.#maxBytes} free (uploads, results and running jobs' spill files share it)`;
  }

  spillLimit(spillBytes: number): SpillLimit {
    return {
      tryReserve: (bytes) => this.#account.tryReserve(bytes, this.#maxBytes),
      release: (bytes) => this.#account.release(bytes),
      tooBig: (bytes, spilled) =>
        new Errors.StorageFull(
          `the job's spill file (its quantized tensors past the first ${spillBytes} bytes, on disk until the result is written) needs ${bytes} bytes more than its ${spilled}, ` +
            `but ${this.#free()}; ${RETRY}`,
        ),
    };
  }

  readonly reserveResult: ReserveFile = (name, bytes) => {
    if (!this.#account.tryReserve(bytes, this.#maxBytes)) throw new Errors.StorageFull(`the job's result ${name} needs ${bytes} bytes, but ${this.#free()}; ${RETRY}`);
    // Listed before it is written, so a write that fails half way is deleted too.
    this.#results.push(name);
    this.#resultBytes += bytes;
  };

  /** A failed job's result files: deleted, and their bytes given back. */
  discardResults(): void {
    for (const name of this.#results) rmSync(join(this.#dir, name), { force: true });
    this.#account.release(this.#resultBytes);
    this.#results = [];
    this.#resultBytes = 0;
  }
}
