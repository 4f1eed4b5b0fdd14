import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FastifyRequest } from 'fastify';
import { arenaCacheBytes, setArenaCacheBytes, tensorBytes } from '../../src/core/kernels/arenas.js';
import { markFinished, releaseBody } from '../../src/http/arena-pool.js';

function requestWith(bytes: Uint8Array): FastifyRequest {
  return { body: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) } as unknown as FastifyRequest;
}

test('a body\'s arena goes back to the cache only when its worker task returned', () => {
  setArenaCacheBytes(512 * 2 ** 20);
  const stopped = requestWith(tensorBytes(2 * 2 ** 20));
  releaseBody(stopped);
  assert.equal(arenaCacheBytes(), 0, 'a task that was stopped may still touch it');
  const done = requestWith(tensorBytes(2 * 2 ** 20));
  markFinished(done);
  releaseBody(done);
  assert.ok(arenaCacheBytes() > 2 * 2 ** 20);
  releaseBody(requestWith(new Uint8Array(10)));
});
