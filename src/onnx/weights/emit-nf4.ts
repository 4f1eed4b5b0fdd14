import { reportFromSums, type ErrorReport } from '../../core/metrics.js';
import { packNf4, quantizeNf4 } from '../../core/nf4.js';
import { attrs, floatTensor, node, tensor } from '../graph/build.js';
import { DataType, type OnnxNode, type OnnxTensor } from '../proto/model.js';
import type { GraphEdit } from '../graph/edit.js';
import type { WeightCandidate } from './find-weights.js';
import type { WeightPlan } from './plan.js';
import { MS_DOMAIN } from './emit-matmulnbits.js';

// com.microsoft MatMulBnb4 with quant_type 1 (NF4), layout probed on onnxruntime 1.30 (see
// README): B is the weight transposed to [N, K], flattened, and cut into blocks of
// block_size consecutive values (a block runs across rows when K is not a multiple of it),
// uint8 [ceil(N·K / 2)] with the first value of each pair in the HIGH nibble; absmax float
// [ceil(N·K / block_size)]. No bias input: a Gemm's C is added after it.

export const NF4_QUANT_TYPE = 1;

/** Stated in every NF4 row of the report. */
export const NF4_NOTE = "NF4 saves storage only: onnxruntime's CPU MatMulBnb4 dequantizes the whole weight to float32 on every call, then multiplies";

export interface Nf4Weight {
  K: number;
  N: number;
  packed: Uint8Array;
  absmax: Float32Array;
  error: ErrorReport;
}

/** The weight as [N, K] (W is [K, N] for MatMul and Gemm transB=0, [N, K] for Gemm transB=1). */
function transposedNK(values: Float32Array, c: WeightCandidate): { K: number; N: number; nk: Float32Array } {
  const [d0, d1] = c.tensor.dims as [number, number];
  if (c.uses[0]!.blockAxis === 1) return { K: d1, N: d0, nk: values };
  const K = d0;
  const N = d1;
  const nk = new Float32Array(values.length);
  for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) nk[n * K + k] = values[k * N + n]!;
  return { K, N, nk };
}

export function quantizeNf4Weight(values: Float32Array, c: WeightCandidate, plan: WeightPlan): Nf4Weight {
  const { K, N, nk } = transposedNK(values, c);
  const { codes, absmax, sums } = quantizeNf4(nk, plan.groupSize);
  return { K, N, packed: packNf4(codes), absmax, error: reportFromSums(sums) };
}

export function emitNf4(edit: GraphEdit, c: WeightCandidate, plan: WeightPlan, w: Nf4Weight): OnnxTensor[] {
  const bName = edit.unique(`${c.name}_nf4`);
  const aName = edit.unique(`${c.name}_absmax`);
  const tensors = [tensor(bName, DataType.uint8, [w.packed.length], w.packed), floatTensor(aName, [w.absmax.length], w.absmax)];
  const attributes = () => [attrs.int('K', w.K), attrs.int('N', w.N), attrs.int('block_size', plan.groupSize), attrs.int('quant_type', NF4_QUANT_TYPE)];
  for (const use of c.uses) edit.replaceNode(use.nodeIndex, rewriteUse(edit, use.node, bName, aName, attributes()), use.scope);
  edit.replaceWeight(c, tensors);
  edit.forgetName(c.name);
  edit.requireOpset(MS_DOMAIN, 1);
  return tensors;
}

/** MatMul(A, W) or Gemm(A, W[, C]) → MatMulBnb4(A, B, absmax) [+ Add(C)]. */
function rewriteUse(edit: GraphEdit, n: OnnxNode, bName: string, aName: string, attributes: OnnxNode['attributes']): OnnxNode[] {
  const bias = n.opType === 'Gemm' ? (n.inputs[2] ?? '') : '';
  const name = n.name || edit.unique('MatMulBnb4');
  const inputs = [n.inputs[0]!, bName, aName];
  if (!bias) return [node('MatMulBnb4', inputs, n.outputs, { name, domain: MS_DOMAIN, attributes })];
  const tmp = edit.unique(`${n.outputs[0]}_matmul`);
  return [node('MatMulBnb4', inputs, [tmp], { name, domain: MS_DOMAIN, attributes }), node('Add', [tmp, bias], n.outputs, { name: edit.unique(`${name}_bias`) })];
}
