import { f32, mulSat } from '../round.js';

// The stored form every method's result is judged in: what QuantizeLinear and the tensor
// API compute from a scale and an integer zero point (x / scale in float32, ties to even,
// clamped; reconstruction (q - zero_point) * scale in float32).

export interface GroupParams {
  scale: number;
  zeroPoint: number;
}

const MAGIC = 6755399441055744;

/**
 * clamp(rint(t), lo, hi) for integer bounds: t is clamped first (to within 1 of the bounds,
 * which changes no result), then rounded half to even by adding and subtracting 1.5·2^52
 * (exact for |t| < 2^51); the hot loops' version of round.ts rint, without its branches.
 */
export function roundClamp(t: number, lo: number, hi: number): number {
  const c = t < lo - 1 ? lo - 1 : t > hi + 1 ? hi + 1 : t;
  const r = c + MAGIC - MAGIC;
  return r < lo ? lo : r > hi ? hi : r;
}

/** Per-element weights of the squared error; undefined means all 1 (plain MSE). */
export type Weights = Float32Array | undefined;

/**
 * Weighted squared error of x in the stored form, and the two sums the least-squares scale
 * for the same integers needs (Σ w·x·(q − zp), Σ w·(q − zp)²), in one pass.
 */
export function storedError(x: Float32Array, w: Weights, scale: number, zeroPoint: number, qMin: number, qMax: number): { err: number; xl: number; ll: number } {
  let err = 0;
  let xl = 0;
  let ll = 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    const l = roundClamp(f32(v / scale), qMin - zeroPoint, qMax - zeroPoint);
    const e = v - mulSat(l, scale);
    const wi = w ? w[i]! : 1;
    err += wi * e * e;
    xl += wi * v * l;
    ll += wi * l * l;
  }
  return { err, xl, ll };
}
