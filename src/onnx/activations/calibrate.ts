import { entropyThreshold, mseThreshold, percentileThreshold } from '../../core/activation-thresholds.js';
import type { Range } from '../../core/calibrate.js';
import { AbsHistogram, SignedHistogram } from '../../core/histogram.js';
import { intParamsOf } from '../../core/quantize.js';
import { RunningMinMax } from '../../core/running-minmax.js';
import { Errors } from '../../errors.js';
import type { OnnxModel } from '../proto/model.js';
import { runWithExtremes, runWithIntermediates, type CollectOptions } from '../runtime/collect.js';
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
  /** Values seen (histogram methods: NaN excluded; minmax: the tensors' sizes); 0 means the tensor was empty on every sample and the range is [0, 0]. */
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

/** onnxruntime's defaults (create_calibrator), and the mse search's. */
export const DEFAULT_BINS: Record<Exclude<ActivationCalibration, 'minmax'>, number> = { percentile: 2048, entropy: 128, mse: 2048 };
export const DEFAULT_PERCENTILE = 99.999;
const MAX_NUM_BINS = 1 << 16;

/** One tensor's statistics, reduced sample by sample. */
interface Reducer {
  add(x: Float32Array): void;
  finish(): { range: Range; observed: Range; values: number };
}

function symmetricOf(r: Range): Range {
  const m = Math.max(Math.abs(r.lo), Math.abs(r.hi));
  return { lo: -m, hi: m };
}

function checkOptions(opts: CalibrateOptions): { bins: number; percentile: number; bits: number } {
  if (!(ACTIVATION_CALIBRATIONS as readonly string[]).includes(opts.method)) throw new Errors.Option(`activation_calibration must be one of ${ACTIVATION_CALIBRATIONS.join(', ')}`);
  const bins = opts.numBins ?? (opts.method === 'minmax' ? 0 : DEFAULT_BINS[opts.method]);
  if (opts.method !== 'minmax' && (!Number.isInteger(bins) || bins < 16 || bins > MAX_NUM_BINS || bins % 2 !== 0)) {
    throw new Errors.Option(`num_bins must be an even integer from 16 to ${MAX_NUM_BINS}, got ${bins}`);
  }
  const percentile = opts.percentile ?? DEFAULT_PERCENTILE;
  if (!(percentile > 0 && percentile <= 100)) throw new Errors.Option(`percentile must be in (0, 100], got ${percentile}`);
  const bits = opts.bits ?? 8;
  if (bits !== 8 && bits !== 16) throw new Errors.Option(`bits must be 8 or 16 for activation calibration, got ${bits}`);
  return { bins, percentile, bits };
}

function reducer(method: Exclude<ActivationCalibration, 'minmax'>, opts: CalibrateOptions, bins: number, percentile: number, bits: number): Reducer {
  const seen = new RunningMinMax();
  const observed = () => seen.range(false);
  const symmetric = opts.symmetric === true;
  switch (method) {
    case 'percentile': {
      // onnxruntime's percentile calibrator is symmetric unless told otherwise.
      const sym = opts.symmetric !== false;
      const h = sym ? new AbsHistogram(bins) : new SignedHistogram(bins);
      return {
        add: (x) => {
          seen.add(x);
          h.add(x);
        },
        finish: () => ({ range: seen.counted ? percentileThreshold(h, percentile, sym) : { lo: 0, hi: 0 }, observed: observed(), values: seen.counted }),
      };
    }
    case 'entropy': {
      const h = new SignedHistogram(bins);
      // TensorRT's and onnxruntime's 128 quantized bins are the int8 half range: 2^(bits-1).
      const quantizedBins = 2 ** (bits - 1);
      return {
        add: (x) => {
          seen.add(x);
          h.add(x);
        },
        finish: () => {
          const r = seen.counted ? entropyThreshold(h, quantizedBins) : { lo: 0, hi: 0 };
          return { range: symmetric ? symmetricOf(r) : r, observed: observed(), values: seen.counted };
        },
      };
    }
    case 'mse': {
      const h = new SignedHistogram(bins);
      const p = intParamsOf(bits, symmetric ? 'symmetric' : 'asymmetric');
      return {
        add: (x) => {
          seen.add(x);
          h.add(x);
        },
        finish: () => ({ range: seen.counted ? mseThreshold(h, p) : { lo: 0, hi: 0 }, observed: observed(), values: seen.counted }),
      };
    }
  }
}

/**
 * The range of each named tensor over the samples, by `method`:
 * - minmax: the extremes (NaN skipped), or ±max(|min|, |max|) when symmetric;
 * - percentile: onnxruntime's compute_percentile on its histogram (2048 bins, 99.999%,
 *   symmetric on |x| unless symmetric is false);
 * - entropy: onnxruntime's get_entropy_threshold (128 bins, 2^(bits-1) quantized bins);
 * - mse: the clip range with the least expected squared error at `bits` over a 2048-bin
 *   histogram (asymmetric unless symmetric).
 * Histograms grow as onnxruntime's do but stay within max(4·num_bins, 4096) bins (core/histogram.ts).
 */
export async function calibrateActivations(
  model: OnnxModel,
  tensorNames: readonly string[],
  samples: CalibrationSamples,
  opts: CalibrateOptions,
): Promise<Map<string, ActivationRange>> {
  const { bins, percentile, bits } = checkOptions(opts);
  const names = [...new Set(tensorNames)];
  if (opts.method === 'minmax') {
    // Reduced inside onnxruntime: no activation is copied out.
    const stats = new Map(names.map((n) => [n, new RunningMinMax()]));
    await runWithExtremes(
      model,
      names,
      samples,
      (index, extremes) => {
        for (const [name, e] of extremes) stats.get(name)!.addExtremes(e.min, e.max, e.size);
        opts.onSample?.(index + 1, samples.count);
      },
      opts,
    );
    const out = new Map<string, ActivationRange>();
    for (const [name, s] of stats) {
      const r = s.range(opts.symmetric === true);
      const o = s.range(false);
      out.set(name, { name, min: r.lo, max: r.hi, observedMin: o.lo, observedMax: o.hi, values: s.counted });
    }
    return out;
  }
  const method = opts.method;
  const stats = new Map(names.map((n) => [n, reducer(method, opts, bins, percentile, bits)]));
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
    const { range, observed, values } = stats.get(name)!.finish();
    out.set(name, { name, min: range.lo, max: range.hi, observedMin: observed.lo, observedMax: observed.hi, values });
  }
  return out;
}
