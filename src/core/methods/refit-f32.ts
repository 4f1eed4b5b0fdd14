import { f32 } from '../round.js';
import { roundClamp, type GroupParams, type Weights } from './stored.js';

// lsq's refinement after the search, in float32 as llama.cpp computes its fits: each score
// is an approximation used only to steer the refit, so it may round; the result is judged
// against rtn by the exact float64 error (stored.ts storedError) once, at the end. Every
// operation is a float32 one, in element order (Math.fround of a double result of two
// float32 operands is the float32 result: 53 ≥ 2·24 + 2 bits), so lsq.wat, four groups to a
// float32x4 vector, reproduces it bit for bit.

export type ScoredF32 = GroupParams & { err: number; xl: number; ll: number };

/**
 * The stored form's squared error and the scale refit's sums, all float32: l = clamp(round(
 * f32(x / scale)), q_min − zp, q_max − zp), e = f32(x − f32(l·scale)) (no saturation: an
 * overflow scores Infinity, so it is never kept), err = Σ (w·e)·e, xl = Σ (w·l)·x, ll = Σ (w·l)·l.
 */
export function scoreF32(x: Float32Array, w: Weights, scale: number, zeroPoint: number, qMin: number, qMax: number): ScoredF32 {
  let err = 0;
  let xl = 0;
  let ll = 0;
  const lo = qMin - zeroPoint;
  const hi = qMax - zeroPoint;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    const l = roundClamp(f32(v / scale), lo, hi);
    const e = f32(v - f32(l * scale));
    const wi = w ? w[i]! : 1;
    const we = f32(wi * e);
    const wl = f32(wi * l);
    err = f32(err + f32(we * e));
    xl = f32(xl + f32(wl * v));
    ll = f32(ll + f32(wl * l));
  }
  return { scale, zeroPoint, err, xl, ll };
}

/**
 * Alternates re-rounding and the least-squares scale f32(xl / ll) with the zero point held,
 * at most `rounds` times, each round kept only while it lowers the float32 error: a scale
 * fitted to one set of integers rounds some values to other integers.
 */
export function refitScaleF32(x: Float32Array, w: Weights, start: ScoredF32, qMin: number, qMax: number, rounds: number): ScoredF32 {
  let best = start;
  for (let r = 0; r < rounds; r++) {
    if (!(best.ll > 0)) break;
    const scale = f32(best.xl / best.ll);
    if (!(scale > 0) || !Number.isFinite(scale) || scale === best.scale) break;
    const next = scoreF32(x, w, scale, best.zeroPoint, qMin, qMax);
    if (!(next.err < best.err)) break;
    best = next;
  }
  return best;
}
