import { f32 } from './round.js';
import type { ErrorSums } from './quantize.js';

// NF4, the 4-bit NormalFloat of QLoRA as bitsandbytes and onnxruntime's MatMulBnb4 define
// it: 16 levels (quantiles of N(0, 1), normalised to [-1, 1], with an exact 0), one float32
// absmax per block of consecutive values. A value becomes the level nearest to x / absmax.

/** The codebook, code → level (bitsandbytes create_normal_map; onnxruntime's nf4 table). */
export const NF4_LEVELS = Float32Array.from([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
  0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]);

/** Midpoints between neighbouring levels, in float32: code c covers (mid[c-1], mid[c]]. */
const MIDPOINTS = Float32Array.from({ length: 15 }, (_, c) => (NF4_LEVELS[c]! + NF4_LEVELS[c + 1]!) / 2);

/** The code of a normalised value (a value on a midpoint goes to the lower level, as bitsandbytes' `x > threshold` tree does). */
export function nf4Code(v: number): number {
  let c = 0;
  while (c < 15 && v > MIDPOINTS[c]!) c++;
  return c;
}

/**
 * Blocks of `blockSize` consecutive values of `x` (the last may be shorter): absmax =
 * max|x| per block, codes = nf4Code(x / absmax) (float32 division; an all-zero block has
 * absmax 0 and codes for 0). Reconstruction is level · absmax in float32, as MatMulBnb4's
 * dequantization computes it; the error sums compare it with x.
 */
export function quantizeNf4(x: Float32Array, blockSize: number): { codes: Uint8Array; absmax: Float32Array; sums: ErrorSums } {
  const blocks = Math.ceil(x.length / blockSize);
  const absmax = new Float32Array(blocks);
  const codes = new Uint8Array(x.length);
  const sums: ErrorSums = { count: x.length, clipped: 0, maxError: 0, sumAbs: 0, sumSq: 0, sumX2: 0 };
  for (let b = 0; b < blocks; b++) {
    const from = b * blockSize;
    const to = Math.min(x.length, from + blockSize);
    let m = 0;
    for (let i = from; i < to; i++) m = Math.max(m, Math.abs(x[i]!));
    absmax[b] = m;
    for (let i = from; i < to; i++) {
      const v = x[i]!;
      const c = m > 0 ? nf4Code(f32(v / m)) : 7;
      codes[i] = c;
      const e = Math.abs(v - f32(NF4_LEVELS[c]! * m));
      if (e > sums.maxError) sums.maxError = e;
      sums.sumAbs += e;
      sums.sumSq += e * e;
      sums.sumX2 += v * v;
    }
  }
  return { codes, absmax, sums };
}

/** Two codes per byte, the first in the HIGH nibble (MatMulBnb4's order, the opposite of int4). */
export function packNf4(codes: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(codes.length / 2));
  for (let i = 0; i < codes.length; i++) out[i >> 1]! |= i & 1 ? codes[i]! : codes[i]! << 4;
  return out;
}
