import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FastifyRequest } from 'fastify';
import { arenaOf } from '../../src/core/kernels/runtime.js';
import { ArenaPool, markFinished } from '../../src/http/arena-pool.js';

const MiB = 2 ** 20;
const IDLE_ARENA_BYTES = 512 * MiB;

/** A request as the pool sees it: its body, read into the bytes the pool gave. */
function requestWith(bytes: Uint8Array, done: boolean): FastifyRequest {
  const request = { body: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) } as unknown as FastifyRequest;
  if (done) markFinished(request);
  return request;
}

test('an arena comes back only from a request whose task finished, and is reused for a body of a similar size', () => {
  const pool = new ArenaPool(IDLE_ARENA_BYTES);
  const first = pool.bytesFor(2 * MiB);
  assert.ok(arenaOf(first));
  pool.release(requestWith(first, false));
  assert.equal(pool.idleBytes, 0, 'a task that was stopped may still touch it');
  const second = pool.bytesFor(2 * MiB);
  assert.ok(second.buffer !== first.buffer);
  pool.release(requestWith(second, true));
  assert.ok(pool.idleBytes > 2 * MiB);
  assert.ok(pool.bytesFor(3 * MiB).buffer !== second.buffer, 'too small for 3 MiB and its room');
  assert.ok(pool.bytesFor(1.5 * MiB).buffer === second.buffer, 'fits');
  assert.equal(pool.idleBytes, 0);
});

test('an arena more than twice the size a body needs is not used for it; small bodies get plain buffers', () => {
  const pool = new ArenaPool(IDLE_ARENA_BYTES);
  const big = pool.bytesFor(16 * MiB);
  pool.release(requestWith(big, true));
  assert.ok(pool.bytesFor(2 * MiB).buffer !== big.buffer);
  assert.equal(arenaOf(pool.bytesFor(1000)), undefined);
  assert.ok(pool.bytesFor(12 * MiB).buffer === big.buffer);
});

test('idle arenas stay within the cache bound, the oldest dropped first; a bound of 0 keeps none', () => {
  const pool = new ArenaPool(IDLE_ARENA_BYTES);
  const size = 100 * MiB;
  const arenas = Array.from({ length: 5 }, () => pool.bytesFor(size));
  for (const a of arenas) pool.release(requestWith(a, true));
  assert.ok(pool.idleBytes <= IDLE_ARENA_BYTES);
  assert.ok(pool.idleBytes > IDLE_ARENA_BYTES - 2 * size);
  assert.ok(pool.bytesFor(size).buffer === arenas[4]!.buffer, 'the newest is kept');
  const none = new ArenaPool(0);
  none.release(requestWith(none.bytesFor(2 * MiB), true));
  assert.equal(none.idleBytes, 0);
});
