import { paramsFromRange, type IntParams, type Range } from '../calibrate.js';
import { clamp, f32, mulSat, rint } from '../round.js';
import { powApprox, powerConstants } from './hqq-power.js';
import { roundClamp, type GroupParams } from './stored.js';

// Half-quadratic quantization (HQQ, mobiusml/hqq hqq/core/optimize.py): the scale and zero
// point are refined by alternating a proximal step on the error (the generalised soft
// threshold of an Lp norm, p < 1) with a closed-form update of the parameters. As HQQ itself,
// the iteration runs in float32 (here every step, so hqq.wat can hold four groups in a
// vector and repeat it bit for bit); only the score that picks the best parameters is float64.

/** HQQ's published defaults (optimize_weights_proximal; onnxruntime's HQQ quantizer uses the same). */
export const HQQ_DEFAULTS = { lpNorm: 0.7, beta: 10, kappa: 1.01, iters: 20 } as const;

/** shrink_lp_op, exactly: sign(e)·max(|e| − |e|^(p−1)/β, 0) (what hqqGroup approximates). */
export function shrinkLp(e: number, beta: number, p: number): number {
  const a = Math.abs(e);
  if (a === 0) return 0;
  const r = a - a ** (p - 1) / beta;
  return r > 0 ? Math.sign(e) * r : 0;
}

/**
 * Below |e| = β^(−1/(2−p)) the exact shrink is 0 (|e| − |e|^(p−1)/β > 0 ⇔ |e|^(2−p) > 1/β), and
 * most rounding errors are: the power is taken only from the first float32 at or above it
 * less a margin (so that no |e| the exact shrink moves is left out).
 */
function threshold(beta: number, p: number): number {
  const t = beta ** (-1 / (2 - p)) * (1 - 1e-9);
  const r = new Float32Array([t]);
  // below t: the next float32 up (t > 0, so one more in the bits)
  if (r[0]! < t) new Int32Array(r.buffer)[0] += 1;
  return r[0]!;
}

/** Per iteration, the float32 β and threshold hqqGroup uses, [β₀, t₀, β₁, t₁, ...] (β·κ each step in float64, then rounded). */
export function hqqTable(opts: typeof HQQ_DEFAULTS = HQQ_DEFAULTS): Float32Array {
  const out = new Float32Array(2 * opts.iters);
  let beta = opts.beta;
  for (let it = 0; it < opts.iters; it++) {
    out[2 * it] = beta;
    // of the float32 β the shrink divides by
    out[2 * it + 1] = threshold(out[2 * it]!, opts.lpNorm);
    beta *= opts.kappa;
  }
  return out;
}

const DEFAULT_TABLE = hqqTable();
const DEFAULT_POWER = powerConstants(HQQ_DEFAULTS.lpNorm - 1);

/** a ↦ a^(p−1) for a float32 a at or above the threshold: hqq-power.ts's approximation unless a test swaps it. */
export type HqqPower = (a: number) => number;

/**
 * One group (channel, or the whole tensor). Each iteration quantizes in the stored form
 * (integer zero point, x / scale as QuantizeLinear rounds), scores it by the squared error
 * (what the report measures; float64, e² exact), then takes the proximal step
 * W_e = shrink(W − W_r, β) and the closed-form update of the parameters on T = W − W_e: HQQ's
 * sp2 updates the zero alone, z = mean(W_q − T·s⁻¹); a zero point that must be an integer
 * would undo most of that, so the scale is solved with it, as the least-squares fit of W_q on T
 * (s⁻¹ = cov/var, z = mean(W_q) − s⁻¹·mean(T); symmetric: z = 0, s⁻¹ = ΣW_q·T/ΣT²), and β ← κβ.
 * The iteration starts from the round-to-nearest parameters of the calibrated range, stops
 * early as soon as the error stops falling (HQQ's early stop), and returns the best
 * parameters seen, never the last (so never worse than rtn).
 *
 * Float32 throughout but the score: e = W − W_r, the shrink (its power by powApprox), and the
 * fit's sums, added element by element in order. The asymmetric fit's sums are of W_q − zp
 * (the integers l) and T − c, c the centre of rtn's grid: the covariance and variance are the
 * same, and float32 does not lose them to cancellation on groups far from zero.
 */
export function hqqGroup(x: Float32Array, range: Range, p: IntParams, opts: typeof HQQ_DEFAULTS = HQQ_DEFAULTS, power?: HqqPower): GroupParams {
  const rtn = paramsFromRange(range, p);
  const n = x.length;
  if (n === 0) return rtn;
  const symmetric = p.scheme === 'symmetric';
  const table = opts === HQQ_DEFAULTS ? DEFAULT_TABLE : hqqTable(opts);
  const consts = opts === HQQ_DEFAULTS ? DEFAULT_POWER : powerConstants(opts.lpNorm - 1);
  const c = symmetric ? 0 : f32(f32((p.qMin + p.qMax) / 2 - rtn.zeroPoint) * rtn.scale);
  let scale = rtn.scale;
  let z = rtn.zeroPoint;
  let best: GroupParams = rtn;
  let bestErr = Infinity;
  for (let it = 0; it < opts.iters; it++) {
    const beta = table[2 * it]!;
    const tiny = table[2 * it + 1]!;
    const zp = symmetric ? 0 : clamp(rint(z), p.qMin, p.qMax);
    let err = 0;
    let sl = 0;
    let st = 0;
    let slt = 0;
    let stt = 0;
    for (let i = 0; i < n; i++) {
      const v = x[i]!;
      const l = roundClamp(f32(v / scale), p.qMin - zp, p.qMax - zp);
      const e = f32(v - mulSat(l, scale));
      err += e * e;
      const a = Math.abs(e);
      let t = v;
      if (!(a < tiny)) {
        const s = f32(a - f32((power ? power(a) : powApprox(a, consts)) / beta));
        if (s > 0) t = f32(v - (e < 0 ? -s : s));
      }
      const tc = f32(t - c);
      sl = f32(sl + l);
      st = f32(st + tc);
      slt = f32(slt + f32(l * tc));
      stt = f32(stt + f32(tc * tc));
    }
    if (!(err < bestErr)) break;
    bestErr = err;
    best = { scale, zeroPoint: zp };
    let inv: number;
    if (symmetric) {
      inv = f32(slt / stt);
    } else {
      const ml = f32(sl / n);
      const mt = f32(st / n);
      inv = f32(f32(slt - f32(f32(n * ml) * mt)) / f32(stt - f32(f32(n * mt) * mt)));
      z = f32(f32(ml + zp) - f32(inv * f32(mt + c)));
    }
    const next = f32(1 / inv);
    if (!(next > 0) || !Number.isFinite(next)) break;
    scale = next;
  }
  return best;
}
