import { f32, rint } from '../round.js';

// The power |e|^y (y = p − 1 = −0.3) of HQQ's shrink, in float32 arithmetic that hqq.wat
// repeats lane for lane: WebAssembly has no pow, and calling JavaScript's `**` from the kernel
// cost 45-66 ns a call. Every operation below is one IEEE float32 operation (f32 after each)
// or an integer operation on the bits, so the kernel, this reference and the NumPy port in
// test/fixtures/low_bit/generate.py give the same bits.
//
// a = 2^k·m with m in [√½, √2) (an exponent split on the bits, exact), then
//   y·log2 a = y·k + y·log2 m,   y·log2 m = s·(C1 + s²(C3 + s²(C5 + s²·C7))),  s = (m − 1)/(m + 1)
// (the atanh series of ln m = 2·atanh s, |s| ≤ 0.1716, y/ln 2 folded into its coefficients), y·k
// split as YH·k (exact: YH has 12 fractional bits) + YL·k, and
//   a^y = 2^n · 2^r,  n = round(y·log2 a),  2^r = Σ_{j ≤ 7} (r·ln 2)^j / j!  (Taylor, |r| ≤ ½ + 2⁻¹⁹)
// with 2^n put into the exponent bits (exact: a^y stays a normal float32 for every a ≥ 2⁻¹²⁶).
//
// Error versus the exact a^y (y the float64 0.7 − 1), for a in [0.125, FLT_MAX] (every |e| the
// shrink takes: its threshold is β^(−1/(2−p)) ≥ 0.147 for β ≤ 10·1.01¹⁹); u = 2⁻²⁴, each
// float32 rounding ≤ u relative:
//   truncation: ln m's series after s⁷: 2·s⁹/(9(1 − s²)) = 2.95e-8, ×|y|/ln 2 → 1.28e-8 in
//               y·log2 m; exp2's after r⁷: (ln 2/2)⁸/8!·√2 = 7.3e-9 on 2^r ≥ √½ → 1.03e-8 relative
//   y·log2 a:   s = f/(2 + f) (m − 1 exact by Sterbenz) 2u, the Horner sum ≈ 1.05u (its inner
//               terms are ≤ 1% of C1), the product by s u: 4.05u of |y·log2 m| ≤ 0.15 → 3.6e-8;
//               the coefficients' rounding u·0.15 → 9e-9; lo = YL·k + q: u·0.156 → 9.3e-9
//               (YL·k and YL's own rounding ≤ 4e-10); r = (YH·k − n) + lo, YH·k and YH·k − n
//               exact: u·|r| ≤ u/2 → 3.0e-8. In all ≤ 9.8e-8 absolute, so 2^r is off by
//               ln 2 × that = 6.8e-8 relative
//   exp2's Horner sum: the last step 1 + r·h rounds once (u), r·h once (|r·h|/2^r ≤ 0.414:
//               0.414u) and h carries ≤ 2.5u of its own (0.414 × 2.5u): 2.45u = 1.46e-7
//   2^n:        exact (the exponent bits; a^y stays a normal float32)
//   Total: (1 + 6.8e-8)(1 + 1.03e-8)(1 + 1.46e-7) − 1 ≤ 2.3e-7 relative (3.8u).
// Measured over every float32 in [0.125, FLT_MAX] (1,098,907,648 values, scripts/
// hqq-power-bound.ts): max 1.111e-7, at a = 3.0598; the sampled test holds every value to the bound.

/** The stated bound on |powApprox(a) − a^y| / a^y for y = −0.3, a in [0.125, FLT_MAX]. */
export const HQQ_POWER_MAX_REL_ERROR = 2.3e-7;

const OFF = 0x3f3504f3; // the bits of √½ (float32): m = 2^−k·a lands in [√½, √2)
const LN2 = Math.LN2;

/** exp2's Taylor coefficients (ln 2)^j / j!, j = 1..7, as float32. */
const E = Array.from({ length: 7 }, (_, j) => {
  let c = 1;
  for (let i = 1; i <= j + 1; i++) c *= LN2 / i;
  return f32(c);
});

/**
 * The constants of a^y for one exponent y (|y| ≤ 1), as float32, in the order hqq.wat reads
 * them: YH, YL, C1, C3, C5, C7, then E1..E7.
 */
export function powerConstants(y: number): Float32Array {
  const yh = Math.round(y * 4096) / 4096;
  const c = (j: number) => f32((2 * y) / (j * LN2));
  return Float32Array.from([yh, f32(y - yh), c(1), c(3), c(5), c(7), ...E]);
}

const F = new Float32Array(1);
const I = new Int32Array(F.buffer);

/** a^y for a float32 a > 0 (normal), with the constants of powerConstants(y). */
export function powApprox(a: number, c: Float32Array): number {
  F[0] = a;
  const ix = (I[0]! - OFF) | 0;
  const k = ix >> 23;
  I[0] = (ix & 0x7fffff) + OFF;
  const f = f32(F[0]! - 1);
  const s = f32(f / f32(2 + f));
  const s2 = f32(s * s);
  const q = f32(s * f32(c[2]! + f32(s2 * f32(c[3]! + f32(s2 * f32(c[4]! + f32(s2 * c[5]!)))))));
  const hi = f32(c[0]! * k);
  const lo = f32(f32(c[1]! * k) + q);
  const n = rint(f32(hi + lo));
  const r = f32(f32(hi - n) + lo);
  let p = f32(r * c[12]!);
  for (let j = 11; j >= 6; j--) p = f32(r * f32(c[j]! + p));
  F[0] = f32(1 + p);
  I[0] = (I[0]! + (n << 23)) | 0;
  return F[0]!;
}
