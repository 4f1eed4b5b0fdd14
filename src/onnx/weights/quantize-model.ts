import { checkGraph } from '../graph/check.js';
import { defaultOpset, type OnnxGraph, type OnnxModel, type OnnxNode, type OnnxTensor } from '../proto/model.js';
import { readFloat, storedBytes, WEIGHT_FLOAT_TYPES, type ExternalData } from '../proto/tensor-data.js';
import { GraphEdit } from '../graph/edit.js';
import { ModelScopes } from '../graph/scopes.js';
import { DYNAMIC_OPSET, emitDynamic, type ActivationQuant } from './emit-dynamic.js';
import { emitGatherBlockQuantized } from './emit-gather.js';
import { emitMatMulNBits } from './emit-matmulnbits.js';
import { emitQdq } from './emit-qdq.js';
import { findWeights, type Skipped, type WeightCandidate } from './find-weights.js';
import type { ModelQuantOptions } from './options.js';
import { checkOptionsForModel, planWeight, type PlanResult, type WeightPlan } from './plan.js';
import { emitLstmWeight, rewriteLstm, type LstmWeight } from './emit-dynamic-lstm.js';
import { quantizeWeight } from './quantize-weight.js';
import { rankTensors, tensorRow, type TensorRow } from './report.js';

export interface ModelProgress {
  tensorsDone: number;
  tensorsTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

export interface ModelQuantResult {
  model: OnnxModel;
  tensors: TensorRow[];
  skipped: Skipped[];
  opset: number | undefined;
  addedOpsets: { domain: string; version: number }[];
  /** Bytes of every float initializer and Constant, in all graphs, and how many of them were quantized (absent: the rows' totals). */
  floatWeightBytes?: number | undefined;
  quantizedWeightBytes?: number | undefined;
}

export interface QuantizeModelHooks {
  external?: ExternalData | undefined;
  onProgress?: ((p: ModelProgress) => void) | undefined;
}

function bytesOf(tensors: OnnxTensor[]): number {
  return tensors.reduce((s, t) => s + storedBytes(t), 0);
}

/** The checks that refuse a model or options before any work: a 400 that names the culprit. */
export function preflight(model: OnnxModel, opts: ModelQuantOptions): void {
  checkGraph(model);
  checkOptionsForModel(opts, defaultOpset(model));
}

function originalBytes(c: WeightCandidate): number {
  return (WEIGHT_FLOAT_TYPES.get(c.tensor.dataType) ?? 4) * c.elements;
}

function dynamicForm(opset: number, plan: WeightPlan): string {
  const per = plan.granularity === 'per_channel' ? 'per output channel' : 'per tensor';
  return opset < DYNAMIC_OPSET
    ? `com.microsoft DynamicQuantizeMatMul, ${per}: the default domain has DynamicQuantizeLinear from opset ${DYNAMIC_OPSET} and this model has opset ${opset} (never raised)`
    : `DynamicQuantizeLinear → MatMulInteger → rescale, ${per}`;
}

/**
 * DynamicQuantizeLSTM takes W and R both quantized: an LSTM weight planned for it whose
 * partner is not (too small, excluded, ...) stays float, with the reason.
 */
function pairLstmWeights(candidates: WeightCandidate[], plans: PlanResult[]): void {
  const dynamicLstm = (i: number) => {
    const p = plans[i]!;
    return !('skip' in p) && p.format === 'dynamic' && candidates[i]!.uses[0]!.opType === 'LSTM';
  };
  const ready = new Map<OnnxNode, Set<number>>();
  candidates.forEach((c, i) => {
    if (!dynamicLstm(i)) return;
    for (const u of c.uses) ready.set(u.node, (ready.get(u.node) ?? new Set()).add(u.slot));
  });
  candidates.forEach((c, i) => {
    if (!dynamicLstm(i)) return;
    const lone = c.uses.find((u) => ready.get(u.node)!.size < 2);
    if (lone) {
      const partner = lone.slot === 1 ? 'R' : 'W';
      plans[i] = { skip: `DynamicQuantizeLSTM needs W and R both quantized, and LSTM '${lone.node.name}' keeps ${partner} ('${lone.node.inputs[lone.slot === 1 ? 2 : 1]}') float: see its entry, or use format=qdq` };
    }
  });
}

/**
 * Quantizes the weights of a model, in every graph, one at a time (only one weight's float
 * copy is alive at once). The input model is not modified; the result shares every
 * untouched node and initializer with it.
 */
export function quantizeModel(model: OnnxModel, opts: ModelQuantOptions, hooks: QuantizeModelHooks = {}): ModelQuantResult {
  preflight(model, opts);
  const opset = defaultOpset(model);
  const o = opset ?? 0;
  const scopes = new ModelScopes(model);
  const { candidates, skipped, floatBytes } = findWeights(model, opts, scopes);
  const edit = new GraphEdit(model, scopes);
  const dims = new Map<string, readonly number[]>();
  for (const s of scopes.scopes) for (const t of s.graph.initializers) if (!dims.has(t.name)) dims.set(t.name, t.dims);
  const activations: ActivationQuant = new Map();
  const tensors: TensorRow[] = [];
  const bytesTotal = candidates.reduce((s, c) => s + originalBytes(c), 0);
  let bytesDone = 0;
  hooks.onProgress?.({ tensorsDone: 0, tensorsTotal: candidates.length, bytesDone, bytesTotal });
  const plans = candidates.map((c) => planWeight(c, opts, opset));
  pairLstmWeights(candidates, plans);
  const lstms = new Map<OnnxNode, { nodeIndex: number; scope: OnnxGraph; W?: LstmWeight; R?: LstmWeight }>();
  candidates.forEach((c, i) => {
    const plan = plans[i]!;
    const values = 'skip' in plan ? undefined : readFloat(c.tensor, hooks.external);
    const bad = values?.findIndex((v) => !Number.isFinite(v)) ?? -1;
    if ('skip' in plan) skipped.push({ name: c.name, reason: plan.skip });
    else if (bad >= 0) skipped.push({ name: c.name, reason: `holds ${values![bad]} at element ${bad}: a tensor with Inf or NaN (a mask?) is left float` });
    else if (values) {
      const w = quantizeWeight(values, c.tensor.dims, plan, opts);
      let written: OnnxTensor[];
      let form: string;
      if (plan.format === 'qdq') {
        const r = emitQdq(edit, c, plan, w, o);
        written = r.tensors;
        form = r.form.text;
      } else if (plan.format === 'matmulnbits' && c.uses.some((u) => u.opType === 'Gather')) {
        written = emitGatherBlockQuantized(edit, c, plan, w, (name) => dims.get(name));
        const tied = c.uses.some((u) => u.opType !== 'Gather');
        form = `com.microsoft GatherBlockQuantized${tied ? ' + MatMulNBits (one 4-bit copy, tied)' : ''}, bits 4, block_size ${plan.groupSize}`;
      } else if (plan.format === 'matmulnbits') {
        written = emitMatMulNBits(edit, c, plan, w, (name) => dims.get(name));
        form = `com.microsoft MatMulNBits, bits ${plan.bits}, block_size ${plan.groupSize}`;
      } else if (c.uses[0]!.opType === 'LSTM') {
        const r = emitLstmWeight(edit, c, w);
        written = r.tensors;
        for (const u of c.uses) {
          const entry = lstms.get(u.node) ?? { nodeIndex: u.nodeIndex, scope: u.scope };
          entry[u.slot === 1 ? 'W' : 'R'] = r.names;
          lstms.set(u.node, entry);
        }
        form = `com.microsoft DynamicQuantizeLSTM, ${plan.granularity === 'per_channel' ? 'per gate row' : 'per tensor'}`;
      } else {
        written = emitDynamic(edit, c, w, activations, o);
        form = dynamicForm(o, plan);
      }
      tensors.push(tensorRow(c, plan, w, originalBytes(c), bytesOf(written), form));
    }
    bytesDone += originalBytes(c);
    hooks.onProgress?.({ tensorsDone: i + 1, tensorsTotal: candidates.length, bytesDone, bytesTotal });
  });
  for (const [n, e] of lstms) if (e.W && e.R) rewriteLstm(edit, n, e.nodeIndex, e.scope, e.W, e.R);
  return {
    model: edit.apply(),
    tensors: rankTensors(tensors),
    skipped,
    opset,
    addedOpsets: edit.addedOpsets,
    floatWeightBytes: floatBytes,
    quantizedWeightBytes: tensors.reduce((s, t) => s + t.original_bytes, 0),
  };
}
