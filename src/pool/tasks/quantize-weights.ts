import { concatPieces } from '../../codecs/safetensors.js';
import { quantizeCheckpoint, type CheckpointReport } from '../../checkpoints/quantize-checkpoint.js';
import { checkpoint } from '../cancel.js';
import type { Task, TaskReply } from '../messages.js';
import { jsonBody } from './report.js';

type WeightsTask = Extract<Task, { op: 'quantizeWeights' }>;

/** `dir/model-00001.safetensors` → `model-00001.4bit.safetensors`. */
export function weightsFilename(upload: string, bits: number): string {
  const base = upload.split(/[\\/]/).pop() ?? '';
  const stem = base.replace(/\.safetensors$/i, '').replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '') || 'model';
  return `${stem}.${bits}bit.safetensors`;
}

/** The compact summary for the X-Quantization-Summary header: JSON in plain ASCII. */
export function weightsSummaryHeader(r: CheckpointReport): string {
  const s = r.summary;
  const compact = {
    format: s.format,
    bits: s.bits,
    files: s.files,
    tensors_quantized: s.tensors_quantized,
    tensors_skipped: s.tensors_skipped,
    original_bytes: s.original_bytes,
    quantized_bytes: s.quantized_bytes,
    worst_tensor: s.worst_tensor,
  };
  return JSON.stringify(compact).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function runQuantizeWeights(task: WeightsTask): TaskReply {
  const { file, report, times } = quantizeCheckpoint(task.file, task.options, task.limits, () => checkpoint(task.cancel));
  const filename = weightsFilename(task.filename, task.options.bits);
  const log = { elements: report.tensors.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0) };
  const headers = { 'x-quantization-summary': weightsSummaryHeader(report) };
  if (task.accept === 'json') {
    const body = jsonBody({ ...report, file: { encoding: 'base64', filename, data: Buffer.from(concatPieces(file)).toString('base64') } });
    return { body, contentType: 'application/json', headers, log, meta: report, stages: { ...times } };
  }
  return {
    body: concatPieces(file),
    contentType: 'application/octet-stream',
    headers: { ...headers, 'content-disposition': `attachment; filename="${filename}"` },
    log,
    meta: report,
    stages: { ...times },
  };
}
