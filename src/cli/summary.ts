import type { CheckpointReport } from '../checkpoints/quantize-checkpoint.js';
import type { ModelReport } from '../pool/tasks/model-reply.js';

// The one-screen summaries the commands print: what was written, how much smaller, how
// accurate, and the worst few tensors (the report file has every row).

const WORST_ROWS = 5;

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

const db = (v: number | null | undefined) => (v === null || v === undefined ? 'n/a (all zeros)' : `${v.toFixed(1)} dB`);

export interface TensorRowLike {
  name: string;
  shape: number[];
  snr_db: number | null;
  max_error: number;
  format?: string;
  original_bytes: number;
  quantized_bytes: number;
}

/** The worst rows (lowest SNR first), one line each. */
export function worstRows(rows: TensorRowLike[]): string[] {
  const ranked = [...rows].sort((a, b) => (a.snr_db ?? Infinity) - (b.snr_db ?? Infinity)).slice(0, WORST_ROWS);
  return ranked.map((t) => `  ${db(t.snr_db).padStart(9)}  max err ${t.max_error.toExponential(2)}  ${t.format ? `${t.format.padEnd(11)} ` : ''}${t.name} [${t.shape.join('x')}]`);
}

export function modelSummary(r: ModelReport, outputs: string[], reportFile: string): string {
  const s = r.summary;
  const lines = [
    `wrote ${outputs.join(' + ')}`,
    `  ${bytes(s.original_bytes)} -> ${bytes(s.quantized_bytes)} (${s.compression_ratio.toFixed(2)}x smaller); weights ${bytes(s.weights_original_bytes)} -> ${bytes(s.weights_quantized_bytes)}`,
    `  ${s.bits}-bit ${s.scheme} ${s.granularity}${s.group_size ? ` (groups of ${s.group_size})` : ''}, ${s.calibration}; format ${s.format}: ${Object.entries(s.formats).map(([f, n]) => `${n} ${f}`).join(', ') || 'nothing quantized'}`,
    `  tensors: ${s.tensors_quantized} quantized, ${s.tensors_skipped} kept float${s.worst_tensor ? `; worst ${s.worst_tensor.name} at ${db(s.worst_tensor.snr_db)}` : ''}`,
  ];
  const v = r.validation;
  if (v.status === 'ok') {
    for (const [label, run] of [['weights only', v.weights_only], ['ORT defaults', v.default_optimization]] as const) {
      const cos = run.outputs.length ? Math.min(...run.outputs.map((o) => o.cosine_similarity)) : NaN;
      const snr = run.outputs.length ? Math.min(...run.outputs.map((o) => o.snr_db ?? Infinity)) : NaN;
      lines.push(`  validation (${label}): min cosine ${cos.toFixed(5)}, min output SNR ${Number.isFinite(snr) ? `${snr.toFixed(1)} dB` : 'n/a'}`);
    }
  } else {
    lines.push(`  validation ${v.status}: ${v.reason}`);
  }
  const t = s.timings_ms;
  lines.push(`  time: ${Object.entries(t).map(([k, ms]) => `${k} ${ms} ms`).join(', ')}`);
  if (r.tensors.length) lines.push(`worst tensors (of ${r.tensors.length}):`, ...worstRows(r.tensors));
  if (r.skipped.length) {
    const reasons = new Map<string, number>();
    for (const k of r.skipped) reasons.set(k.reason, (reasons.get(k.reason) ?? 0) + 1);
    lines.push('kept float:', ...[...reasons].slice(0, WORST_ROWS).map(([reason, n]) => `  ${n} x ${reason}`));
  }
  lines.push(`report: ${reportFile}`);
  return lines.join('\n');
}

export interface TensorReportLike {
  shape: number[];
  bits: number;
  scheme: string;
  granularity: string;
  group_size: number | null;
  error: { max_error: number; mean_error: number; snr_db: number | null; clipped: number; clipped_fraction: number };
  size: { original_bytes: number; quantized_bytes: number; compression_ratio: number };
}

export function tensorSummary(r: TensorReportLike, output: string, reportFile: string): string {
  return [
    `wrote ${output}`,
    `  tensor [${r.shape.join('x')}]: ${r.bits}-bit ${r.scheme} ${r.granularity}${r.group_size ? ` (groups of ${r.group_size})` : ''}`,
    `  ${bytes(r.size.original_bytes)} -> ${bytes(r.size.quantized_bytes)} (${r.size.compression_ratio.toFixed(2)}x smaller)`,
    `  SNR ${db(r.error.snr_db)}, max error ${r.error.max_error.toExponential(3)}, mean error ${r.error.mean_error.toExponential(3)}, clipped ${r.error.clipped} (${(100 * r.error.clipped_fraction).toFixed(3)}%)`,
    `report: ${reportFile}`,
  ].join('\n');
}

export function weightsSummary(r: CheckpointReport, written: string, reportFile: string): string {
  const s = r.summary;
  const lines = [
    `wrote ${written}`,
    `  ${bytes(s.original_bytes)} -> ${bytes(s.quantized_bytes)} (${s.compression_ratio.toFixed(2)}x smaller); weights ${bytes(s.weights_original_bytes)} -> ${bytes(s.weights_quantized_bytes)}`,
    `  ${s.bits}-bit ${s.scheme} ${s.granularity}${s.group_size ? ` (groups of ${s.group_size})` : ''}, ${s.calibration}; compressed-tensors pack-quantized, ${s.files} file${s.files === 1 ? '' : 's'}`,
    `  tensors: ${s.tensors_quantized} quantized, ${s.tensors_skipped} kept as they were, ${s.tensors_copied - s.tensors_skipped} vectors copied${s.worst_tensor ? `; worst ${s.worst_tensor.name} at ${db(s.worst_tensor.snr_db)}` : ''}`,
    `  time: ${Object.entries(s.timings_ms).map(([k, ms]) => `${k} ${ms} ms`).join(', ')}`,
  ];
  if (r.tensors.length) lines.push(`worst tensors (of ${r.tensors.length}):`, ...worstRows(r.tensors));
  if (r.skipped.length) {
    const reasons = new Map<string, number>();
    for (const k of r.skipped) reasons.set(k.reason, (reasons.get(k.reason) ?? 0) + 1);
    lines.push('kept as they were:', ...[...reasons].slice(0, WORST_ROWS).map(([reason, n]) => `  ${n} x ${reason}`));
  }
  lines.push(`report: ${reportFile} (quantization_config: the JSON vLLM reads from config.json)`);
  return lines.join('\n');
}
