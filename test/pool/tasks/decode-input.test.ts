import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { MessageChannel } from 'node:worker_threads';

import { encodeNpy } from '../../../src/codecs/npy.js';
import { ARENA_BASE, createArena, getKernels, kernelsFor } from '../../../src/core/kernels/runtime.js';
import { decodeInput } from '../../../src/pool/tasks/decode-input.js';
import type { TensorSource } from '../../../src/pool/messages.js';

const LIMITS = { maxElements: 1 << 24, maxDims: 8, maxMatmulMacs: 1e9, maxJsonReplyBytes: 1 << 28 };

/** What a worker receives: the source after a trip through a message port. */
async function posted(src: TensorSource): Promise<TensorSource> {
  const { port1, port2 } = new MessageChannel();
  port1.postMessage(src);
  const [got] = (await once(port2, 'message')) as [TensorSource];
  port1.close();
  return got;
}

test('a body in an arena decodes, across a thread boundary, to a tensor the kernels read in place', async () => {
  const values = Float32Array.from({ length: 1000 }, (_, i) => i / 7 - 50);
  const file = encodeNpy(values, '<f4', [10, 100]);
  const arena = createArena(file.byteLength)!;
  const bytes = new Uint8Array(arena.buffer, ARENA_BASE, file.byteLength);
  bytes.set(file);
  const got = await posted({ kind: 'npy', bytes, arena });
  assert.ok(got.kind === 'npy' && got.arena);
  const { data, shape } = decodeInput(got, LIMITS);
  assert.deepEqual(shape, [10, 100]);
  assert.deepEqual(Array.from(data), Array.from(values));
  const k = kernelsFor(data);
  assert.notEqual(k, getKernels());
  assert.equal(data.buffer, k.buffer);
});

test('a raw body in an arena decodes the same way; one outside an arena stays outside', async () => {
  const values = Float32Array.from({ length: 64 }, (_, i) => i);
  const arena = createArena(values.byteLength)!;
  const bytes = new Uint8Array(arena.buffer, ARENA_BASE, values.byteLength);
  bytes.set(new Uint8Array(values.buffer));
  const inArena = decodeInput(await posted({ kind: 'raw', bytes, dtype: 'float32', shape: [64], arena }), LIMITS);
  assert.notEqual(kernelsFor(inArena.data), getKernels());
  assert.deepEqual(Array.from(inArena.data), Array.from(values));
  const plain = decodeInput(await posted({ kind: 'raw', bytes: new Uint8Array(values.buffer.slice(0)), dtype: 'float32', shape: [64] }), LIMITS);
  assert.equal(kernelsFor(plain.data), getKernels());
});
