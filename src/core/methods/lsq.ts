import { paramsFromRange, type IntParams, type Range } from '../calibrate.js';
import { clamp, f32, rint } from '../round.js';
import { refitScale, roundClamp, storedError, type GroupParams, type Weights } from './stored.js';

// Closed-form weighted least-squares refit of scale and minimum, searched as llama.cpp's
// make_qkx2_quants (asymmetric) and make_qx_quants (symmetric) do (ggml-quants.c), adapted
// to the stored form: an integer zero point and a positive scale.

/** make_qkx2_quants' candidate grid, the values Q4_K uses: iscale = (rmin + rdelta·is + nmax) / (max − min), is = 0..nstep. */
export const LSQ_ASYMMETRIC = { rmin: -1, rdelta: 0.1, nstep: 20 } as const;
/** make_qx_quants' candidate grid: iscale = (nmax + delta·is) / max, is = −steps..steps. */
export const LSQ_SYMMETRIC = { steps: 9, delta: 0.1 } as const;
/** Rounds of re-rounding and scale refit after the search (refitScale). */
export const LSQ_REFITS = 4;

/**
 * The candidates' numerators as the searches below compute them, for lsq.wat: asymmetric
 * rmin + rdelta·is + nmax (is = 0..nstep), symmetric delta·is (is = −steps..steps).
 */
export function lsqTable(p: IntParams): Float64Array {
  const out: number[] = [];
  if (p.scheme === 'asymmetric') {
    const { rmin, rdelta, nstep } = LSQ_ASYMMETRIC;
    const nmax = p.qMax - p.qMin;
    for (let is = 0; is <= nstep; is++) out.push(rmin + rdelta * is + nmax);
  } else {
    const { steps, delta } = LSQ_SYMMETRIC;
    for (let is = -steps; is <= steps; is++) out.push(delta * is);
  }
  return Float64Array.from(out);
}

/**
 * The scale and zero point of one group (channel, or the whole tensor) by least squares.
 * `range` is the calibrated one (min-max unless calibration says otherwise): the search
 * starts from it, and its round-to-nearest parameters are a candidate too, so the result
 * is never worse than rtn by the (weighted) squared error. Sums are float64.
 */
export function lsqGroup(x: Float32Array, range: Range, p: IntParams, w?: Weights): GroupParams {
  const rtn = paramsFromRange(range, p);
  if (x.length === 0) return rtn;
  const start = { ...rtn, err: storedError(x, w, rtn.scale, rtn.zeroPoint, p.qMin, p.qMax).err };
  const searched = p.scheme === 'asymmetric' ? searchAsymmetric(x, range, p, w, start) : searchSymmetric(x, range, p, w, start);
  let best = refitScale(x, w, searched, p.qMin, p.qMax, LSQ_REFITS);
  if (p.scheme === 'asymmetric') {
    // The rounded zero point may be one step off the best: each neighbour gets the same refit.
    const centre = best.zeroPoint;
    for (const zp of [centre - 1, centre + 1]) {
      if (zp < p.qMin || zp > p.qMax) continue;
      const start = { scale: best.scale, zeroPoint: zp, err: storedError(x, w, best.scale, zp, p.qMin, p.qMax).err };
      const next = refitScale(x, w, start, p.qMin, p.qMax, LSQ_REFITS);
      if (next.err < best.err) best = next;
    }
  }
  return { scale: best.scale, zeroPoint: best.zeroPoint };
}

type Scored = GroupParams & { err: number };

/** The candidate's exact stored-form error, replacing best when lower. */
function consider(x: Float32Array, w: Weights, p: IntParams, scale: number, zeroPoint: number, best: Scored): Scored {
  if (!(scale > 0) || !Number.isFinite(scale)) return best;
  const err = storedError(x, w, scale, zeroPoint, p.qMin, p.qMax).err;
  return err < best.err ? { scale, zeroPoint, err } : best;
}

/**
 * make_qkx2_quants: for each iscale, l = clamp(round(iscale·(x − min)), 0, nmax), then the
 * 2×2 weighted least squares x ≈ d·l + m (with m = 0 and d = Σwlx/Σwl² if m > 0). Ours
 * stores m as an integer zero point, so each candidate's zero point is round(−m/d), its
 * scale refitted with that zero point held, and candidates are compared by the error of
 * that form (Σw(x − d(l − zp))², from the same sums); the winner is scored exactly.
 */
function searchAsymmetric(x: Float32Array, range: Range, p: IntParams, w: Weights, start: Scored): Scored {
  const min = Math.min(range.lo, 0);
  const max = Math.max(range.hi, 0);
  if (!(max > min)) return start;
  const nmax = p.qMax - p.qMin;
  let sw = 0;
  let swx = 0;
  let swx2 = 0;
  for (let i = 0; i < x.length; i++) {
    const wi = w ? w[i]! : 1;
    const v = x[i]!;
    sw += wi;
    swx += wi * v;
    swx2 += wi * v * v;
  }
  let bestErr = start.err;
  let pick: { d: number; zp: number } | undefined;
  const { rmin, rdelta, nstep } = LSQ_ASYMMETRIC;
  for (let is = 0; is <= nstep; is++) {
    const iscale = (rmin + rdelta * is + nmax) / (max - min);
    let swl = 0;
    let swl2 = 0;
    let swlx = 0;
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      const l = roundClamp(iscale * (v - min), 0, nmax);
      const wi = w ? w[i]! : 1;
      swl += wi * l;
      swl2 += wi * l * l;
      swlx += wi * l * v;
    }
    const D = sw * swl2 - swl * swl;
    if (!(D > 0)) continue;
    let d = (sw * swlx - swx * swl) / D;
    let m = (swl2 * swx - swl * swlx) / D;
    if (m > 0) {
      m = 0;
      d = swlx / swl2;
    }
    if (!(d > 0)) continue;
    const zp = clamp(rint(-m / d), 0, nmax);
    const num = swlx - zp * swx;
    const den = swl2 - 2 * zp * swl + zp * zp * sw;
    if (!(den > 0)) continue;
    const d2 = num / den;
    if (!(d2 > 0)) continue;
    const err = swx2 - 2 * d2 * num + d2 * d2 * den;
    if (err < bestErr) {
      bestErr = err;
      pick = { d: d2, zp: zp + p.qMin };
    }
  }
  return pick ? consider(x, w, p, f32(pick.d), pick.zp, start) : start;
}

/**
 * make_qx_quants: l = clamp(round(iscale·x), −nmax, nmax − 1) for iscale = (nmax + 0.1·is)/|max|,
 * keeping the candidate with the largest (Σwxl)²/Σwl² (the least-squares error at
 * d = Σwxl/Σwl² is Σwx² minus it). llama.cpp lets the scale's sign follow the extreme value
 * so that it always lands on −nmax; ours stay positive (DequantizeLinear, MatMulNBits and the
 * tensor API take them so), so a positive extreme is centred on q_max = nmax − 1 instead.
 */
function searchSymmetric(x: Float32Array, range: Range, p: IntParams, w: Weights, start: Scored): Scored {
  const amax = range.hi;
  if (!(amax > 0)) return start;
  let extreme = 0;
  for (let i = 0; i < x.length; i++) if (Math.abs(x[i]!) > Math.abs(extreme)) extreme = x[i]!;
  const base = extreme < 0 ? -p.qMin : p.qMax;
  let best = -Infinity;
  let d = 0;
  const { steps, delta } = LSQ_SYMMETRIC;
  for (let is = -steps; is <= steps; is++) {
    const iscale = (base + delta * is) / amax;
    let sumlx = 0;
    let suml2 = 0;
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      const l = roundClamp(iscale * v, p.qMin, p.qMax);
      const wi = w ? w[i]! : 1;
      sumlx += wi * v * l;
      suml2 += wi * l * l;
    }
    if (!(suml2 > 0) || !(sumlx > 0)) continue;
    const score = (sumlx * sumlx) / suml2;
    if (score > best) {
      best = score;
      d = sumlx / suml2;
    }
  }
  return d > 0 ? consider(x, w, p, f32(d), 0, start) : start;
}
