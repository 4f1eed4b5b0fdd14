import type { OutputError } from '../runtime/activation-error.js';
import type { FusedOpsReport } from '../runtime/fused-ops.js';
import { rankTensors, tensorRow, type TensorRow } from '../weights/report.js';
import { initializerInputNames } from '../weights/find-weights.js';
import { INITIALIZER_INPUT_NOTE } from '../weights/options.js';
import { rawBytes } from '../proto/model.js';
import type { ExcludedNode } from './fallback.js';
import type { Comparison } from './float-runs.js';
import type { StaticOutcome, StaticRequest } from './quantize-static.js';

// The static part of a model report, in the API's snake_case: per activation tensor its
// range, parameters and SNR on the held-back samples (worst first, as the weight rows are),
// what the fallback returned to float and why, and the model's outputs against float.

export interface ActivationRow {
  name: string;
  /** The node whose rule quantized it. */
  node: string;
  op_type: string;
  /** For tensors after data-movement ops: the tensor whose scale and zero point they reuse. */
  shares_with: string | null;
  min: number | null;
  max: number | null;
  observed_min: number | null;
  observed_max: number | null;
  scale: number;
  zero_point: number;
  /** Against the float model's tensor, on the held-back samples (Q → DQ as written, unfused). */
  snr_db: number | null;
  cosine_similarity: number | null;
}

export interface StaticReport {
  activation_type: string;
  activation_calibration: string;
  calibration_data: 'user' | 'random';
  calibration_samples: number;
  held_back_samples: number;
  warnings: string[];
  target: { target_snr_db: number | null; max_cosine_drop: number | null } | null;
  target_met: boolean | null;
  rounds: number;
  excluded: ExcludedNode[];
  history: StaticOutcome['fallback']['history'];
  outputs: OutputError[];
  /** Whether the held-back measurement ran: 'error' with the reason when onnxruntime crashed or failed in it (outputs and SNRs are then empty). */
  comparison: Comparison;
  activations: ActivationRow[];
  qdq_pairs: number;
  int32_biases: number;
  /** Weight channels whose scale was raised so an int32 bias does not overflow. */
  weight_scales_raised: number;
  opset_imports_added: string[];
  fused_ops: FusedOpsReport;
  timings_ms: { calibration: number; quantize_and_measure: number };
}

export function staticWeightRows(o: StaticOutcome): TensorRow[] {
  const q = o.fallback.quantized;
  const rows: TensorRow[] = [];
  const wereInputs = initializerInputNames(o.index.model);
  for (const sw of q.weights.values()) {
    const t = o.index.constants.get(sw.mark.name)!.tensor;
    const uses = sw.mark.nodes.map((i) => ({ node: o.index.nodes[i]!, nodeIndex: i, opType: o.index.nodes[i]!.opType as 'Conv', channelAxis: sw.plan.axis, blockAxis: 0 }));
    const n = t.dims.reduce((a, b) => a * b, 1);
    const c = { name: sw.mark.name, tensor: t, constantNode: undefined, uses, otherUses: 0, elements: n };
    const quantizedBytes = n + 8 * sw.w.params.scale.length;
    const row = tensorRow(c, sw.plan, sw.w, rawBytes(t.dataType, n) ?? 4 * n, quantizedBytes);
    if (sw.raised) row.note = `${sw.raised} channel scale(s) raised so the int32 bias fits`;
    // emitQdq takes it out of graph.input, as the weight-only formats do.
    if (wereInputs.has(sw.mark.name)) row.note = row.note ? `${row.note}; ${INITIALIZER_INPUT_NOTE}` : INITIALIZER_INPUT_NOTE;
    rows.push(row);
  }
  return rankTensors(rows);
}

export function staticReport(o: StaticOutcome, req: StaticRequest, source: 'user' | 'random', fused: FusedOpsReport): StaticReport {
  const f = o.fallback;
  const q = f.quantized;
  const warnings: string[] = [];
  if (source === 'random') warnings.push('calibration_data=random: the activation ranges come from N(0, 1) inputs, not from your data; accuracy on real inputs may be far worse');
  if (o.measuredOnCalibration) warnings.push('one calibration sample: errors are measured on the sample the ranges came from (no held-back sample)');
  if (q.pairs === 0 && q.weights.size === 0) warnings.push("nothing was quantized: format=static quantizes float32 tensors; the report's skipped says why for each weight");
  if (q.unranged.length) warnings.push(`${q.unranged.length} tensor(s) had no calibrated range and stay float: ${q.unranged.slice(0, 5).join(', ')}`);
  if (f.comparison.status === 'error') warnings.push(`the held-back measurement did not run (the model is returned unmeasured${f.rounds > 1 ? ` after ${f.rounds - 1} fallback round(s)` : ''}): ${f.comparison.reason}`);
  if (f.target_met === false) warnings.push(`the target was not reached after ${f.rounds} round(s) with ${f.excluded.length} node(s) in float`);
  const activations: ActivationRow[] = [...q.plan.tensors.values()].map((m) => {
    const r = o.ranges.get(m.kind === 'own' ? m.name : m.root);
    const p = q.params.get(m.root)!;
    const e = f.errors.tensors.get(m.name);
    return {
      name: m.name,
      node: m.node,
      op_type: m.opType,
      shares_with: m.kind === 'shared' ? m.root : null,
      min: m.fixedRange?.min ?? r?.min ?? null,
      max: m.fixedRange?.max ?? r?.max ?? null,
      observed_min: r?.observedMin ?? null,
      observed_max: r?.observedMax ?? null,
      scale: p.scale,
      zero_point: p.zeroPoint,
      snr_db: e?.snr_db ?? null,
      cosine_similarity: e?.cosine_similarity ?? null,
    };
  });
  activations.sort((a, b) => (a.snr_db ?? Infinity) - (b.snr_db ?? Infinity) || a.name.localeCompare(b.name));
  const target = req.target && (req.target.snrDb !== undefined || req.target.maxCosineDrop !== undefined) ? req.target : undefined;
  return {
    activation_type: req.activationType,
    activation_calibration: req.calibration,
    calibration_data: source,
    calibration_samples: o.calibrationSamples,
    held_back_samples: o.heldBackSamples,
    warnings,
    target: target ? { target_snr_db: target.snrDb ?? null, max_cosine_drop: target.maxCosineDrop ?? null } : null,
    target_met: f.target_met,
    rounds: f.rounds,
    excluded: f.excluded,
    history: f.history,
    outputs: f.errors.outputs,
    comparison: f.comparison,
    activations,
    qdq_pairs: q.pairs,
    int32_biases: q.biases.length,
    weight_scales_raised: [...q.weights.values()].reduce((s, w) => s + w.raised, 0),
    opset_imports_added: q.domainsUsed,
    fused_ops: fused,
    timings_ms: { calibration: Math.round(o.calibrationMs), quantize_and_measure: Math.round(o.quantizeMs) },
  };
}
