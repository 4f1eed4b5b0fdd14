import { checkGraph } from '../graph/check.js';
import { DataType, dataTypeName, defaultOpset, type OnnxGraph, type OnnxModel, type OnnxNode, type OnnxTensor } from '../proto/model.js';
import { readFloat, readFloatInto, storedBytes, WEIGHT_FLOAT_TYPES, type ExternalData } from '../proto/tensor-data.js';
import { countNonFinite } from '../../core/kernels/calibrate.js';
import { WeightScratch } from './scratch.js';
import { GraphEdit } from '../graph/edit.js';
import { ModelScopes } from '../graph/scopes.js';
import { DYNAMIC_OPSET, emitDynamic, type ActivationQuant } from './emit-dynamic.js';
import { emitGatherBlockQuantized } from './emit-gather.js';
import { emitMatMulNBits } from './emit-matmulnbits.js';
import { emitQdq } from './emit-qdq.js';
import { findWeights, initializerInputNames, type Skipped, type WeightCandidate } from './find-weights.js';
import { INITIALIZER_INPUT_NOTE, type ModelQuantOptions } from './options.js';
import { checkOptionsForModel, planWeight, type PlanResult, type WeightPlan } from './plan.js';
import { emitLstmWeight, rewriteLstm, type LstmWeight } from './emit-dynamic-lstm.js';
import { quantizeWeight, specFor, type QuantizedWeight } from './quantize-weight.js';
import { emitFp8, fp8TypeOf, quantizeFp8Weight } from './emit-fp8.js';
import { emitNf4, NF4_NOTE, quantizeNf4Weight } from './emit-nf4.js';
import { reportFromSums, type ErrorReport } from '../../core/metrics.js';
import { quantize } from '../../core/quantize.js';
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

/**
 * A data-aware method's result for one weight: the integers and parameters the emitters
 * write, and what the report says (the error against the original weight when the stored
 * one was transformed, as AWQ's scaled weights are).
 */
export interface WeightOverride {
  weight: QuantizedWeight;
  method: string;
  error?: ErrorReport | undefined;
  proxyLossReduction?: number | null | undefined;
  note?: string | undefined;
}

export interface QuantizeModelHooks {
  external?: ExternalData | undefined;
  onProgress?: ((p: ModelProgress) => void) | undefined;
  /** Quantizes a weight instead of quantizeWeight, or says why it is left to it (rounded to nearest). */
  quantizeWeight?: ((c: WeightCandidate, plan: WeightPlan, values: Float32Array) => WeightOverride | string) | undefined;
  /** Sees each weight's new tensors once they are in the model (a job spills them to a file: io/spill.ts). */
  onWritten?: ((tensors: OnnxTensor[]) => void) | undefined;
}

function addNote(row: TensorRow, note: string | undefined): void {
  if (note) row.note = row.note ? `${row.note}; ${note}` : note;
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
 * The NF4 and FP8 emitters write float32 weights read directly (or through ops that keep
 * their name) by main-graph nodes; anything else is explained rather than written wrong.
 */
function floatFormatProblem(c: WeightCandidate, format: 'nf4' | 'fp8e4m3' | 'fp8e5m2'): string | undefined {
  if (c.tensor.dataType !== DataType.float32) return `format=${format} quantizes float32 weights; this one is ${dataTypeName(c.tensor.dataType)} (use format=qdq or matmulnbits)`;
  if (c.scopeLabel !== 'main graph') return `format=${format} quantizes weights of the main graph; this one is in ${c.scopeLabel} (use format=qdq)`;
  if (format === 'nf4' && c.uses.some((u) => u.via.length > 0)) return `MatMulBnb4 reads the weight directly, and a ${c.uses.find((u) => u.via.length > 0)!.via.join(' → ')} stands between (use format=matmulnbits)`;
  return undefined;
}

/** The index of the first NaN or ±Inf, or -1: the kernels count them, a plain loop finds the first (findIndex's callback cost a quarter of the model path). */
function firstNonFinite(values: Float32Array): number {
  if (countNonFinite(values) === 0) return -1;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    // v - v is 0 for every finite v and NaN for NaN and ±Inf.
    if (v - v !== 0) return i;
  }
  return -1;
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
  // The weights rounded to nearest share one scratch (a data-aware method's hook, or the
  // float-valued formats, get values of their own, which they may keep).
  const scratched = (p: PlanResult) => !hooks.quantizeWeight && !('skip' in p) && (p.format === 'qdq' || p.format === 'matmulnbits' || p.format === 'dynamic');
  const most = candidates.reduce((m, c, i) => (scratched(plans[i]!) ? Math.max(m, c.elements) : m), 0);
  const scratch = most > 0 ? WeightScratch.take(most) : undefined;
  const read = (c: WeightCandidate, plan: PlanResult): Float32Array => {
    if (!scratch || !scratched(plan)) return readFloat(c.tensor, hooks.external);
    const values = scratch.floats(c.elements);
    readFloatInto(c.tensor, hooks.external, values, scratch.after(c.elements, 2 * c.elements));
    return values;
  };
  try {
    candidates.forEach((c, i) => {
      const plan = plans[i]!;
      const values = 'skip' in plan ? undefined : read(c, plan);
      const bad = values ? firstNonFinite(values) : -1;
      if ('skip' in plan) skipped.push({ name: c.name, reason: plan.skip });
      else if (bad >= 0) skipped.push({ name: c.name, reason: `holds ${values![bad]} at element ${bad}: a tensor with Inf or NaN (a mask?) is left float` });
      else if (values && (plan.format === 'nf4' || plan.format === 'fp8e4m3' || plan.format === 'fp8e5m2')) {
        const problem = floatFormatProblem(c, plan.format);
        if (problem) skipped.push({ name: c.name, reason: problem });
        else if (plan.format === 'nf4') {
          const w = quantizeNf4Weight(values, c, plan);
          const written = emitNf4(edit, c, plan, w);
          const row = tensorRow(c, plan, { params: { scale: w.absmax }, error: w.error }, originalBytes(c), bytesOf(written), 'com.microsoft MatMulBnb4, quant_type NF4');
          row.note = row.note ? `${row.note}; ${NF4_NOTE}` : NF4_NOTE;
          tensors.push(row);
          hooks.onWritten?.(written);
        } else {
          const w = quantizeFp8Weight(values, c.tensor.dims, plan, fp8TypeOf(plan.format));
          const written = emitFp8(edit, c, plan, w);
          const row = tensorRow(c, plan, { params: { scale: w.scale }, error: w.error }, originalBytes(c), bytesOf(written), `DequantizeLinear (${w.type}, opset ${o})`);
          // Beside it, what int8 reaches on the same weight with the same granularity.
          const int8 = quantize(values, c.tensor.dims, specFor({ ...plan, bits: 8 }, { scheme: 'symmetric', calibration: 'minmax', percentile: opts.percentile }));
          row.int8_snr_db = reportFromSums(int8.sums).snr_db;
          tensors.push(row);
          hooks.onWritten?.(written);
        }
      } else if (values) {
        const override = hooks.quantizeWeight?.(c, plan, values);
        let w = typeof override === 'object' ? override.weight : quantizeWeight(values, c.tensor.dims, plan, opts);
        // Integers in the scratch are gone with the next weight: only MatMulNBits' own packing leaves them behind.
        const packedApart = plan.format === 'matmulnbits' && !c.uses.some((u) => u.opType === 'Gather');
        if (scratch?.owns(w.q) && !packedApart) w = { ...w, q: w.q.slice() };
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
        const row = tensorRow(c, plan, typeof override === 'object' && override.error ? { ...w, error: override.error } : w, originalBytes(c), bytesOf(written), form);
        if (typeof override === 'object') {
          row.method = override.method;
          if (override.proxyLossReduction !== undefined) row.proxy_loss_reduction = override.proxyLossReduction;
          addNote(row, override.note);
        } else if (typeof override === 'string') {
          row.method = 'rtn';
          addNote(row, `${opts.method} not applied: ${override}`);
        }
        tensors.push(row);
        hooks.onWritten?.(written);
      }
      bytesDone += originalBytes(c);
      hooks.onProgress?.({ tensorsDone: i + 1, tensorsTotal: candidates.length, bytesDone, bytesTotal });
    });
  } finally {
    if (scratch) WeightScratch.release(scratch);
  }
  for (const [n, e] of lstms) if (e.W && e.R) rewriteLstm(edit, n, e.nodeIndex, e.scope, e.W, e.R);
  // Every emitter takes a replaced weight out of graph.input; the row says so. The initializers
  // left float (biases, small weights) leave it too, as format=static's do: the quantized
  // model's inputs are its real ones (onnxruntime's remove_initializer_from_input.py).
  const wereInputs = new Set(candidates.filter((c) => c.alsoInput).map((c) => c.name));
  for (const row of tensors) if (wereInputs.has(row.name)) addNote(row, INITIALIZER_INPUT_NOTE);
  if (opts.initializerInputs === 'quantize') for (const name of initializerInputNames(model)) edit.dropInput(name);
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
