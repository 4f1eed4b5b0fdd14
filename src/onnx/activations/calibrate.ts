import { RunningMinMax } from '../../core/running-minmax.js';
import { Errors } from '../../errors.js';
import type { OnnxModel } from '../proto/model.js';
import { runWithIntermediates, type CollectOptions } from '../runtime/collect.js';
import type { CalibrationSamples } from './calibration-data.js';

// Activation ranges from running the float model on calibration samples, one sample at a
// time: each tensor's statistics are reduced as its sample arrives (a running min/max, or a
// bounded histogram), so memory never grows with N.

export const ACTIVATION_CALIBRATIONS = ['minmax', 'percentile', 'entropy', 'mse'] as const;
export type ActivationCalibration = (typeof ACTIVATION_CALIBRATIONS)[number];

export interface ActivationRange {
  name: string;
  /** The chosen range (before an emitter widens it to include 0). */
  min: number;
  max: number;
  /** The raw extremes over every sample. */
  observedMin: number;
  observedMax: number;
  /** Values seen (NaN excluded); 0 means the tensor was empty on every sample and the range is [0, 0]. */
  values: number;
}

export interface CalibrateOptions extends CollectOptions {
  method: ActivationCalibration;
  /** percentile: the kept share of the distribution, in (0, 100]; 99.999 as onnxruntime. */
  percentile?: number | undefined;
  /** Histogram bins (percentile, entropy, mse); onnxruntime's defaults when omitted. */
  numBins?: number | undefined;
  /** A range ±max(|min|, |max|) (onnxruntime's CalibTensorRangeSymmetric). */
  symmetric?: boolean | undefined;
  /** What the entropy and mse searches quantize to: 8 or 16 bits. */
  bits?: number | undefined;
  /** Called after each sample. */
  onSample?: ((done: number, total: number) => void) | undefined;
}

export async function calibrateActivations(
  model: OnnxModel,
  tensorNames: readonly string[],
  samples: CalibrationSamples,
  opts: CalibrateOptions,
): Promise<Map<string, ActivationRange>> {
  if (opts.method !== 'minmax') throw new Errors.Option(`activation_calibration '${opts.method}' is not available yet`);
  const names = [...new Set(tensorNames)];
  const stats = new Map(names.map((n) => [n, new RunningMinMax()]));
  await runWithIntermediates(
    model,
    names,
    samples,
    (index, values) => {
      for (const [name, v] of values) stats.get(name)!.add(v.data);
      opts.onSample?.(index + 1, samples.count);
    },
    opts,
  );
  const out = new Map<string, ActivationRange>();
  for (const name of names) {
    const s = stats.get(name)!;
    const r = s.range(opts.symmetric === true);
    const observed = s.range(false);
    out.set(name, { name, min: r.lo, max: r.hi, observedMin: observed.lo, observedMax: observed.hi, values: s.counted });
  }
  return out;
}
