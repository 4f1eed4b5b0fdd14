import type { FloatDType } from '../core/dtypes.js';
import type { WasmMemory } from '../core/kernels/runtime.js';
import type { CalibrationMethod, Scheme } from '../core/calibrate.js';
import type { Granularity } from '../core/quantize.js';
import type { QuantMethod } from '../core/methods/index.js';
import type { LsqWeighting } from '../core/methods/lsq-weights.js';
import type { TensorDataMethod } from '../core/methods/data-aware.js';
import type { Limits } from '../core/tensor.js';
import type { InitializerInputs, ModelBits, ModelFormat, ModelMethod, ModelOpType } from '../onnx/weights/options.js';
import type { ErrorPayload } from '../errors.js';
import type { CheckpointOptions } from '../checkpoints/layout.js';
import type { ActivationCalibration } from '../onnx/activations/calibrate.js';
import type { ActivationType } from '../onnx/activations/qparams.js';
import type { StorageRoom } from './storage-ledger.js';

// The typed messages that cross the thread boundary. Byte buffers travel in transfer lists;
// a body read into a kernel arena travels as the arena (shared memory) and a view on it.

export type TensorSource =
  | { kind: 'json'; data: unknown[]; shape?: number[] | undefined }
  | { kind: 'b64'; b64: string; dtype: FloatDType; shape: number[] }
  | { kind: 'raw'; bytes: Uint8Array; dtype: FloatDType; shape: number[]; arena?: WasmMemory | undefined }
  | { kind: 'npy'; bytes: Uint8Array; arena?: WasmMemory | undefined }
  /** An .npz whose member `tensor` is the tensor (and `scale`, `zero_point` given parameters). */
  | { kind: 'npz'; bytes: Uint8Array; arena?: WasmMemory | undefined }
  /** One tensor of a .safetensors file; `tensor` may be left out when the file holds one. */
  | { kind: 'safetensors'; bytes: Uint8Array; tensor?: string | undefined; arena?: WasmMemory | undefined };

/** A given scale or zero point as sent: a JSON number or nested arrays, or query text "0.1,0.2" (flat, C order). */
export type GivenParamInput = number | unknown[] | string;

export interface QuantizeOptions {
  bits: number;
  scheme: Scheme;
  granularity: Granularity;
  /** Defaults by granularity: 0 per channel, -1 per group. */
  axis?: number | undefined;
  group_size: number;
  calibration: CalibrationMethod;
  percentile: number;
  /** rtn when absent; imatrix and gptq need the .npz body's activations or xtx. */
  method?: QuantMethod | TensorDataMethod | undefined;
  gptq_damp?: number | undefined;
  gptq_block_size?: number | undefined;
  gptq_act_order?: boolean | undefined;
  compare_methods?: boolean | undefined;
  include_values: boolean;
  /** Given parameters: no calibration, QuantizeLinear with exactly these. */
  scale?: GivenParamInput | undefined;
  zero_point?: GivenParamInput | undefined;
  /** Bins of the error histogram in the report; 0 or absent leaves it out. */
  histogram_bins?: number | undefined;
}

export interface AnalyzeOptions {
  bits: number[];
  schemes: Scheme[];
  granularities: Granularity[];
  calibrations: CalibrationMethod[];
  /** ['rtn'] when absent; imatrix and gptq need an .npz body with activations or xtx. */
  methods?: Array<QuantMethod | TensorDataMethod> | undefined;
  gptq_damp?: number | undefined;
  gptq_block_size?: number | undefined;
  gptq_act_order?: boolean | undefined;
  axis?: number | undefined;
  group_size: number;
  percentile: number;
  target_snr_db?: number | undefined;
}

export interface MatmulTaskOptions {
  bits: number;
  scheme: Scheme;
  granularity: 'per_tensor' | 'per_channel';
  calibration: CalibrationMethod;
  percentile: number;
}

/** The /v1/quantize response as the client sent it back (validated at the edge). */
export interface DequantizePayload {
  shape: number[];
  /** Defaults from quantized.dtype: its storage bits, symmetric for int types, asymmetric for uint. */
  bits?: number | undefined;
  scheme?: Scheme | undefined;
  granularity: Granularity;
  axis: number | null;
  group_size: number | null;
  /** Packed base64 `data`, or the integers as flat `values`. */
  quantized: { dtype: string; data?: string | undefined; values?: number[] | undefined };
  scale: GivenParamInput;
  zero_point?: GivenParamInput | undefined;
}

/** An .npz with quantized, scale and zero_point members (what /v1/quantize returns), options from the query or its report.json. */
export interface DequantizeNpz {
  bytes: Uint8Array;
  query: { bits?: number | undefined; scheme?: Scheme | undefined; granularity?: Granularity | undefined; axis?: number | undefined; group_size?: number | undefined };
}

export type WeightsTaskOptions = CheckpointOptions;

export interface ModelTaskOptions {
  bits: ModelBits;
  scheme: Scheme;
  /** Defaults by bit width (core/onnx/quantize/options.ts). */
  granularity?: Granularity | undefined;
  group_size?: number | undefined;
  calibration: CalibrationMethod;
  percentile: number;
  /** rtn when absent; imatrix, gptq and awq need calibration samples. */
  method?: ModelMethod | undefined;
  gptq_damp?: number | undefined;
  gptq_block_size?: number | undefined;
  gptq_act_order?: boolean | undefined;
  /** method=lsq: the error's weighting (default mse). */
  lsq_weights?: LsqWeighting | undefined;
  /** method=awq: llm-awq's clip search after the scale search (default true). */
  awq_clip?: boolean | undefined;
  format: ModelFormat | 'static';
  op_types: ModelOpType[];
  exclude: string[];
  min_elements: number;
  /** Initializers that are also graph inputs (IR ≥ 4): quantize (default) or keep (left float, still inputs). */
  initializer_inputs?: InitializerInputs | undefined;
  validate: boolean;
  /** The HTTP schema defaults it to true; tasks built without it measure nothing. */
  measure_latency?: boolean | undefined;
  /** format=static (src/onnx/activations); defaults as in the HTTP schema. */
  activation_type?: ActivationType | undefined;
  activation_calibration?: ActivationCalibration | undefined;
  activation_percentile?: number | undefined;
  calibration_data?: 'random' | undefined;
  calibration_samples?: number | undefined;
  held_back?: number | undefined;
  target_snr_db?: number | undefined;
  max_cosine_drop?: number | undefined;
  /** Symbolic dimension values for the generated validation inputs. */
  dims?: Record<string, number> | undefined;
}

/** An uploaded file: an external data file (named by its location) or the inputs .npz. */
export interface ModelFile {
  name: string;
  bytes: Uint8Array;
}

export interface TaskLimits extends Limits {
  maxMatmulMacs: number;
  /** DATA_AWARE_MAX_MACS (method=imatrix|gptq on the tensor API); absent means no bound. */
  dataAwareMaxMacs?: number | undefined;
  maxJsonReplyBytes: number;
  /** CALIBRATION_MAX_BYTES / CALIBRATION_MAX_SAMPLES (format=static). */
  calibrationMaxBytes?: number | undefined;
  calibrationMaxSamples?: number | undefined;
  /** HESSIAN_MAX_BYTES (method=gptq|awq). */
  hessianMaxBytes?: number | undefined;
}

export type Task =
  | { op: 'quantize'; input: TensorSource; options: QuantizeOptions; accept: 'json' | 'npz'; limits: TaskLimits }
  | { op: 'dequantize'; payload?: DequantizePayload; npz?: DequantizeNpz; accept: 'json' | 'npy'; limits: TaskLimits }
  | { op: 'analyze'; input: TensorSource; options: AnalyzeOptions; limits: TaskLimits }
  | { op: 'matmul'; a: TensorSource; b: TensorSource; options: MatmulTaskOptions; limits: TaskLimits }
  | {
      op: 'quantizeModel';
      model: Uint8Array;
      /** The upload's file name, for the reply's file name. */
      filename: string;
      external: ModelFile[];
      inputs?: Uint8Array | undefined;
      /** format=static: the calibration .npz. */
      calibration?: Uint8Array | undefined;
      options: ModelTaskOptions;
      accept: 'onnx' | 'json' | 'multipart';
      limits: TaskLimits;
      /** Raised by the caller to stop the task at its next checkpoint (see cancel.ts). */
      cancel?: Int32Array | undefined;
    }
  | {
      /** A .safetensors checkpoint → the compressed-tensors pack-quantized layout. */
      op: 'quantizeWeights';
      file: Uint8Array;
      /** The upload's file name, for the reply's file name. */
      filename: string;
      options: WeightsTaskOptions;
      accept: 'safetensors' | 'json';
      limits: TaskLimits;
      cancel?: Int32Array | undefined;
    }
  | {
      /** A job: inputs and outputs are files, progress goes to a BroadcastChannel. */
      op: 'quantizeModelFiles';
      inputDir: string;
      /** Relative to inputDir; external files keep their location as name. */
      model: string;
      external: { name: string; file: string }[];
      inputs?: string | undefined;
      calibration?: string | undefined;
      outputDir: string;
      outputName: string;
      /** Largest model written as one .onnx (default: protobuf's 2 GiB); tests lower it. */
      maxInlineBytes?: number | undefined;
      /** Bytes of quantized tensors held before the rest spill to a file (default SPILL_BYTES); tests lower it. */
      spillBytes?: number | undefined;
      /** The job store's ledger, this job's account in it and JOBS_MAX_BYTES: the spill file and the results reserve their bytes before they are written. */
      storage?: StorageRoom | undefined;
      options: ModelTaskOptions;
      limits: TaskLimits;
      progressChannel: string;
      cancel?: Int32Array | undefined;
    }
  | {
      /** A safetensors checkpoint on disk (one file, or shards and their index) → pack-quantized files in outputDir. */
      op: 'quantizeWeightsFiles';
      /** Shard file names (as the index names them; the outputs keep them) and their paths. */
      shards: { name: string; path: string; label?: string | undefined }[];
      index?: string | undefined;
      config?: string | undefined;
      outputDir: string;
      options: WeightsTaskOptions;
      limits: TaskLimits;
      /** A BroadcastChannel for progress (jobs and the CLI), per tensor. */
      progressChannel?: string | undefined;
      cancel?: Int32Array | undefined;
      /** A job's: the ledger its output files reserve their bytes from before they are written. */
      storage?: StorageRoom | undefined;
    };

export interface TaskReply {
  body: Uint8Array;
  contentType: string;
  /** Facts for the request log (never tensor data). */
  log: { shape?: number[]; elements?: number };
  /** Extra reply headers (e.g. Content-Disposition). */
  headers?: Record<string, string>;
  /** Structured facts beside the body (a model's report), for callers that store them. */
  meta?: unknown;
  /** Milliseconds per stage of a model task (the report's timings_ms), for the metrics. */
  stages?: Record<string, number> | undefined;
  /** What the caller logs at warn level (a measurement lost to an onnxruntime crash; the reply is still good). */
  warnings?: string[] | undefined;
}

/** busyMs: how long the worker ran the task, stamped by worker-entry.cts (the metrics' worker busy time). */
export type TaskResult = (({ ok: true } & TaskReply) | { ok: false; error: ErrorPayload }) & { busyMs?: number };
