import { packNibbleRowsReference } from '../reference/pack-nbits.js';
import { arenaAlloc } from './arenas.js';
import { arenaKernel, arenaOf } from './runtime.js';

// MatMulNBits' 4-bit layout from W[K, N]'s integers with pack-nbits.wat, where the integers
// live in a kernel arena (the model path's weight scratch, onnx/weights/scratch.ts): the
// kernel transposes whole tiles of 32 k by 16 n into the arena, whose rows are then copied
// out; the k and n past the last whole tile take the reference loop. Integers elsewhere
// take the reference loop alone.

interface PackNbitsExports {
  pack4t(q: number, n: number, kTiles: number, nTiles: number, out: number, rowBytes: number, offset: number): void;
}

/**
 * Packs every pair (k, k + 1 < K) of W[K, N]'s integers q (plus `offset`, masked to 4 bits)
 * into out's rows of `rowBytes` bytes (row n holds column n; byte k / 2). Other bytes of out
 * (an odd K's last value, padding) are left as they are. Returns whether the kernel ran.
 */
export function packNibbleRows(out: Uint8Array, q: Int8Array | Uint8Array, K: number, N: number, rowBytes: number, offset: number): boolean {
  const pairsEnd = K - (K % 2);
  const kTiles = Math.floor(K / 32);
  const nTiles = Math.floor(N / 16);
  const memory = arenaOf(q);
  // The tiles write whole 16-byte stores at 16 kt of each row: rows must hold them.
  const tiled = memory !== undefined && kTiles > 0 && nTiles > 0 && rowBytes >= 16 * kTiles;
  const room = tiled ? arenaAlloc(q, nTiles * 16 * rowBytes) : null;
  if (!room) {
    packNibbleRowsReference(out, q, N, rowBytes, offset, 0, pairsEnd, 0, N);
    return false;
  }
  arenaKernel<PackNbitsExports>('pack-nbits', memory!).pack4t(q.byteOffset, N, kTiles, nTiles, room.byteOffset, rowBytes, offset);
  // Row by row: one copy of the whole area out of shared memory ran at a third of the speed.
  const written = 16 * kTiles;
  for (let n = 0; n < nTiles * 16; n++) out.set(room.subarray(n * rowBytes, n * rowBytes + written), n * rowBytes);
  packNibbleRowsReference(out, q, N, rowBytes, offset, 32 * kTiles, pairsEnd, 0, N);
  packNibbleRowsReference(out, q, N, rowBytes, offset, 0, 32 * kTiles, nTiles * 16, N);
  return true;
}
