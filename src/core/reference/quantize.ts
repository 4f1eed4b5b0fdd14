import { INT_DTYPE_INFO, type UnpackedArray } from '../dtypes.js';
import { minmaxRange } from '../calibrate.js';
import type { ErrorSums, ParamPlan, QuantParams } from '../quantize.js';
import { clamp, f32, mulSat, rint } from '../round.js';

// The reference implementation: the formulas written as plainly as possible, one element at
// a time. It is the oracle the WebAssembly kernels are tested against bit for bit, and the
// path for inputs the kernels hand back (NaN, or reconstructions that overflow float32).

/** Calls fn(elementIndex, paramIndex) for every element in memory order. */
export function forEachElement(plan: ParamPlan, fn: (idx: number, p: number) => void): void {
  let idx = 0;
  for (let o = 0; o < plan.outer; o++) {
    for (let a = 0; a < plan.len; a++) {
      const base = o * plan.outerStride + ((a / plan.group) | 0) * plan.axisStride;
      for (let i = 0; i < plan.inner; i++) fn(idx++, base + i * plan.innerStride);
    }
  }
}

/** The values of each parameter's group, laid out contiguously, group p at [offsets[p], offsets[p+1]). */
export function groupValuesReference(x: Float32Array, plan: ParamPlan): { values: Float32Array; offsets: Float64Array } {
  if (plan.count === 1) return { values: x, offsets: Float64Array.of(0, x.length) };
  const offsets = new Float64Array(plan.count + 1);
  forEachElement(plan, (_idx, p) => {
    offsets[p + 1]!++;
  });
  for (let p = 0; p < plan.count; p++) offsets[p + 1]! += offsets[p]!;
  const cursor = offsets.slice(0, plan.count);
  const values = new Float32Array(x.length);
  forEachElement(plan, (idx, p) => {
    values[cursor[p]!++] = x[idx]!;
  });
  return { values, offsets };
}

/** Per-parameter min and max (the asymmetric min-max range of each group). */
export function minmaxRangesReference(x: Float32Array, plan: ParamPlan): { lo: Float32Array; hi: Float32Array } {
  const { values, offsets } = groupValuesReference(x, plan);
  const lo = new Float32Array(plan.count);
  const hi = new Float32Array(plan.count);
  for (let p = 0; p < plan.count; p++) {
    const r = minmaxRange(values.subarray(offsets[p]!, offsets[p + 1]!), 'asymmetric');
    lo[p] = r.lo;
    hi[p] = r.hi;
  }
  return { lo, hi };
}

/**
 * q = clamp(round(x / scale) + zero_point, q_min, q_max), with x / scale a float32 division
 * and ties to even; the error sums compare x with (q - zero_point) * scale in float32,
 * accumulated in float64 in element order.
 */
export function quantizeWithReference(x: Float32Array, params: QuantParams, out?: UnpackedArray): { q: UnpackedArray; sums: ErrorSums } {
  const q = out ?? INT_DTYPE_INFO[params.dtype].create(x.length);
  const { scale, zeroPoint, qMin, qMax } = params;
  const sums: ErrorSums = { count: x.length, clipped: 0, maxError: 0, sumAbs: 0, sumSq: 0, sumX2: 0 };
  let nonFinite = 0;
  forEachElement(params.plan, (idx, p) => {
    const v = x[idx]!;
    const s = scale[p]!;
    const zp = zeroPoint[p]!;
    const raw = rint(f32(v / s)) + zp;
    if (raw < qMin || raw > qMax) sums.clipped++;
    // onnxruntime's QuantizeLinear: NaN gives the zero point, ±Inf saturate (as clamp does).
    const qv = Number.isNaN(raw) ? zp : clamp(raw, qMin, qMax);
    q[idx] = qv;
    // The error report covers the finite elements; NaN and ±Inf are counted apart.
    if (v - v !== 0) {
      nonFinite++;
      return;
    }
    const e = Math.abs(v - mulSat(qv - zp, s));
    if (e > sums.maxError) sums.maxError = e;
    sums.sumAbs += e;
    sums.sumSq += e * e;
    sums.sumX2 += v * v;
  });
  if (nonFinite > 0) {
    sums.count -= nonFinite;
    sums.nonFinite = nonFinite;
  }
  return { q, sums };
}

/** x_hat = (q - zero_point) * scale in float32 (saturating at ±FLT_MAX rather than overflowing). */
export function dequantizeWithReference(
  q: ArrayLike<number>,
  params: Pick<QuantParams, 'plan' | 'scale' | 'zeroPoint'>,
  out?: Float32Array,
): Float32Array {
  const x = out ?? new Float32Array(q.length);
  const { scale, zeroPoint } = params;
  forEachElement(params.plan, (idx, p) => {
    x[idx] = mulSat(q[idx]! - zeroPoint[p]!, scale[p]!);
  });
  return x;
}
