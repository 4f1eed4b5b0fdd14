import { randomUUID } from 'node:crypto';
import type { CalibrationMethod, Scheme } from '../../core/calibrate.js';
import type { ModelMethod } from '../../onnx/weights/options.js';
import type { DataAwareReport } from '../../onnx/activations/quantize-data-aware.js';
import type { Skipped } from '../../onnx/weights/find-weights.js';
import type { ModelFormat } from '../../onnx/weights/options.js';
import type { Granularity } from '../../core/quantize.js';
import type { TensorRow } from '../../onnx/weights/report.js';
import type { ValidationReport } from '../../onnx/runtime/validate.js';
import type { Task, TaskReply } from '../messages.js';
import type { LatencyReport } from '../../onnx/runtime/latency.js';
import type { StaticReport } from '../../onnx/activations/static-report.js';

// The three shapes of a model reply, built in the worker so a big model is never
// base64-encoded or copied on the event loop.

export interface ModelSummary {
  bits: number;
  scheme: Scheme;
  granularity: Granularity;
  group_size: number | null;
  calibration: CalibrationMethod;
  method: ModelMethod;
  format: ModelFormat | 'static';
  formats: Record<string, number>;
  opset: number | null;
  opset_imports_added: { domain: string; version: number }[];
  tensors_quantized: number;
  tensors_skipped: number;
  original_bytes: number;
  quantized_bytes: number;
  compression_ratio: number;
  weights_original_bytes: number;
  weights_quantized_bytes: number;
  weights_float_bytes: number;
  weights_quantized_fraction: number;
  worst_tensor: { name: string; snr_db: number | null } | null;
  quantize_ms: number;
  /** Where the task's time went: decode and checks, calibration runs (static), quantization, writing the model, both onnxruntime runs. */
  timings_ms: { decode: number; calibrate: number; quantize: number; encode: number; validation: number };
}

export interface ModelReport {
  summary: ModelSummary;
  tensors: TensorRow[];
  skipped: Skipped[];
  validation: ValidationReport;
  latency?: LatencyReport | undefined;
  static?: StaticReport | undefined;
  data_aware?: DataAwareReport | undefined;
}

type ModelTask = Extract<Task, { op: 'quantizeModel' }>;

/** `dir/My Model.onnx` → `My_Model.4bit.onnx`. */
export function outputFilename(upload: string, bits: number): string {
  const base = upload.split(/[\\/]/).pop() ?? '';
  const stem = base.replace(/\.onnx$/i, '').replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '') || 'model';
  return `${stem}.${bits}bit.onnx`;
}

function minCosine(run: { outputs: { cosine_similarity: number }[] }): number | null {
  return run.outputs.length ? Math.min(...run.outputs.map((o) => o.cosine_similarity)) : null;
}

function minSnr(outputs: { snr_db: number | null }[]): number | null {
  const v = outputs.map((o) => o.snr_db).filter((x): x is number => x !== null);
  return v.length ? Math.min(...v) : null;
}

/** What the service logs at warn level beside the reply: a measurement onnxruntime crashed in (the model is returned all the same). */
export function reportWarnings(report: ModelReport): string[] | undefined {
  const lost = [
    [report.data_aware?.comparison, 'the data-aware held-back comparison'],
    [report.static?.comparison, "format=static's held-back measurement"],
  ] as const;
  const warnings = lost.flatMap(([c, what]) => (c?.status === 'error' ? [`${what} did not run: ${c.reason}`] : []));
  return warnings.length ? warnings : undefined;
}

/** The compact summary for the X-Quantization-Summary header: JSON in plain ASCII. */
export function summaryHeader(report: ModelReport): string {
  const s = report.summary;
  const v = report.validation;
  const compact = {
    bits: s.bits,
    format: s.format,
    formats: s.formats,
    tensors_quantized: s.tensors_quantized,
    tensors_skipped: s.tensors_skipped,
    original_bytes: s.original_bytes,
    quantized_bytes: s.quantized_bytes,
    compression_ratio: s.compression_ratio,
    worst_tensor: s.worst_tensor,
    validation:
      v.status === 'ok'
        ? { status: v.status, min_cosine_weights_only: minCosine(v.weights_only), min_cosine_default: minCosine(v.default_optimization) }
        : v.status === 'inconclusive' || v.status === 'skipped'
          ? { status: v.status, reason: v.reason, ...(v.what_to_send ? { what_to_send: v.what_to_send } : {}) }
          : { status: v.status, reason: v.reason },
    ...(report.latency?.status === 'ok' ? { speedup_1_thread: report.latency.rows.find((r) => r.intra_op_threads === 1)?.speedup ?? null } : {}),
    ...(report.static
      ? {
          static: {
            target_met: report.static.target_met,
            min_output_cosine: minCosine(report.static),
            excluded: report.static.excluded.length,
            ...(report.static.comparison.status === 'error' ? { comparison: report.static.comparison } : {}),
          },
        }
      : {}),
    ...(report.data_aware
      ? {
          data_aware: {
            method: report.data_aware.method,
            min_output_cosine: minCosine(report.data_aware),
            min_output_snr_db: minSnr(report.data_aware.outputs),
            ...(report.data_aware.comparison.status === 'error' ? { comparison: report.data_aware.comparison } : {}),
          },
        }
      : {}),
  };
  return JSON.stringify(compact).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Base64 in 3-byte-aligned slices: no single string ever holds the whole model. */
function base64Bytes(data: Uint8Array): Buffer[] {
  const step = 3 * 2 ** 20;
  const out: Buffer[] = [];
  for (let at = 0; at < data.length; at += step) {
    const slice = Buffer.from(data.buffer, data.byteOffset + at, Math.min(step, data.length - at));
    out.push(Buffer.from(slice.toString('base64'), 'latin1'));
  }
  return out;
}

function joined(parts: Uint8Array[]): Uint8Array {
  const buf = Buffer.concat(parts);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

export function modelReply(task: ModelTask, model: Uint8Array, report: ModelReport): TaskReply {
  const filename = outputFilename(task.filename, report.summary.bits);
  const disposition = `attachment; filename="${filename}"`;
  const headers = { 'x-quantization-summary': summaryHeader(report) };
  const log = { elements: report.tensors.reduce((s, t) => s + t.original_bytes / 4, 0) };
  if (task.accept === 'json') {
    const head = JSON.stringify(report).slice(0, -1);
    const body = joined([Buffer.from(`${head},"model":{"encoding":"base64","filename":${JSON.stringify(filename)},"data":"`), ...base64Bytes(model), Buffer.from('"}}')]);
    return { body, contentType: 'application/json', headers, log, meta: report, warnings: reportWarnings(report) };
  }
  if (task.accept === 'multipart') {
    const boundary = `quantd-${randomUUID()}`;
    const body = joined([
      Buffer.from(`--${boundary}\r\ncontent-type: application/json\r\ncontent-disposition: inline; name="report"\r\n\r\n`),
      Buffer.from(JSON.stringify(report)),
      Buffer.from(`\r\n--${boundary}\r\ncontent-type: application/octet-stream\r\ncontent-disposition: attachment; name="model"; filename="${filename}"\r\n\r\n`),
      model,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    return { body, contentType: `multipart/mixed; boundary=${boundary}`, headers, log, meta: report, warnings: reportWarnings(report) };
  }
  return { body: model, contentType: 'application/octet-stream', headers: { ...headers, 'content-disposition': disposition }, log, meta: report, warnings: reportWarnings(report) };
}
