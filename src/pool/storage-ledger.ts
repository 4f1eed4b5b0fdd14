// What the job store holds on this machine, counted against JOBS_MAX_BYTES by every thread
// that writes into it: the main thread (uploads as they stream, deletes) and the workers
// (spill files and results, which they write themselves, synchronously). One counter in
// shared memory, changed only by atomic operations: a reservation is a compare-and-swap
// that either fits under the limit or is refused, so two threads can never both pass it.
// Messages to the main thread would need a blocking round trip from the worker's
// synchronous writes, for the same answer.

const USED = 0;
const HIGH = 1;

/** A ledger and one job's share of it, as a task carries them to its worker. */
export interface StorageRoom {
  ledger: SharedArrayBuffer;
  account: SharedArrayBuffer;
  /** JOBS_MAX_BYTES. */
  maxBytes: number;
}

export class StorageLedger {
  readonly buffer: SharedArrayBuffer;
  readonly #cells: BigInt64Array;

  constructor(buffer = new SharedArrayBuffer(2 * BigInt64Array.BYTES_PER_ELEMENT)) {
    this.buffer = buffer;
    this.#cells = new BigInt64Array(buffer);
  }

  /** Bytes held now. */
  get used(): number {
    return Number(Atomics.load(this.#cells, USED));
  }

  /** The most ever held at once. */
  get highWater(): number {
    return Number(Atomics.load(this.#cells, HIGH));
  }

  /** Takes `bytes` if the total stays within `limit`; false (and nothing taken) otherwise. */
  tryReserve(bytes: number, limit: number): boolean {
    const n = BigInt(bytes);
    const max = BigInt(limit);
    for (let cur = Atomics.load(this.#cells, USED); ; ) {
      if (cur + n > max) return false;
      const seen = Atomics.compareExchange(this.#cells, USED, cur, cur + n);
      if (seen === cur) {
        this.#raiseHigh(cur + n);
        return true;
      }
      cur = seen;
    }
  }

  /** Counts bytes already on disk whatever the limit (records found at start, files already admitted). */
  add(bytes: number): void {
    this.#raiseHigh(Atomics.add(this.#cells, USED, BigInt(bytes)) + BigInt(bytes));
  }

  release(bytes: number): void {
    Atomics.sub(this.#cells, USED, BigInt(bytes));
  }

  /** A job's share: what it holds, for whoever settles after it (its worker may die holding it). */
  account(): LedgerAccount {
    return new LedgerAccount(this.buffer, new SharedArrayBuffer(BigInt64Array.BYTES_PER_ELEMENT));
  }

  #raiseHigh(total: bigint): void {
    for (let high = Atomics.load(this.#cells, HIGH); total > high; ) {
      const seen = Atomics.compareExchange(this.#cells, HIGH, high, total);
      if (seen === high) return;
      high = seen;
    }
  }
}

/**
 * One job's reservations: each also counted in the ledger (the ledger first, so a worker
 * dying between the two leaves the ledger over, never under, what is on disk).
 */
export class LedgerAccount {
  readonly ledger: StorageLedger;
  readonly buffer: SharedArrayBuffer;
  readonly #held: BigInt64Array;

  constructor(ledger: SharedArrayBuffer, account: SharedArrayBuffer) {
    this.ledger = new StorageLedger(ledger);
    this.buffer = account;
    this.#held = new BigInt64Array(account);
  }

  static of(room: StorageRoom): LedgerAccount {
    return new LedgerAccount(room.ledger, room.account);
  }

  get held(): number {
    return Number(Atomics.load(this.#held, 0));
  }

  tryReserve(bytes: number, limit: number): boolean {
    if (!this.ledger.tryReserve(bytes, limit)) return false;
    Atomics.add(this.#held, 0, BigInt(bytes));
    return true;
  }

  add(bytes: number): void {
    this.ledger.add(bytes);
    Atomics.add(this.#held, 0, BigInt(bytes));
  }

  release(bytes: number): void {
    Atomics.sub(this.#held, 0, BigInt(bytes));
    this.ledger.release(bytes);
  }

  /**
   * The files stay, counted from now on by whoever holds `bytes` of them (a job's record):
   * the account lets go without the ledger giving anything back, short of a difference.
   */
  handOver(bytes: number): void {
    const held = Number(Atomics.exchange(this.#held, 0, 0n));
    if (bytes !== held) this.ledger.add(bytes - held);
  }

  /** Gives back all it holds; returns how much that was. */
  releaseAll(): number {
    const held = Number(Atomics.exchange(this.#held, 0, 0n));
    this.ledger.release(held);
    return held;
  }
}
