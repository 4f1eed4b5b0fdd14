import type { Granularity } from '../../core/quantize.js';
import { dataTypeName } from '../proto/model.js';
import type { WeightCandidate } from './find-weights.js';
import type { WeightFormat } from './options.js';
import type { WeightPlan } from './plan.js';
import type { QuantizedWeight } from './quantize-weight.js';

// The per-tensor report, in the snake_case the HTTP API speaks. Error figures are the
// tensor API's (reportFromSums over the same quantize pass).

export interface TensorRow {
  name: string;
  /** The first consumer; `nodes` lists all of them when the weight is shared. */
  node: string;
  nodes: string[];
  op_type: string;
  shape: number[];
  /** The weight's float type (float32, float16, bfloat16): the quantized graph keeps it. */
  dtype: string;
  /** Set for weights defined in a subgraph: where ("If 'cond' then_branch"). */
  graph?: string;
  format: WeightFormat;
  /** The exact op that carries the weight (domain, axis, scale type) and why that one. */
  form: string;
  bits: number;
  granularity: Granularity;
  axis: number | null;
  group_size: number | null;
  scale_count: number;
  original_bytes: number;
  quantized_bytes: number;
  max_error: number;
  mean_error: number;
  mse: number;
  snr_db: number | null;
  clipped: number;
  /** FP8 rows: what int8 (symmetric, same granularity) reaches on the same weight. */
  int8_snr_db?: number | null;
  /** Data-aware methods: what fitted this weight (rtn where the method could not, with the reason in note). */
  method?: string;
  /** gptq, awq (full XᵀX) and imatrix (its diagonal): 1 − the layer-output proxy loss over rtn's on the calibration activations. */
  proxy_loss_reduction?: number | null;
  note?: string;
}

/** What a row is made from: a found weight, or static quantization's own record of one. */
export type RowSource = Pick<WeightCandidate, 'name' | 'tensor'> & { uses: Pick<WeightCandidate['uses'][number], 'node' | 'opType'>[]; scopeLabel?: string };

export function tensorRow(
  c: RowSource,
  plan: WeightPlan,
  w: Pick<QuantizedWeight, 'error'> & { params: { scale: ArrayLike<number> } },
  originalBytes: number,
  quantizedBytes: number,
  form = '',
): TensorRow {
  const row: TensorRow = {
    name: c.name,
    node: c.uses[0]!.node.name,
    nodes: c.uses.map((u) => u.node.name),
    op_type: c.uses[0]!.opType,
    shape: [...c.tensor.dims],
    dtype: dataTypeName(c.tensor.dataType),
    ...(c.scopeLabel !== undefined && c.scopeLabel !== 'main graph' ? { graph: c.scopeLabel } : {}),
    format: plan.format,
    form,
    bits: plan.bits,
    granularity: plan.granularity,
    axis: plan.granularity === 'per_tensor' ? null : plan.axis,
    group_size: plan.granularity === 'per_group' ? plan.groupSize : null,
    scale_count: w.params.scale.length,
    original_bytes: originalBytes,
    quantized_bytes: quantizedBytes,
    max_error: w.error.max_error,
    mean_error: w.error.mean_error,
    mse: w.error.mse,
    snr_db: w.error.snr_db,
    clipped: w.error.clipped,
  };
  if (plan.note) row.note = plan.note;
  return row;
}

/** Worst first: lowest SNR at the top; all-zero weights (SNR null) last. */
export function rankTensors(rows: TensorRow[]): TensorRow[] {
  return [...rows].sort((a, b) => (a.snr_db ?? Infinity) - (b.snr_db ?? Infinity) || a.name.localeCompare(b.name));
}
