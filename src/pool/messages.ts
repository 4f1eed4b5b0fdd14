import type { FloatDType } from '../core/dtypes.js';
import type { CalibrationMethod, Scheme } from '../core/calibrate.js';
import type { Granularity } from '../core/quantize.js';
import type { Limits } from '../core/tensor.js';
import type { ErrorPayload } from '../errors.js';

// The typed messages that cross the thread boundary. Byte buffers travel in transfer lists.

export type TensorSource =
  | { kind: 'json'; data: unknown[]; shape?: number[] | undefined }
  | { kind: 'b64'; b64: string; dtype: FloatDType; shape: number[] }
  | { kind: 'raw'; bytes: Uint8Array; dtype: FloatDType; shape: number[] }
  | { kind: 'npy'; bytes: Uint8Array };

export interface QuantizeOptions {
  bits: number;
  scheme: Scheme;
  granularity: Granularity;
  /** Defaults by granularity: 0 per channel, -1 per group. */
  axis?: number | undefined;
  group_size: number;
  calibration: CalibrationMethod;
  percentile: number;
  include_values: boolean;
}

export interface AnalyzeOptions {
  bits: number[];
  schemes: Scheme[];
  granularities: Granularity[];
  calibrations: CalibrationMethod[];
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
  bits: number;
  scheme: Scheme;
  granularity: Granularity;
  axis: number | null;
  group_size: number | null;
  quantized: { dtype: string; data: string };
  scale: unknown;
  zero_point: unknown;
}

export interface TaskLimits extends Limits {
  maxMatmulMacs: number;
}

export type Task =
  | { op: 'quantize'; input: TensorSource; options: QuantizeOptions; accept: 'json' | 'npz'; limits: TaskLimits }
  | { op: 'dequantize'; payload: DequantizePayload; accept: 'json' | 'npy'; limits: TaskLimits }
  | { op: 'analyze'; input: TensorSource; options: AnalyzeOptions; limits: TaskLimits }
  | { op: 'matmul'; a: TensorSource; b: TensorSource; options: MatmulTaskOptions; limits: TaskLimits };

export interface TaskReply {
  body: Uint8Array;
  contentType: string;
  /** Facts for the request log (never tensor data). */
  log: { shape?: number[]; elements?: number };
}

export type TaskResult = ({ ok: true } & TaskReply) | { ok: false; error: ErrorPayload };
