import { parentPort, workerData } from 'node:worker_threads';
import { LedgerAccount, type StorageRoom } from '../../src/pool/storage-ledger.js';

// Test-only: a thread that reserves from a shared ledger as fast as it can, as spill writes
// do, giving back some as it goes; it starts when `go` is raised, so the threads overlap,
// and reports how many bytes it was granted in all.
const { room, go, rounds, bytes } = workerData as { room: StorageRoom; go: Int32Array; rounds: number; bytes: number };
const account = LedgerAccount.of(room);
Atomics.wait(go, 0, 0);
let granted = 0;
for (let i = 0; i < rounds; i++) {
  if (account.tryReserve(bytes, room.maxBytes)) granted += bytes;
  if (i % 3 === 2 && account.held >= bytes) account.release(bytes);
}
parentPort!.postMessage({ granted, held: account.held });
