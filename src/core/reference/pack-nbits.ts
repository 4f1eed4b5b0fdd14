// The plain loop that src/core/kernels/pack-nbits.ts must match (and that packs what the
// kernel's whole tiles leave over): W[K, N]'s integers, one a byte-wide element, as rows
// along K (row n at n * rowBytes), two 4-bit values a byte, the lower k in the low nibble.

type Ints = Int8Array | Uint8Array;

/**
 * Packs the pairs (k, k + 1) with k0 ≤ k < k1 (k0, k1 even) of columns n0 ≤ n < n1, each
 * value plus `offset`; bytes of those pairs are assigned, others untouched. 64 × 64 tiles
 * of W at a time: reading a column element by element missed the cache on every value.
 */
export function packNibbleRowsReference(out: Uint8Array, q: Ints, N: number, rowBytes: number, offset: number, k0: number, k1: number, n0: number, n1: number): void {
  const T = 64;
  for (let kt = k0; kt < k1; kt += T) {
    const kEnd = Math.min(k1, kt + T);
    for (let nt = n0; nt < n1; nt += T) {
      const nEnd = Math.min(n1, nt + T);
      for (let n = nt; n < nEnd; n++) {
        const row = n * rowBytes;
        for (let k = kt; k < kEnd; k += 2) out[row + (k >> 1)] = ((q[k * N + n]! + offset) & 15) | (((q[(k + 1) * N + n]! + offset) & 15) << 4);
      }
    }
  }
}
