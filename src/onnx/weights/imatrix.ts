import { minmaxRanges } from '../../core/kernels/calibrate.js';
import { groupValues } from '../../core/groups.js';
import { reportFromSums } from '../../core/metrics.js';
import { lsqGroup } from '../../core/methods/lsq.js';
import { intParamsOf, planParams, quantizeWith, type QuantParams } from '../../core/quantize.js';
import { axisLayout } from '../../core/shape.js';
import type { ModelQuantOptions } from './options.js';
import type { WeightPlan } from './plan.js';
import type { QuantizedWeight } from './quantize-weight.js';

// method=imatrix: each group's scale and zero point by lsq's weighted least squares, each
// element weighted by the importance of its input feature, mean x_k² over the calibration
// activations (diag XᵀX / rows: llama.cpp's imatrix, GPTQ's diagonal Hessian). That weighting
// makes the group's fit minimize Σ_k H_kk (w_k − ŵ_k)², the diagonal part of the output error.
// Every layout and granularity the plan can have (per group along K, per output channel).

/** The importance of each element of a weight of `dims` whose input features run along kAxis. */
export function elementImportance(dims: readonly number[], kAxis: number, importance: Float64Array): Float32Array {
  const { outer, len, inner } = axisLayout(dims, kAxis);
  const w = new Float32Array(outer * len * inner);
  for (let o = 0; o < outer; o++) {
    for (let k = 0; k < len; k++) {
      const base = (o * len + k) * inner;
      w.fill(importance[k]!, base, base + inner);
    }
  }
  return w;
}

export function quantizeImatrix(values: Float32Array, dims: readonly number[], plan: WeightPlan, opts: Pick<ModelQuantOptions, 'scheme'>, kAxis: number, meanSq: Float64Array): QuantizedWeight {
  const ip = intParamsOf(plan.bits, opts.scheme);
  const pp = planParams(dims, plan.granularity, plan.axis, plan.groupSize);
  const w = elementImportance(dims, kAxis, meanSq);
  const xs = groupValues(values, pp);
  const ws = groupValues(w, pp);
  const { lo, hi } = minmaxRanges(values, pp);
  const scale = new Float32Array(pp.count);
  const zeroPoint = new Int32Array(pp.count);
  for (let p = 0; p < pp.count; p++) {
    const from = xs.offsets[p]!;
    const to = xs.offsets[p + 1]!;
    const alpha = Math.max(Math.abs(lo[p]!), Math.abs(hi[p]!));
    const range = opts.scheme === 'asymmetric' ? { lo: lo[p]!, hi: hi[p]! } : { lo: -alpha, hi: alpha };
    const sz = lsqGroup(xs.values.subarray(from, to), range, ip, ws.values.subarray(from, to));
    scale[p] = sz.scale;
    zeroPoint[p] = sz.zeroPoint;
  }
  const params: QuantParams = { ...ip, plan: pp, scale, zeroPoint };
  const { q, sums } = quantizeWith(values, params);
  return { params, q, error: reportFromSums(sums) };
}
