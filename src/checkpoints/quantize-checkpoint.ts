import { performance } from 'node:perf_hooks';
import { encodeSafetensors, readSafetensorsHeader, type SafetensorsOutput } from '../codecs/safetensors.js';
import type { CalibrationMethod, Scheme } from '../core/calibrate.js';
import type { Limits } from '../core/tensor.js';
import { planTensors, quantizationConfig, RANK_BELOW_2, type CheckpointOptions, type PlannedTensor } from './layout.js';
import { quantizeTensor, type CheckpointRow, type TensorTimes } from './quantize-tensor.js';

// A safetensors checkpoint → the same checkpoint in compressed-tensors' pack-quantized layout
// (layout.ts), in memory: the synchronous endpoint. Sharded checkpoints and files on disk go
// through checkpoint-files.ts, which writes the same bytes tensor by tensor.

export { WEIGHT_BITS, WEIGHT_GRANULARITIES, quantizationConfig, type CheckpointOptions } from './layout.js';
export type { CheckpointRow } from './quantize-tensor.js';

export interface CheckpointTimings {
  decode: number;
  quantize: number;
  encode: number;
}

export interface CheckpointReport {
  summary: {
    format: 'pack-quantized';
    bits: number;
    scheme: Scheme;
    granularity: string;
    group_size: number | null;
    calibration: CalibrationMethod;
    /** Shards written (1 for a single file). */
    files: number;
    tensors_quantized: number;
    tensors_skipped: number;
    tensors_copied: number;
    original_bytes: number;
    quantized_bytes: number;
    compression_ratio: number;
    weights_original_bytes: number;
    weights_quantized_bytes: number;
    worst_tensor: { name: string; snr_db: number | null } | null;
    quantize_ms: number;
    /** decode: headers and float decoding; quantize: fitting, integers, packing; encode: writing. */
    timings_ms: CheckpointTimings;
  };
  tensors: CheckpointRow[];
  skipped: { name: string; reason: string; file?: string | undefined }[];
  /** What goes into config.json's `quantization_config` for vLLM / transformers. */
  quantization_config: Record<string, unknown>;
}

/** Skipped tensors worth reporting (not vectors). */
export function skippedOf(plan: PlannedTensor[], file?: string): CheckpointReport['skipped'] {
  return plan.filter((p) => p.reason !== undefined && p.reason !== RANK_BELOW_2).map((p) => ({ name: p.t.name, reason: p.reason!, ...(file ? { file } : {}) }));
}

export function buildCheckpointReport(
  o: CheckpointOptions,
  parts: { rows: CheckpointRow[]; skipped: CheckpointReport['skipped']; tensorCount: number; files: number; inBytes: number; outBytes: number; times: CheckpointTimings; config: Record<string, unknown> },
): CheckpointReport {
  const rows = [...parts.rows].sort((a, b) => (a.snr_db ?? Infinity) - (b.snr_db ?? Infinity));
  const worst = rows.find((r) => r.snr_db !== null);
  const t = parts.times;
  return {
    summary: {
      format: 'pack-quantized',
      bits: o.bits,
      scheme: o.scheme,
      granularity: o.granularity,
      group_size: o.granularity === 'per_group' ? o.group_size : null,
      calibration: o.calibration,
      files: parts.files,
      tensors_quantized: rows.length,
      tensors_skipped: parts.skipped.length,
      tensors_copied: parts.tensorCount - rows.length,
      original_bytes: parts.inBytes,
      quantized_bytes: parts.outBytes,
      compression_ratio: parts.inBytes / parts.outBytes,
      weights_original_bytes: rows.reduce((s, r) => s + r.original_bytes, 0),
      weights_quantized_bytes: rows.reduce((s, r) => s + r.quantized_bytes, 0),
      worst_tensor: worst ? { name: worst.name, snr_db: worst.snr_db } : null,
      quantize_ms: Math.round(t.quantize),
      timings_ms: { decode: Math.round(t.decode), quantize: Math.round(t.quantize), encode: Math.round(t.encode) },
    },
    tensors: rows,
    skipped: parts.skipped,
    quantization_config: parts.config,
  };
}

/** The shard's __metadata__ with the config added (safetensors metadata values are strings). */
export function outputMetadata(input: Record<string, string> | undefined, config: Record<string, unknown>): Record<string, string> {
  return { ...(input ?? {}), format: input?.format ?? 'pt', quantization_config: JSON.stringify(config) };
}

export interface CheckpointResult {
  file: { pieces: Uint8Array[]; length: number };
  report: CheckpointReport;
  times: CheckpointTimings;
}

/** Quantizes a whole .safetensors file in memory; onTensor is called between tensors (cancellation, progress). */
export function quantizeCheckpoint(bytes: Uint8Array, o: CheckpointOptions, limits: Limits, onTensor: (done: number, total: number) => void = () => {}): CheckpointResult {
  const times: CheckpointTimings = { decode: 0, quantize: 0, encode: 0 };
  let t0 = performance.now();
  const header = readSafetensorsHeader(bytes);
  const plan = planTensors(header.tensors, o, new Set(header.tensors.map((t) => t.name)));
  times.decode += performance.now() - t0;
  const total = plan.filter((p) => p.reason === undefined).length;
  const outputs: SafetensorsOutput[] = [];
  const rows: CheckpointRow[] = [];
  const tensorTimes: TensorTimes = { decode: 0, quantize: 0 };
  for (const p of plan) {
    const own = bytes.subarray(p.t.begin, p.t.end);
    if (p.reason !== undefined) {
      outputs.push({ ...p.outputs[0]!, data: own });
      continue;
    }
    const q = quantizeTensor(own, p, o, limits, tensorTimes);
    p.outputs.forEach((spec, i) => outputs.push({ ...spec, data: q.data[i]! }));
    rows.push(q.row);
    onTensor(rows.length, total);
  }
  times.decode += tensorTimes.decode;
  times.quantize += tensorTimes.quantize;
  t0 = performance.now();
  const config = quantizationConfig(
    o,
    rows.map((r) => r.module),
  );
  const file = encodeSafetensors(outputs, outputMetadata(header.metadata, config));
  times.encode += performance.now() - t0;
  const report = buildCheckpointReport(o, { rows, skipped: skippedOf(plan), tensorCount: header.tensors.length, files: 1, inBytes: bytes.length, outBytes: file.length, times, config });
  return { file, report, times };
}
