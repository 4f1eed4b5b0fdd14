// The integer packing of compressed-tensors' pack-quantized format (compressed_tensors/
// compressors/quantized_compressors/pack_quantized.py, pack_to_int32): values are made
// unsigned by adding 2^(bits-1), then 32/bits of them go into each int32, the first in the
// lowest bits, along a row (packed_dim=1: weights) or down a column (packed_dim=0: zero
// points); a row or column that does not fill its last int32 is padded with zeros.

export function packFactor(bits: number): number {
  return Math.floor(32 / bits);
}

/** u[rows, cols] (unsigned, < 2^bits) → int32 [rows, ceil(cols / (32/bits))], packed along each row. */
export function packRows(u: ArrayLike<number>, rows: number, cols: number, bits: number): Int32Array {
  const pf = packFactor(bits);
  const words = Math.ceil(cols / pf);
  const out = new Int32Array(rows * words);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let w = 0; w < words; w++) {
      let acc = 0;
      const first = w * pf;
      const n = Math.min(pf, cols - first);
      for (let k = 0; k < n; k++) acc |= u[base + first + k]! << (k * bits);
      out[r * words + w] = acc;
    }
  }
  return out;
}

/** u[rows, cols] → int32 [ceil(rows / (32/bits)), cols], packed down each column (packed_dim=0). */
export function packColumns(u: ArrayLike<number>, rows: number, cols: number, bits: number): Int32Array {
  const pf = packFactor(bits);
  const words = Math.ceil(rows / pf);
  const out = new Int32Array(words * cols);
  for (let w = 0; w < words; w++) {
    for (let c = 0; c < cols; c++) {
      let acc = 0;
      const n = Math.min(pf, rows - w * pf);
      for (let k = 0; k < n; k++) acc |= u[(w * pf + k) * cols + c]! << (k * bits);
      out[w * cols + c] = acc;
    }
  }
  return out;
}
