import { performance } from 'node:perf_hooks';
import { decodeModel } from '../../onnx/proto/decode.js';
import { checkExternalFiles } from '../../onnx/io/external.js';
import { defaultOpset, type OnnxModel } from '../../onnx/proto/model.js';
import { GPTQ_DEFAULTS, isDataAware, modelQuantOptions, type ModelQuantOptions } from '../../onnx/weights/options.js';
import { checkOptionConflicts, checkOptionsForModel } from '../../onnx/weights/plan.js';
import { Errors } from '../../errors.js';
import { preflight, quantizeModel, type ModelProgress, type ModelQuantResult, type QuantizeModelHooks } from '../../onnx/weights/quantize-model.js';
import type { ExternalData } from '../../onnx/proto/tensor-data.js';
import type { UserArray } from '../../onnx/runtime/inputs.js';
import type { ValidationReport } from '../../onnx/runtime/validate.js';
import type { ModelTaskOptions, TaskLimits } from '../messages.js';
import { userInputs } from './model-inputs.js';
import { checkGraph } from '../../onnx/graph/check.js';
import { checkCalibrationGiven } from './static-stage.js';
import type { LatencyReport } from '../../onnx/runtime/latency.js';
import type { StaticReport } from '../../onnx/activations/static-report.js';
import type { DataAwareReport } from '../../onnx/activations/quantize-data-aware.js';
import type { ModelReport } from './model-reply.js';

// What the synchronous endpoint and the jobs share: decode, check the uploads, quantize,
// and the report. They differ only in where bytes come from and go to. The float model's
// reference run comes before quantizing, so its onnxruntime session (as big as the model)
// is released before the quantized copy exists.

export interface PipelineInput {
  model: Uint8Array;
  external: ExternalData;
  externalSizes: ReadonlyMap<string, number>;
  inputs?: Uint8Array | undefined;
  /** format=static or a data-aware method: whether a calibration .npz came (its bytes are read where the samples are made). */
  hasCalibration?: boolean | undefined;
  options: ModelTaskOptions;
  limits: TaskLimits;
}

export interface Prepared {
  input: OnnxModel;
  options: ModelTaskOptions;
  opts: ModelQuantOptions;
  user: Map<string, UserArray> | undefined;
  external: ExternalData;
}

export interface Quantized extends Prepared {
  result: ModelQuantResult;
  /** Quantizing (and, for static models, placing Q/DQ and measuring), without calibrateMs. */
  quantizeMs: number;
  /** Activation calibration runs (format=static) or data-aware fitting, when any ran. */
  calibrateMs?: number | undefined;
}

/** Milliseconds spent in each stage besides quantizing, for the report's breakdown. */
export interface StageTimes {
  decode: number;
  encode: number;
  validation: number;
}

/** Runs fn and adds its duration to times[stage]. */
export async function timed<T>(times: StageTimes, stage: keyof StageTimes, fn: () => T | Promise<T>): Promise<T> {
  const t0 = performance.now();
  try {
    return await fn();
  } finally {
    times[stage] += performance.now() - t0;
  }
}

/**
 * The stages that ran, in unrounded milliseconds, for the metrics: a stage that did not run
 * (validation off, say) took exactly 0 and is left out.
 */
export function stageTimes(times: StageTimes, q: Pick<Quantized, 'quantizeMs' | 'calibrateMs'>): Record<string, number> {
  const all: Record<string, number> = { ...times, calibrate: q.calibrateMs ?? 0, quantize: q.quantizeMs };
  return Object.fromEntries(Object.entries(all).filter(([, ms]) => ms > 0));
}

export function coreOptions(o: ModelTaskOptions): ModelQuantOptions {
  return modelQuantOptions({
    bits: o.bits,
    scheme: o.scheme,
    granularity: o.granularity,
    groupSize: o.group_size,
    calibration: o.calibration,
    percentile: o.percentile,
    method: o.method,
    gptq: { damp: o.gptq_damp ?? GPTQ_DEFAULTS.damp, blockSize: o.gptq_block_size ?? GPTQ_DEFAULTS.blockSize, actOrder: o.gptq_act_order ?? GPTQ_DEFAULTS.actOrder },
    awqClip: o.awq_clip ?? true,
    lsqWeights: o.lsq_weights ?? 'mse',
    // Static quantization's weights are QDQ int8; the activations are its own (static-stage.ts).
    format: o.format === 'static' ? 'qdq' : o.format,
    opTypes: o.op_types,
    exclude: o.exclude,
    minElements: o.min_elements,
    initializerInputs: o.initializer_inputs ?? 'quantize',
  });
}

// Static calibration reads weights as constants of the graph (placement rules, emit-static):
// an initializer that stays an overridable input would have to be calibrated as an activation.
function checkStaticInitializerInputs(o: ModelTaskOptions): void {
  if (o.format === 'static' && o.initializer_inputs === 'keep') {
    throw new Errors.Option('initializer_inputs=keep: format=static quantizes weights as constants and takes them out of the inputs; use a weight-only format to keep them as inputs, or initializer_inputs=quantize');
  }
}

function checkStaticMethod(o: ModelTaskOptions): void {
  if (o.format === 'static' && isDataAware(o.method)) {
    throw new Errors.Option(`method=${o.method} fits weight-only formats; format=static quantizes weights per channel with rtn: drop one of them`);
  }
}

/** The default opset format=static needs: the QLinear ops onnxruntime fuses its Q/DQ into. */
export const STATIC_MIN_OPSET = 10;

// Below opset 10 the Q/DQ pairs are com.microsoft's, and onnxruntime 1.30 (at its default
// graphOptimizationLevel 'all') still fuses them into the default domain's QLinearConv /
// QLinearMatMul, which opset 9 does not have: the model fails to load ("No Op registered for
// QLinearConv with domain_version of 9"). Refused up front rather than returned unloadable.
function checkStaticOpset(o: ModelTaskOptions, opset: number | undefined): void {
  if (o.format === 'static' && opset !== undefined && opset < STATIC_MIN_OPSET) {
    throw new Errors.Option(
      `format=static needs opset ≥ ${STATIC_MIN_OPSET} (QuantizeLinear, and the QLinearConv / QLinearMatMul onnxruntime fuses the pairs into); this model has opset ${opset}: ` +
        'onnxruntime 1.30 fuses com.microsoft Q/DQ into those default-domain ops and then cannot load the model. Re-export at opset ≥ 10, or use a weight-only format',
    );
  }
}

/** format=static's refusals, for prepare() and for a job before it is stored. */
function checkStaticRequest(o: ModelTaskOptions, opset: number | undefined): void {
  checkStaticMethod(o);
  checkStaticInitializerInputs(o);
  checkStaticOpset(o, opset);
}

/**
 * The checks of prepare() that need no decoded model, for a job's request before anything is
 * stored or queued: with the model's opset once its bytes have streamed past (OpsetScan), the
 * opset rules too; `hasCalibration` undefined while the parts are not all read.
 */
export function checkModelRequest(o: ModelTaskOptions, opset: number | undefined, hasCalibration?: boolean): void {
  checkStaticRequest(o, opset);
  if (hasCalibration !== undefined) checkCalibrationGiven(o, hasCalibration ? true : undefined);
  if (o.format === 'static') return;
  if (opset === undefined) checkOptionConflicts(coreOptions(o));
  else checkOptionsForModel(coreOptions(o), opset);
}

/** Everything that can refuse the upload, before any slow work (onnxruntime included). */
export function prepare(p: PipelineInput): Prepared {
  const input = decodeModel(p.model);
  checkExternalFiles(input, p.externalSizes);
  const user = p.inputs ? userInputs(p.inputs, input, p.limits) : undefined;
  const opts = coreOptions(p.options);
  checkStaticRequest(p.options, defaultOpset(input));
  checkCalibrationGiven(p.options, p.hasCalibration ? true : undefined);
  // Static quantization picks its own Q/DQ domains per opset from 10 on.
  if (p.options.format === 'static') checkGraph(input);
  else preflight(input, opts);
  return { input, options: p.options, opts, user, external: p.external };
}

export function quantizeStage(p: Prepared, onProgress?: (progress: ModelProgress) => void, onWritten?: QuantizeModelHooks['onWritten']): Quantized {
  const t0 = performance.now();
  const result = quantizeModel(p.input, p.opts, { external: p.external, onProgress, onWritten });
  return { ...p, result, quantizeMs: performance.now() - t0 };
}

export interface ReportExtras {
  latency?: LatencyReport | undefined;
  static?: StaticReport | undefined;
  dataAware?: DataAwareReport | undefined;
}

export function buildReport(q: Quantized, inBytes: number, outBytes: number, validation: ValidationReport, times: StageTimes, extras: ReportExtras = {}): ModelReport {
  const { opts, result: r } = q;
  const formats: Record<string, number> = {};
  for (const t of r.tensors) formats[t.format] = (formats[t.format] ?? 0) + 1;
  const worst = r.tensors.find((t) => t.snr_db !== null);
  const quantizedBytes = r.quantizedWeightBytes ?? r.tensors.reduce((s, t) => s + t.original_bytes, 0);
  const floatBytes = r.floatWeightBytes ?? quantizedBytes;
  return {
    summary: {
      bits: opts.bits,
      scheme: opts.scheme,
      granularity: opts.granularity,
      group_size: opts.granularity === 'per_group' ? opts.groupSize : null,
      calibration: opts.calibration,
      method: opts.method,
      format: q.options.format,
      formats,
      opset: r.opset ?? null,
      opset_imports_added: r.addedOpsets,
      tensors_quantized: r.tensors.length,
      tensors_skipped: r.skipped.length,
      original_bytes: inBytes,
      quantized_bytes: outBytes,
      compression_ratio: inBytes / outBytes,
      weights_original_bytes: r.tensors.reduce((s, t) => s + t.original_bytes, 0),
      weights_quantized_bytes: r.tensors.reduce((s, t) => s + t.quantized_bytes, 0),
      weights_float_bytes: floatBytes,
      weights_quantized_fraction: floatBytes > 0 ? quantizedBytes / floatBytes : 0,
      worst_tensor: worst ? { name: worst.name, snr_db: worst.snr_db } : null,
      quantize_ms: Math.round(q.quantizeMs),
      timings_ms: {
        decode: Math.round(times.decode),
        calibrate: Math.round(q.calibrateMs ?? 0),
        quantize: Math.round(q.quantizeMs),
        encode: Math.round(times.encode),
        validation: Math.round(times.validation),
      },
    },
    tensors: r.tensors,
    skipped: r.skipped,
    validation,
    ...(extras.latency ? { latency: extras.latency } : {}),
    ...(extras.static ? { static: extras.static } : {}),
    ...(extras.dataAware ? { data_aware: extras.dataAware } : {}),
  };
}

export const VALIDATION_OFF: ValidationReport = { status: 'skipped', reason: 'validate=false', what_to_send: 'validate=true to compare both models in onnxruntime' };
