import assert from 'node:assert/strict';
import { test } from 'node:test';
import { packNibbleRows } from '../../../src/core/kernels/pack-nbits.js';
import { ARENA_BASE, createArena } from '../../../src/core/kernels/runtime.js';
import { packNibbleRowsReference } from '../../../src/core/reference/pack-nbits.js';

// pack-nbits.wat against the plain loop, byte for byte: W[K, N]'s integers in an arena (the
// kernel's whole 32 × 16 tiles, the k and n past them by the loop), every value of both
// signednesses, K and N on and off the tile sizes, rows longer than K / 2 (MatMulNBits pads
// blocks), and bytes outside the pairs left as they were.

function ints(n: number, signed: boolean, seed: number): Int8Array | Uint8Array {
  const out = signed ? new Int8Array(n) : new Uint8Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    out[i] = signed ? ((s >>> 16) % 16) - 8 : (s >>> 16) % 16;
  }
  return out;
}

/** q copied into a fresh arena (room for the kernel's tiles after it). */
function inArena(q: Int8Array | Uint8Array, rowBytes: number, N: number): Int8Array | Uint8Array {
  const memory = createArena(q.length, N * rowBytes + 64);
  assert.ok(memory, 'an arena');
  const view = q instanceof Int8Array ? new Int8Array(memory.buffer, ARENA_BASE, q.length) : new Uint8Array(memory.buffer, ARENA_BASE, q.length);
  view.set(q);
  return view;
}

const CASES: [number, number, number][] = [
  // K, N, rowBytes (K / 2 rounded up to blocks of 32 values)
  [32, 16, 16],
  [64, 48, 32],
  [96, 40, 48],
  [100, 33, 64],
  [257, 65, 144],
  [31, 20, 16],
  [512, 256, 256],
  [130, 17, 80],
];

for (const signed of [true, false]) {
  test(`pack4t packs what the reference packs, ${signed ? 'signed (offset 8)' : 'unsigned'}`, () => {
    for (const [K, N, rowBytes] of CASES) {
      const q = ints(K * N, signed, K * 131 + N);
      const offset = signed ? 8 : 0;
      const want = new Uint8Array(N * rowBytes).fill(0xa5);
      packNibbleRowsReference(want, q, N, rowBytes, offset, 0, K - (K % 2), 0, N);
      const got = new Uint8Array(N * rowBytes).fill(0xa5);
      const ran = packNibbleRows(got, inArena(q, rowBytes, N), K, N, rowBytes, offset);
      assert.equal(ran, K >= 32 && N >= 16, `${K}x${N}: the kernel ran where a whole tile exists`);
      assert.deepEqual(got, want, `${K}x${N}`);
      // Outside an arena: the loop alone, the same bytes.
      const plain = new Uint8Array(N * rowBytes).fill(0xa5);
      assert.equal(packNibbleRows(plain, q, K, N, rowBytes, offset), false);
      assert.deepEqual(plain, want, `${K}x${N} outside an arena`);
    }
  });
}

test('pack4t: each byte holds k in the low nibble and k + 1 in the high one, offset and masked', () => {
  const K = 32;
  const N = 16;
  const q = new Int8Array(K * N);
  for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) q[k * N + n] = ((k + 3 * n) % 16) - 8;
  const out = new Uint8Array(N * 16);
  assert.equal(packNibbleRows(out, inArena(q, 16, N), K, N, 16, 8), true);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k += 2) {
      const byte = out[n * 16 + k / 2]!;
      assert.equal(byte & 15, (k + 3 * n) % 16, `n ${n} k ${k}`);
      assert.equal(byte >> 4, (k + 1 + 3 * n) % 16, `n ${n} k ${k + 1}`);
    }
  }
});
