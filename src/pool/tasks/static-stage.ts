import { performance } from 'node:perf_hooks';
import { Errors } from '../../errors.js';
import { calibrationSamplesFromNpz, randomCalibrationSamples, type CalibrationSamples } from '../../onnx/activations/calibration-data.js';
import { quantizeStatic, type StaticOutcome, type StaticRequest } from '../../onnx/activations/quantize-static.js';
import { staticReport, staticWeightRows, type StaticReport } from '../../onnx/activations/static-report.js';
import { staticCensus } from '../../onnx/activations/static-skipped.js';
import { defaultOpset } from '../../onnx/proto/model.js';
import type { ExternalDataFiles } from '../../onnx/runtime/collect.js';
import { fusedOpsIsolated } from '../../onnx/runtime/isolated.js';
import type { ModelSource } from '../../onnx/runtime/latency.js';
import type { CancelFlag } from '../cancel.js';
import type { FloatRuns } from '../../onnx/activations/float-runs.js';
import type { ModelTaskOptions, TaskLimits } from '../messages.js';
import type { Prepared, Quantized } from './model-pipeline.js';
import { isDataAware } from '../../onnx/weights/options.js';

// format=static inside the model pipeline: the calibration samples, the static quantizer
// (calibration, placement, fallback) and its report section. The rest (encode, validate,
// latency, reply) is the pipeline every format shares.

export const DEFAULT_CALIBRATION_MAX_BYTES = 2 ** 30;
export const DEFAULT_CALIBRATION_MAX_SAMPLES = 4096;

/** Whether the task runs the float model on calibration samples: format=static, or a data-aware method. */
export function needsSamples(o: ModelTaskOptions): boolean {
  return o.format === 'static' || isDataAware(o.method);
}

/** format=static and the data-aware methods need samples: the user's .npz, or an explicit opt-in to random data. Checked before any slow work. */
export function checkCalibrationGiven(o: ModelTaskOptions, calibration: unknown): void {
  if (!needsSamples(o) || calibration !== undefined || o.calibration_data === 'random') return;
  const what = o.format === 'static' ? 'format=static' : `method=${o.method}`;
  throw new Errors.Calibration(
    `${what} needs calibration data: send an .npz as the multipart file part \`calibration\` (one array per model input, named like the input, with a leading sample axis N), ` +
      'or set calibration_data=random to calibrate on N(0, 1) inputs (the report then warns)',
  );
}

export function calibrationSamples(p: Prepared, npz: Uint8Array | undefined, limits: TaskLimits): CalibrationSamples {
  const o = p.options;
  if (npz) {
    return calibrationSamplesFromNpz(npz, p.input, {
      maxBytes: limits.calibrationMaxBytes ?? DEFAULT_CALIBRATION_MAX_BYTES,
      maxSamples: limits.calibrationMaxSamples ?? DEFAULT_CALIBRATION_MAX_SAMPLES,
    });
  }
  return randomCalibrationSamples(p.input, o.calibration_samples ?? 32, o.dims ?? {});
}

export function staticRequest(p: Prepared): StaticRequest {
  const o = p.options;
  return {
    activationType: o.activation_type ?? 'uint8',
    calibration: o.activation_calibration ?? 'minmax',
    percentile: o.activation_percentile ?? 99.999,
    heldBack: o.held_back,
    target: o.target_snr_db !== undefined || o.max_cosine_drop !== undefined ? { snrDb: o.target_snr_db, maxCosineDrop: o.max_cosine_drop } : undefined,
    weights: p.opts,
  };
}

export interface StaticStageHooks {
  cancel?: CancelFlag | undefined;
  /** Where the onnxruntime runs on the user's model happen (the onnxruntime host, host-runs.ts). */
  runs?: FloatRuns | undefined;
  externalData?: ExternalDataFiles | undefined;
  onCalibrating?: ((done: number, total: number) => void) | undefined;
  onMeasuring?: ((round: number) => void) | undefined;
}

export interface StaticQuantized extends Quantized {
  outcome: StaticOutcome;
  request: StaticRequest;
  source: 'user' | 'random';
}

export async function staticStage(p: Prepared, samples: CalibrationSamples, hooks: StaticStageHooks): Promise<StaticQuantized> {
  const t0 = performance.now();
  const request = staticRequest(p);
  const heldBack = request.heldBack;
  if (heldBack !== undefined && heldBack >= samples.count) {
    throw new Errors.Calibration(`held_back=${heldBack} leaves no sample to calibrate on: the calibration data has ${samples.count} sample(s)`);
  }
  const outcome = await quantizeStatic(p.input, samples, request, { external: p.external, ...hooks });
  const q = outcome.fallback.quantized;
  const tensors = staticWeightRows(outcome);
  const census = staticCensus(p.input, p.opts, tensors, outcome);
  return {
    ...p,
    result: {
      model: q.model,
      tensors,
      skipped: census.skipped,
      opset: defaultOpset(p.input),
      addedOpsets: q.domainsUsed.map((domain) => ({ domain, version: 1 })),
      floatWeightBytes: census.floatWeightBytes,
      quantizedWeightBytes: census.quantizedWeightBytes,
    },
    // Calibration runs are their own stage; the rest (placement, weights, measuring) is quantizing.
    calibrateMs: outcome.calibrationMs,
    quantizeMs: performance.now() - t0 - outcome.calibrationMs,
    outcome,
    request,
    source: samples.source,
  };
}

export async function staticReportOf(q: StaticQuantized, model: ModelSource): Promise<StaticReport> {
  return staticReport(q.outcome, q.request, q.source, await fusedOpsIsolated(model));
}

export function isStatic(q: Quantized): q is StaticQuantized {
  return 'outcome' in q;
}
