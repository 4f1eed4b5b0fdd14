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
// Error versus the exact a^y, for a in [0.14, FLT_MAX] (every |e| the shrink takes: its
// threshold is β^(−1/(2−p)) ≥ 0.147 at β ≤ 10·1.01¹⁹), u = 2⁻²⁴:
//   truncation: log series 2·s⁹/9/(1 − s²) = 3.0e-8 in ln m, ×|y|/ln 2 → 1.3e-8 in y·log2 m;
//               exp2 series (r·ln 2)⁸/8!·2^|r| ≤ 7.3e-9 relative
//   rounding:   s (two roundings, m − 1 is exact) and the four-term Horner sum: ≤ 5u relative
//               of |y·log2 m| ≤ 0.15 → 4.5e-8; the coefficients' own rounding ≤ u·0.15 → 9e-9;
//               lo = YL·k + q: ≤ u·0.16 → 9.3e-9 (YL·k itself ≤ 4e-10); r = (YH·k − n) + lo
//               (YH·k − n exact): ≤ u/2 of |r| < 1 → 3.0e-8; y's split YH + YL ≈ y to 1.5e-12
//               relative, ×|y·log2 a| ≤ 38.4 → 6e-11
//   so y·log2 a is off by ≤ 1.07e-7 absolute, 2^r's relative error is ln 2 × that = 7.4e-8;
//   the exp2 Horner sum (seven steps, the last 1 + r·h with |r·h| ≤ 0.42) ≤ 2.3u = 1.4e-7.
//   Total: ≤ 2.3e-7 relative (4u). Measured exhaustively over every float32 in
//   [0.14, FLT_MAX] by scripts/hqq-power-bound.ts: max 1.62e-7 (HQQ_POWER_MAX_REL_ERROR holds it).

/** The stated bound on |powApprox(a) − a^y| / a^y for y = −0.3, a in [0.14, FLT_MAX]. */
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
