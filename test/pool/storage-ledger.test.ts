import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { StorageLedger } from '../../src/pool/storage-ledger.js';

// The ledger is one counter in shared memory: whatever the threads race, what it holds never
// passes the limit, and every account's bytes are in it.

test('reserves only within the limit, and counts the high-water mark', () => {
  const ledger = new StorageLedger();
  assert.equal(ledger.tryReserve(600, 1000), true);
  assert.equal(ledger.tryReserve(401, 1000), false, 'one byte past the limit is refused');
  assert.equal(ledger.used, 600, 'a refused reservation takes nothing');
  assert.equal(ledger.tryReserve(400, 1000), true, 'exactly the limit is allowed');
  ledger.release(700);
  assert.deepEqual([ledger.used, ledger.highWater], [300, 1000]);
  ledger.add(5000);
  assert.deepEqual([ledger.used, ledger.highWater], [5300, 5300], 'bytes already on disk count whatever the limit');
  assert.equal(ledger.tryReserve(1, 1000), false);
});

test('an account is counted in the ledger and gives back all it holds', () => {
  const ledger = new StorageLedger();
  const a = ledger.account();
  const b = ledger.account();
  assert.equal(a.tryReserve(700, 1000), true);
  assert.equal(b.tryReserve(400, 1000), false, "b is refused what a holds");
  assert.equal(b.tryReserve(300, 1000), true);
  a.release(200);
  assert.deepEqual([a.held, b.held, ledger.used], [500, 300, 800]);
  assert.equal(a.releaseAll(), 500);
  assert.deepEqual([a.held, ledger.used], [0, 300]);
  assert.equal(a.releaseAll(), 0, 'a second settle gives back nothing');
  assert.equal(ledger.used, 300);
});

test('threads racing for the same room never take more than the limit together', async () => {
  const ledger = new StorageLedger();
  const limit = 10_000;
  const accounts = [ledger.account(), ledger.account(), ledger.account()];
  const go = new Int32Array(new SharedArrayBuffer(4));
  const workers = accounts.map((a) => new Worker(new URL('./ledger-worker.js', import.meta.url), { workerData: { room: { ledger: ledger.buffer, account: a.buffer, maxBytes: limit }, go, rounds: 200_000, bytes: 7 } }));
  const results = workers.map(
    (w) =>
      new Promise<{ granted: number; held: number }>((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      }),
  );
  await Promise.all(workers.map((w) => new Promise((resolve) => w.once('online', resolve))));
  Atomics.store(go, 0, 1);
  Atomics.notify(go, 0);
  const done = await Promise.all(results);
  assert.ok(ledger.highWater <= limit, `the high-water mark ${ledger.highWater} is within ${limit}`);
  assert.ok(ledger.highWater > limit - 7 * accounts.length, `the threads filled the room (high water ${ledger.highWater})`);
  assert.deepEqual(done.map((r) => r.held), accounts.map((a) => a.held), "each thread's account is what the main thread reads");
  assert.equal(ledger.used, accounts.reduce((n, a) => n + a.held, 0), 'the ledger holds exactly what the accounts hold');
  assert.ok(done.reduce((n, r) => n + r.granted, 0) > limit, 'room given back was taken again');
});
