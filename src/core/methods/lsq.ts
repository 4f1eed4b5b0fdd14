import { paramsFromRange, type IntParams, type Range } from '../calibrate.js';
import { clamp, f32, rint } from '../round.js';
import { lsqAcceptBelow, LSQ_F32_CHECK_MAX, refitScaleF32, scoreF32 } from './refit-f32.js';
import { roundClamp, storedError, type GroupParams, type Weights } from './stored.js';

// Closed-form weighted least-squares refit of scale and minimum, searched as llama.cpp's
// make_qkx2_quants (asymmetric) and make_qx_quants (symmetric) do (ggml-quants.c), adapted
// to the stored form: an integer zero point and a positive scale.

/** make_qkx2_quants' candidate grid, the values Q4_K uses: iscale = (rmin + rdelta·is + nmax) / (max − min), is = 0..nstep. */
export const LSQ_ASYMMETRIC = { rmin: -1, rdelta: 0.1, nstep: 20 } as const;
/** make_qx_quants' candidate grid: iscale = (nmax + delta·is) / max, is = −steps..steps. */
export const LSQ_SYMMETRIC = { steps: 9, delta: 0.1 } as const;
/** Rounds of re-rounding and scale refit after the search (refitScaleF32). */
export const LSQ_REFITS = 4;
/** Whether the asymmetric search also tries the zero points one step either side of the result, each refitted. */
export const LSQ_NEIGHBOURS = true;
/**
 * Refit rounds of each neighbouring zero point: two keep most of their gain at 8.6 scoring
 * passes instead of 11 (4-bit g32 on N(0, 1): 0.009 dB below four rounds; one round, 6.7
 * passes, 0.017 dB below, narrows the test's 0.1 dB to the best grid to 0.011; bench/README.md).
 */
export const LSQ_NEIGHBOUR_REFITS = 2;

/**
 * The candidates' numerators, float32 (methods/lsq.ts and lsq.wat both read them from here):
 * asymmetric f32(rmin + rdelta·is + nmax) (is = 0..nstep), symmetric f32(delta·is)
 * (is = −steps..steps).
 */
export function lsqTable(p: IntParams): Float32Array {
  const out: number[] = [];
  if (p.scheme === 'asymmetric') {
    const { rmin, rdelta, nstep } = LSQ_ASYMMETRIC;
    const nmax = p.qMax - p.qMin;
    for (let is = 0; is <= nstep; is++) out.push(rmin + rdelta * is + nmax);
  } else {
    const { steps, delta } = LSQ_SYMMETRIC;
    for (let is = -steps; is <= steps; is++) out.push(delta * is);
  }
  return Float32Array.from(out);
}

/**
 * The scale and zero point of one group (channel, or the whole tensor) by least squares.
 * `range` is the calibrated one (min-max unless calibration says otherwise): the search
 * starts from it. The search and the refit compute in float32, as llama.cpp does (the
 * kernel's four groups to a vector); the result replaces rtn's parameters only where its
 * error in the stored form is surely lower (lsqAcceptBelow's bound on the float32 scores;
 * weighted and very long groups by the exact float64 errors), so it is never worse than rtn.
 */
export function lsqGroup(x: Float32Array, range: Range, p: IntParams, w?: Weights): GroupParams {
  const rtn = paramsFromRange(range, p);
  if (x.length === 0) return rtn;
  const floor = scoreF32(x, w, rtn.scale, rtn.zeroPoint, p.qMin, p.qMax);
  const table = lsqTable(p);
  const pick = p.scheme === 'asymmetric' ? searchAsymmetric(x, range, p, w, table, floor.err) : searchSymmetric(x, range, p, w, table);
  const start = pick ? scoreF32(x, w, pick.scale, pick.zeroPoint, p.qMin, p.qMax) : floor;
  let best = refitScaleF32(x, w, start, p.qMin, p.qMax, LSQ_REFITS);
  if (p.scheme === 'asymmetric' && LSQ_NEIGHBOURS) {
    // The rounded zero point may be one step off the best: each neighbour gets the same refit.
    const centre = best.zeroPoint;
    for (const zp of [centre - 1, centre + 1]) {
      if (zp < p.qMin || zp > p.qMax) continue;
      const next = refitScaleF32(x, w, scoreF32(x, w, best.scale, zp, p.qMin, p.qMax), p.qMin, p.qMax, LSQ_NEIGHBOUR_REFITS);
      if (next.err < best.err) best = next;
    }
  }
  if (best.scale === rtn.scale && best.zeroPoint === rtn.zeroPoint) return rtn;
  const better = !w && x.length <= LSQ_F32_CHECK_MAX
    ? best.err < lsqAcceptBelow(floor.err, x.length)
    : storedError(x, w, best.scale, best.zeroPoint, p.qMin, p.qMax).err < storedError(x, w, rtn.scale, rtn.zeroPoint, p.qMin, p.qMax).err;
  return better ? { scale: best.scale, zeroPoint: best.zeroPoint } : rtn;
}

/**
 * make_qkx2_quants in float32: for each iscale = f32(num / f32(max − min)), l = clamp(
 * round(f32(iscale·f32(x − min))), 0, nmax), the sums Σwl, Σ(wl)l, Σ(wl)x, then the 2×2
 * weighted least squares x ≈ d·l + m (m = 0 and d = Σwlx/Σwl² if m > 0). Ours stores m as an
 * integer zero point, so each candidate's zero point is round(−m/d), its scale refitted
 * with that zero point held, and candidates are compared by the error of that form (Σw(x −
 * d(l − zp))², from the same sums) against `bound` (rtn's float32 score) and each other.
 */
function searchAsymmetric(x: Float32Array, range: Range, p: IntParams, w: Weights, table: Float32Array, bound: number): GroupParams | undefined {
  const min = f32(Math.min(range.lo, 0));
  const max = f32(Math.max(range.hi, 0));
  if (!(max > min)) return undefined;
  const width = f32(max - min);
  const nmax = p.qMax - p.qMin;
  let sw = 0;
  let swx = 0;
  let swx2 = 0;
  for (let i = 0; i < x.length; i++) {
    const wi = w ? w[i]! : 1;
    const wx = f32(wi * x[i]!);
    sw = f32(sw + wi);
    swx = f32(swx + wx);
    swx2 = f32(swx2 + f32(wx * x[i]!));
  }
  let bestErr = bound;
  let pick: GroupParams | undefined;
  for (let c = 0; c < table.length; c++) {
    const iscale = f32(table[c]! / width);
    let swl = 0;
    let swl2 = 0;
    let swlx = 0;
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      const l = roundClamp(f32(iscale * f32(v - min)), 0, nmax);
      const wl = w ? f32(w[i]! * l) : l;
      swl = f32(swl + wl);
      swl2 = f32(swl2 + f32(wl * l));
      swlx = f32(swlx + f32(wl * v));
    }
    const D = f32(f32(sw * swl2) - f32(swl * swl));
    if (!(D > 0)) continue;
    let d = f32(f32(f32(sw * swlx) - f32(swx * swl)) / D);
    let m = f32(f32(f32(swl2 * swx) - f32(swl * swlx)) / D);
    if (m > 0) {
      m = 0;
      d = f32(swlx / swl2);
    }
    if (!(d > 0)) continue;
    const zp = clamp(rint(f32(-m / d)), 0, nmax);
    const num = f32(swlx - f32(zp * swx));
    const den = f32(f32(swl2 - f32(f32(2 * zp) * swl)) + f32(f32(zp * zp) * sw));
    if (!(den > 0)) continue;
    const d2 = f32(num / den);
    if (!(d2 > 0) || d2 === Infinity) continue;
    const err = f32(f32(swx2 - f32(f32(2 * d2) * num)) + f32(f32(d2 * d2) * den));
    if (err < bestErr) {
      bestErr = err;
      pick = { scale: d2, zeroPoint: zp + p.qMin };
    }
  }
  return pick;
}

/**
 * make_qx_quants in float32: l = clamp(round(f32(iscale·x)), q_min, q_max) for iscale =
 * f32(f32(base + delta·is) / |max|), keeping the candidate with the largest f32(Σ(wl)x)²/Σ(wl)l
 * (the least-squares error at d = Σwxl/Σwl² is Σwx² minus it). llama.cpp lets the scale's
 * sign follow the extreme value so that it always lands on −nmax; ours stay positive
 * (DequantizeLinear, MatMulNBits and the tensor API take them so), so a positive extreme is
 * centred on q_max = nmax − 1 instead.
 */
function searchSymmetric(x: Float32Array, range: Range, p: IntParams, w: Weights, table: Float32Array): GroupParams | undefined {
  const amax = f32(range.hi);
  if (!(amax > 0)) return undefined;
  let extreme = 0;
  for (let i = 0; i < x.length; i++) if (Math.abs(x[i]!) > Math.abs(extreme)) extreme = x[i]!;
  const base = extreme < 0 ? -p.qMin : p.qMax;
  let best = -Infinity;
  let d = 0;
  for (let c = 0; c < table.length; c++) {
    const iscale = f32(f32(base + table[c]!) / amax);
    let sumlx = 0;
    let suml2 = 0;
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      const l = roundClamp(f32(iscale * v), p.qMin, p.qMax);
      const wl = w ? f32(w[i]! * l) : l;
      sumlx = f32(sumlx + f32(wl * v));
      suml2 = f32(suml2 + f32(wl * l));
    }
    if (!(suml2 > 0) || !(sumlx > 0)) continue;
    const score = f32(f32(sumlx * sumlx) / suml2);
    if (score > best) {
      best = score;
      d = f32(sumlx / suml2);
    }
  }
  return d > 0 && d < Infinity ? { scale: d, zeroPoint: 0 } : undefined;
}
