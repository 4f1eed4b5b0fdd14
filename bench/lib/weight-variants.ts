import type { QuantMethod } from '../../src/core/methods/index.js';
import { calibrate, dequantizeWith, planParams, quantizeWith, type QuantParams } from '../../src/core/quantize.js';
import { mulberry32 } from '../../src/core/random.js';
import type { ModelQuantOptions } from '../../src/onnx/weights/options.js';
import type { QuantizeModelHooks } from '../../src/onnx/weights/quantize-model.js';
import { specFor } from '../../src/onnx/weights/quantize-weight.js';
import { errorBetween } from '../../src/onnx/weights/weight-error.js';

// Equally good roundings, for the noise floor of the low-bit bench: a method's grid for every
// group (rtn's, lsq's or hqq's scales and zero points), but each element rounded after a seeded uniform
// dither u·step, u in [−τ, τ]. Only elements within τ of a rounding tie can change, and each
// one that does lands on the other neighbour of the same grid: with τ = 0.1 about τ/2 = 5% of
// the weights change and the squared error rises by 4τ² ≈ 4% on uniformly spread fractions
// (E[Δerr] = τ²/3 step² against rtn's 1/12). How much perplexity moves between such roundings
// is how much of a method's difference from rtn is luck; the mean over seeds of a method's
// dithered roundings is its expected figure with that luck averaged out.

export const DITHER_TAU = 0.1;

/** A quantizeModel hook: the data-free method's parameters, each weight rounded after a seeded dither (seed per weight, in visiting order). */
export function dithered(opts: ModelQuantOptions, method: QuantMethod, seed: number, tau = DITHER_TAU): Required<Pick<QuantizeModelHooks, 'quantizeWeight'>> & { mseRatio: () => number } {
  let weights = 0;
  let errDither = 0;
  let errPlain = 0;
  return {
    quantizeWeight: (c, plan, values) => {
      const params: QuantParams = calibrate(values, c.tensor.dims, { ...specFor(plan, opts), method });
      const pp = planParams(c.tensor.dims, plan.granularity, plan.axis, plan.groupSize);
      // Each element's step: its group's scale (dequantize 1 with zero points of 0).
      const step = dequantizeWith(new Int32Array(values.length).fill(1), { plan: pp, scale: params.scale, zeroPoint: new Int32Array(params.scale.length) });
      const next = mulberry32((seed * 7919 + weights++) >>> 0);
      const dithered = new Float32Array(values.length);
      for (let i = 0; i < values.length; i++) dithered[i] = values[i]! + (2 * (next() / 2 ** 32) - 1) * tau * step[i]!;
      const { q } = quantizeWith(dithered, params);
      const xHat = dequantizeWith(q, params);
      const plain = dequantizeWith(quantizeWith(values, params).q, params);
      for (let i = 0; i < values.length; i++) {
        errDither += (values[i]! - xHat[i]!) ** 2;
        errPlain += (values[i]! - plain[i]!) ** 2;
      }
      return { weight: { params, q, error: errorBetween(values, xHat, params) }, method: `${method}, dithered (τ ${tau}, seed ${seed})` };
    },
    mseRatio: () => (errPlain > 0 ? errDither / errPlain : 1),
  };
}
