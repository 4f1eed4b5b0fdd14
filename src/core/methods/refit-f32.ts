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

/** Groups up to this length are judged against rtn by their float32 scores (lsqAcceptBelow); longer ones, and weighted ones, exactly. */
export const LSQ_F32_CHECK_MAX = 16384;

/**
 * The constants of lsqAcceptBelow for groups of n: c1 = 1 − (4n + 8)·2⁻²⁴, c2 = n·2⁻¹⁴⁸
 * (both exact in float64), for lsq.wat as well.
 */
export function lsqMargin(n: number): { c1: number; c2: number } {
  return { c1: 1 - (4 * n + 8) * 2 ** -24, c2: n * 2 ** -148 };
}

/**
 * The float32 score a result must stay below for its exact error to be below rtn's, given
 * rtn's float32 score `rtnErr` (both from scoreF32, unweighted, n ≤ LSQ_F32_CHECK_MAX):
 * rtnErr·c1 − c2 in float64. Why it is safe, with u = 2⁻²⁴: each e = f32(x − x̂) is within
 * u of the real difference (a subtraction whose result is subnormal is exact), e·e within u
 * plus 2⁻¹⁵⁰ when it underflows, and a left-to-right sum of n non-negative terms within
 * γ = (n − 1)u/(1 − (n − 1)u) (additions are exact when they underflow). So a score Ê and
 * the real error E of the same parameters satisfy (1 − γ')E − η ≤ Ê ≤ (1 + γ')E + η with
 * γ' = γ_{n+2} and η ≤ n·2⁻¹⁴⁹, and Ê_lsq < Ê_rtn·c1 − c2 gives E_lsq ≤ E_rtn·(1 + γ')(1 −
 * g)(1 + 2⁻⁵²)/(1 − γ') with g = (4n + 8)u > 2γ' + 2⁻⁵² + O(n²u²) for n ≤ 2¹⁴: E_lsq < E_rtn
 * by a relative margin of about 2nu, far above what float64 sums (storedError) can blur.
 * The price: a result within that margin (3·10⁻⁵ relative at n = 128) keeps rtn. An
 * rtn score that overflowed bounds nothing: then nothing is accepted (−∞).
 */
export function lsqAcceptBelow(rtnErr: number, n: number): number {
  const { c1, c2 } = lsqMargin(n);
  return rtnErr < Infinity ? rtnErr * c1 - c2 : -Infinity;
}
