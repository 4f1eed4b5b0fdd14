import { performance } from 'node:perf_hooks';
import type { CancelFlag } from '../../pool/cancel.js';
import type { OnnxModel } from '../proto/model.js';
import type { ExternalData } from '../proto/tensor-data.js';
import type { ExternalDataFiles } from '../runtime/collect.js';
import { wildcard, type ModelQuantOptions } from '../weights/options.js';
import type { ActivationCalibration, ActivationRange } from './calibrate.js';
import { inProcess, type FloatRuns } from './float-runs.js';
import { splitSamples, type CalibrationSamples } from './calibration-data.js';
import { quantizeWithFallback, type FallbackResult, type FallbackTarget } from './fallback.js';
import { GraphIndex } from './graph-index.js';
import { calibrationTensors } from './plan-static.js';
import type { ActivationType } from './qparams.js';

// Static quantization of a whole model: calibrate activation ranges on the float model
// (sample by sample), then place Q/DQ, quantize weights and biases, and measure on the
// held-back samples, falling back to float where a target asks for it.

export interface StaticRequest {
  activationType: ActivationType;
  calibration: ActivationCalibration;
  percentile?: number | undefined;
  /** Samples kept out of calibration to measure on; default a quarter of N, at most 64. */
  heldBack?: number | undefined;
  target?: FallbackTarget | undefined;
  /** Weight options (the tensor API's); `exclude` patterns keep matching nodes float. */
  weights: ModelQuantOptions;
}

export interface StaticHooks {
  external?: ExternalData | undefined;
  externalData?: ExternalDataFiles | undefined;
  cancel?: CancelFlag | undefined;
  onCalibrating?: ((done: number, total: number) => void) | undefined;
  onMeasuring?: ((round: number) => void) | undefined;
  /** Where the onnxruntime runs happen: this thread unless told (the pipeline's is the onnxruntime host). */
  runs?: FloatRuns | undefined;
}

export interface StaticOutcome {
  index: GraphIndex;
  fallback: FallbackResult;
  ranges: Map<string, ActivationRange>;
  calibrationSamples: number;
  heldBackSamples: number;
  /** Held-back samples are the calibration samples themselves (N = 1). */
  measuredOnCalibration: boolean;
  userExcluded: string[];
  calibrationMs: number;
  quantizeMs: number;
}

export function defaultHeldBack(n: number): number {
  return n < 2 ? 0 : Math.min(64, Math.max(1, Math.floor(n / 4)));
}

export async function quantizeStatic(model: OnnxModel, samples: CalibrationSamples, req: StaticRequest, hooks: StaticHooks = {}): Promise<StaticOutcome> {
  const g = new GraphIndex(model);
  const heldBack = req.heldBack ?? defaultHeldBack(samples.count);
  const split = heldBack > 0 ? splitSamples(samples, heldBack) : { calibrate: samples, heldBack: samples };
  const patterns = req.weights.exclude.map(wildcard);
  const exclude = new Set<number>();
  g.nodes.forEach((n, i) => {
    if (n.name && patterns.some((re) => re.test(n.name))) exclude.add(i);
  });
  const t0 = performance.now();
  const runs = hooks.runs ?? inProcess;
  const ranges = await runs.calibrate(model, calibrationTensors(g), split.calibrate, {
    method: req.calibration,
    percentile: req.percentile,
    bits: req.activationType === 'int16' ? 16 : 8,
    cancel: hooks.cancel,
    externalData: hooks.externalData,
    onSample: hooks.onCalibrating,
  });
  const t1 = performance.now();
  const fallback = await quantizeWithFallback(g, model, ranges, { activationType: req.activationType, weights: req.weights, exclude }, split.heldBack, req.target, {
    cancel: hooks.cancel,
    externalData: hooks.externalData,
    external: hooks.external,
    onRound: hooks.onMeasuring,
    runs,
  });
  return {
    index: g,
    fallback,
    ranges,
    calibrationSamples: split.calibrate.count,
    heldBackSamples: split.heldBack.count,
    measuredOnCalibration: heldBack === 0,
    userExcluded: [...exclude].map((i) => g.nodes[i]!.name),
    calibrationMs: t1 - t0,
    quantizeMs: performance.now() - t1,
  };
}
