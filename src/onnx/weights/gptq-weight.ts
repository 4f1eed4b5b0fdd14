import { INT_DTYPE_INFO } from '../../core/dtypes.js';
import { gptq } from '../../core/methods/gptq.js';
import { reportFromSums } from '../../core/metrics.js';
import { intParamsOf, planParams, type QuantParams } from '../../core/quantize.js';
import { axisLayout } from '../../core/shape.js';
import type { ModelQuantOptions } from './options.js';
import type { WeightPlan } from './plan.js';
import type { QuantizedWeight } from './quantize-weight.js';

// method=gptq for one weight: the core's gptq() on the weight as [output channels, K] with
// the Hessian Σ xᵀx of its input activations, its integers and per-row group parameters laid
// out as the tensor API's (the plan's param layout), so every emitter writes them as it
// writes rtn's. Static groups along K: per group (group_size) or per channel (one group = K).

/** The weight as rows = output channels of K values each (GPTQ's W), from its own layout. */
export function weightRows(values: Float32Array, dims: readonly number[], kAxis: number): { w: Float32Array; rows: number; k: number } {
  const { outer, len: k, inner } = axisLayout(dims, kAxis);
  const rows = outer * inner;
  const w = new Float32Array(rows * k);
  for (let o = 0; o < outer; o++) {
    for (let kk = 0; kk < k; kk++) {
      const base = (o * k + kk) * inner;
      for (let i = 0; i < inner; i++) w[(o * inner + i) * k + kk] = values[base + i]!;
    }
  }
  return { w, rows, k };
}

export function quantizeGptq(values: Float32Array, dims: readonly number[], plan: WeightPlan, opts: Pick<ModelQuantOptions, 'scheme' | 'gptq'>, kAxis: number, xtx: Float64Array): QuantizedWeight {
  if (plan.granularity === 'per_tensor') throw new Error('quantizeGptq: per-tensor plans are not fitted by GPTQ');
  const { w, rows, k } = weightRows(values, dims, kAxis);
  const groupSize = plan.granularity === 'per_group' ? plan.groupSize : k;
  const r = gptq(w, rows, k, xtx, { bits: plan.bits, scheme: opts.scheme, groupSize, damp: opts.gptq.damp, blockSize: opts.gptq.blockSize, actOrder: opts.gptq.actOrder });
  const ip = intParamsOf(plan.bits, opts.scheme);
  const pp = planParams(dims, plan.granularity, plan.axis, plan.groupSize);
  const scale = new Float32Array(pp.count);
  const zeroPoint = new Int32Array(pp.count);
  const q = INT_DTYPE_INFO[ip.dtype].create(values.length);
  const { outer, inner } = axisLayout(dims, kAxis);
  let sumSq = 0;
  let sumAbs = 0;
  let sumX2 = 0;
  let maxError = 0;
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const row = o * inner + i;
      for (let kk = 0; kk < k; kk++) {
        const g = (kk / groupSize) | 0;
        const at = (o * k + kk) * inner + i;
        // The plan's parameter for this element: per channel, the channel (the element's row); per group, its block.
        const p = plan.granularity === 'per_channel' ? paramIndexPerChannel(dims, plan.axis, at) : o * pp.outerStride + g * pp.axisStride + i * pp.innerStride;
        const s = r.scales[row * r.groups + g]!;
        const zp = r.zeroPoints[row * r.groups + g]!;
        scale[p] = s;
        zeroPoint[p] = zp;
        const code = r.codes[row * k + kk]!;
        q[at] = code;
        const x = values[at]!;
        const e = Math.abs(x - Math.fround((code - zp) * s));
        sumSq += e * e;
        sumAbs += e;
        sumX2 += x * x;
        if (e > maxError) maxError = e;
      }
    }
  }
  const params: QuantParams = { ...ip, plan: pp, scale, zeroPoint };
  return { params, q, error: reportFromSums({ count: values.length, clipped: 0, maxError, sumAbs, sumSq, sumX2 }) };
}

/** Per channel the parameter is the element's index along the channel axis. */
function paramIndexPerChannel(dims: readonly number[], axis: number, at: number): number {
  const { len, inner } = axisLayout(dims, axis);
  return Math.floor(at / inner) % len;
}
