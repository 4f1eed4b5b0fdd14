import type { IntDType, UnpackedArray } from '../../core/dtypes.js';
import { reportFromSums, type ErrorReport } from '../../core/metrics.js';
import { quantize, type QuantParams, type QuantSpec } from '../../core/quantize.js';
import { isDataAware, type ModelQuantOptions } from './options.js';
import type { WeightPlan } from './plan.js';

// One weight through the tensor API: the same calibrate/quantize the /v1/quantize endpoint
// runs, so a weight's report here equals that endpoint's for the same values and options.

export interface QuantizedWeight {
  params: QuantParams;
  q: UnpackedArray;
  error: ErrorReport;
}

export function specFor(plan: WeightPlan, opts: Pick<ModelQuantOptions, 'scheme' | 'calibration' | 'percentile'> & Partial<Pick<ModelQuantOptions, 'method' | 'lsqWeights'>>): QuantSpec {
  return {
    bits: plan.bits,
    scheme: opts.scheme,
    granularity: plan.granularity,
    axis: plan.axis,
    groupSize: plan.groupSize,
    calibration: opts.calibration,
    percentile: opts.percentile,
    // A data-aware method's weights without activation statistics (an embedding, say) are rounded to nearest.
    method: isDataAware(opts.method) ? 'rtn' : opts.method,
    lsqWeights: opts.lsqWeights,
  };
}

export function quantizeWeight(values: Float32Array, dims: readonly number[], plan: WeightPlan, opts: ModelQuantOptions): QuantizedWeight {
  const { params, q, sums } = quantize(values, dims, specFor(plan, opts));
  return { params, q, error: reportFromSums(sums) };
}

/** The ONNX element type a QDQ weight is stored in: 2-bit values ride in int4, no 2-bit DQ exists at these opsets. */
export function qdqContainer(bits: number, signed: boolean): IntDType {
  return `${signed ? 'int' : 'uint'}${bits === 8 ? 8 : 4}` as IntDType;
}
