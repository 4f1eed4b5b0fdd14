import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  arenaCacheBytes,
  recycleArena,
  setArenaCacheBytes,
  tensorBytes,
  tensorFloats,
} from '../../../src/core/kernels/arenas.js';
import { arenaOf } from '../../../src/core/kernels/runtime.js';

const MiB = 2 ** 20;

// assert.ok on identities throughout: a failing equal() would print the buffers.

test('a recycled arena is reused for a tensor of a similar size, not for a much smaller or larger one', () => {
  setArenaCacheBytes(512 * MiB);
  const first = tensorBytes(2 * MiB);
  const arena = arenaOf(first)!;
  assert.ok(arena);
  recycleArena(arena);
  assert.ok(arenaCacheBytes() >= 2 * MiB);
  assert.ok(arenaOf(tensorBytes(3 * MiB)) !== arena, 'too small for 3 MiB and its room');
  assert.ok(arenaOf(tensorBytes(1.1 * MiB)) === arena, 'fits, not twice too big');
  assert.equal(arenaCacheBytes(), 0);
  const big = arenaOf(tensorBytes(8 * MiB))!;
  recycleArena(big);
  assert.ok(arenaOf(tensorBytes(1 * MiB)) !== big, 'more than twice what 1 MiB needs');
  recycleArena(arena);
  assert.equal(arenaOf(tensorBytes(1000)), undefined, 'small tensors get plain buffers');
  assert.ok(arenaOf(tensorFloats(2 ** 18)) === arena);
});

test('idle arenas stay within the bound, the oldest dropped first; a bound of 0 keeps none', () => {
  setArenaCacheBytes(512 * MiB);
  const made = Array.from({ length: 5 }, () => arenaOf(tensorBytes(100 * MiB))!);
  for (const a of made) recycleArena(a);
  assert.ok(arenaCacheBytes() <= 512 * MiB);
  assert.ok(arenaCacheBytes() > 512 * MiB - 2 * made[0]!.buffer.byteLength);
  assert.ok(arenaOf(tensorBytes(100 * MiB)) === made[4], 'the newest is kept');
  setArenaCacheBytes(0);
  assert.equal(arenaCacheBytes(), 0);
  recycleArena(made[0]!);
  assert.equal(arenaCacheBytes(), 0);
});
