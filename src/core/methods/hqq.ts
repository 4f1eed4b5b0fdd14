import { paramsFromRange, type IntParams, type Range } from '../calibrate.js';
import { clamp, f32, mulSat, rint } from '../round.js';
import { roundClamp, type GroupParams } from './stored.js';

// Half-quadratic quantization (HQQ, mobiusml/hqq hqq/core/optimize.py): the scale and zero
// point are refined by alternating a proximal step on the error (the generalised soft
// threshold of an Lp norm, p < 1) with a closed-form update of the parameters.

/** HQQ's published defaults (optimize_weights_proximal; onnxruntime's HQQ quantizer uses the same). */
export const HQQ_DEFAULTS = { lpNorm: 0.7, beta: 10, kappa: 1.01, iters: 20 } as const;

/** shrink_lp_op: sign(e)·max(|e| − |e|^(p−1)/β, 0). */
export function shrinkLp(e: number, beta: number, p: number): number {
  const a = Math.abs(e);
  if (a === 0) return 0;
  const r = a - a ** (p - 1) / beta;
  return r > 0 ? Math.sign(e) * r : 0;
}

/**
 * Below |e| = β^(−1/(2−p)) shrinkLp is 0 (|e| − |e|^(p−1)/β > 0 ⇔ |e|^(2−p) > 1/β), and most
 * rounding errors are: the power is computed only above (a margin keeps the boundary exact).
 */
function zeroBelow(beta: number, p: number): number {
  return beta ** (-1 / (2 - p)) * (1 - 1e-9);
}

/**
 * β and the shrink's threshold of each iteration as hqqGroup computes them (β·κ each
 * step), [β₀, t₀, β₁, t₁, ...], for hqq.wat.
 */
export function hqqTable(opts: typeof HQQ_DEFAULTS = HQQ_DEFAULTS): Float64Array {
  const out = new Float64Array(2 * opts.iters);
  let beta = opts.beta;
  for (let it = 0; it < opts.iters; it++) {
    out[2 * it] = beta;
    out[2 * it + 1] = zeroBelow(beta, opts.lpNorm);
    beta *= opts.kappa;
  }
  return out;
}

/**
 * One group (channel, or the whole tensor). Each iteration quantizes in the stored form
 * (integer zero point, x / scale as QuantizeLinear rounds), scores it by the squared error
 * (what the report measures), then takes the proximal step W_e = shrink(W − W_r, β) and the
 * closed-form update of the parameters on W − W_e: HQQ's sp2 updates the zero alone,
 * z = mean(W_q − (W − W_e)·s⁻¹); a zero point that must be an integer would undo most of
 * that, so the scale is solved with it, as the least-squares fit of W_q on (W − W_e)
 * (s⁻¹ = cov/var, z = mean(W_q) − s⁻¹·mean(W − W_e); symmetric: z = 0, s⁻¹ = ΣW_q(W−W_e)/Σ(W−W_e)²),
 * and β ← κβ. The iteration starts from the round-to-nearest parameters of the calibrated
 * range, stops early as soon as the error stops falling (HQQ's early stop), and returns
 * the best parameters seen, never the last (so never worse than rtn).
 */
export function hqqGroup(x: Float32Array, range: Range, p: IntParams, opts: typeof HQQ_DEFAULTS = HQQ_DEFAULTS): GroupParams {
  const rtn = paramsFromRange(range, p);
  const n = x.length;
  if (n === 0) return rtn;
  const symmetric = p.scheme === 'symmetric';
  let scale = rtn.scale;
  let z = rtn.zeroPoint;
  let beta = opts.beta;
  let best: GroupParams = rtn;
  let bestErr = Infinity;
  for (let it = 0; it < opts.iters; it++) {
    const tiny = zeroBelow(beta, opts.lpNorm);
    const zp = symmetric ? 0 : clamp(rint(z), p.qMin, p.qMax);
    let err = 0;
    let sq = 0;
    let st = 0;
    let sqt = 0;
    let stt = 0;
    for (let i = 0; i < n; i++) {
      const v = x[i]!;
      const q = roundClamp(f32(v / scale), p.qMin - zp, p.qMax - zp) + zp;
      const r = mulSat(q - zp, scale);
      const e = v - r;
      err += e * e;
      const t = Math.abs(e) < tiny ? v : v - shrinkLp(e, beta, opts.lpNorm);
      sq += q;
      st += t;
      sqt += q * t;
      stt += t * t;
    }
    if (!(err < bestErr)) break;
    bestErr = err;
    best = { scale, zeroPoint: zp };
    let inv: number;
    if (symmetric) {
      inv = sqt / stt;
    } else {
      const mq = sq / n;
      const mt = st / n;
      inv = (sqt - n * mq * mt) / (stt - n * mt * mt);
      z = mq - inv * mt;
    }
    const next = f32(1 / inv);
    if (!(next > 0) || !Number.isFinite(next)) break;
    scale = next;
    beta *= opts.kappa;
  }
  return best;
}
