import { reportFromSums, type ErrorReport } from '../../core/metrics.js';
import { dequantizeWith, type QuantParams } from '../../core/quantize.js';

// The tensor API's error report for a weight whose integers were not rounded from the
// weight itself (GPTQ updates the columns it has not reached yet; AWQ stores W·s): the
// figures compare the original weight with what the model computes with, and `clipped`
// counts the elements further from their reconstruction than half a step of their group.

export function errorBetween(x: Float32Array, xHat: Float32Array, params: Pick<QuantParams, 'plan' | 'scale'>): ErrorReport {
  // Each element's step: its group's scale, by dequantizing 1 with zero points of 0.
  const step = dequantizeWith(new Int32Array(x.length).fill(1), { plan: params.plan, scale: params.scale, zeroPoint: new Int32Array(params.scale.length) });
  let maxError = 0;
  let sumAbs = 0;
  let sumSq = 0;
  let sumX2 = 0;
  let clipped = 0;
  for (let i = 0; i < x.length; i++) {
    const e = Math.abs(x[i]! - xHat[i]!);
    if (e > maxError) maxError = e;
    sumAbs += e;
    sumSq += e * e;
    sumX2 += x[i]! * x[i]!;
    if (e > 0.5 * step[i]! * (1 + 1e-6)) clipped++;
  }
  return reportFromSums({ count: x.length, clipped, maxError, sumAbs, sumSq, sumX2 });
}
