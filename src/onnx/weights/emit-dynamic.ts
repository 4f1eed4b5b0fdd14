import { INT_DTYPE_INFO } from '../../core/dtypes.js';
import { attrs, floatTensor, node, tensor } from '../graph/build.js';
import { DataType, type OnnxGraph, type OnnxNode, type OnnxTensor } from '../proto/model.js';
import type { GraphEdit } from '../graph/edit.js';
import { MS_DOMAIN } from './dq-form.js';
import { dropIdentities } from './emit-matmulnbits.js';
import type { WeightCandidate } from './find-weights.js';
import type { QuantizedWeight } from './quantize-weight.js';

// As onnxruntime's quantize_dynamic: activations are quantized to uint8 at run time, the
// product is accumulated in int32 and rescaled:
//   DynamicQuantizeLinear(A) → MatMulInteger(Aq, Wq, Azp, Wzp) → Cast → Mul(As * Ws) [→ Add(C)]
// onnxruntime fuses the chain into DynamicQuantizeMatMul.

// Below opset 11 (no DynamicQuantizeLinear; MatMulInteger from 10) the single
// com.microsoft DynamicQuantizeMatMul(A, Wq, Ws, Wzp, bias) does the same; it runs at any
// default opset (checked in onnxruntime-node 1.30 at opsets 9 and 10).

/** The opset DynamicQuantizeLinear comes in. */
export const DYNAMIC_OPSET = 11;

/** One DynamicQuantizeLinear per activation and graph, shared by every weight that multiplies it. */
export type ActivationQuant = Map<OnnxGraph, Map<string, { q: string; scale: string; zeroPoint: string }>>;

function quantizeActivation(edit: GraphEdit, scope: OnnxGraph, a: string, shared: ActivationQuant) {
  const inScope = shared.get(scope) ?? new Map<string, { q: string; scale: string; zeroPoint: string }>();
  shared.set(scope, inScope);
  const have = inScope.get(a);
  if (have) return have;
  const names = { q: edit.unique(`${a}_quantized`), scale: edit.unique(`${a}_scale`), zeroPoint: edit.unique(`${a}_zero_point`) };
  const dql = node('DynamicQuantizeLinear', [a], [names.q, names.scale, names.zeroPoint], { name: edit.unique(`${a}_DynamicQuantizeLinear`) });
  const producer = scope.nodes.findIndex((n) => n.outputs.includes(a));
  if (producer < 0) edit.prepend(dql, scope);
  else edit.insertAfter(producer, dql, scope);
  inScope.set(a, names);
  return names;
}

export function emitDynamic(edit: GraphEdit, c: WeightCandidate, w: QuantizedWeight, shared: ActivationQuant, opset: number): OnnxTensor[] {
  const signed = w.params.scheme === 'symmetric';
  const container = signed ? 'int8' : 'uint8';
  const elemType = signed ? DataType.int8 : DataType.uint8;
  const [d0, d1] = c.tensor.dims as [number, number];
  // MatMulInteger wants W as [K, N]; Gemm with transB=1 stores [N, K].
  const transposed = c.uses[0]!.blockAxis === 1;
  let wq = w.q;
  let dims = [d0, d1];
  if (transposed) {
    const t = INT_DTYPE_INFO[container].create(w.q.length);
    for (let n = 0; n < d0; n++) for (let k = 0; k < d1; k++) t[k * d0 + n] = w.q[n * d1 + k]!;
    wq = t;
    dims = [d1, d0];
  }
  const zp = INT_DTYPE_INFO[container].create(w.params.zeroPoint.length);
  zp.set(w.params.zeroPoint);
  const paramDims = w.params.plan.paramShape;
  const qName = edit.unique(`${c.name}_quantized`);
  const sName = edit.unique(`${c.name}_scale`);
  const zName = edit.unique(`${c.name}_zero_point`);
  const tensors = [
    tensor(qName, elemType, dims, new Uint8Array(wq.buffer, wq.byteOffset, wq.byteLength)),
    floatTensor(sName, paramDims, w.params.scale),
    tensor(zName, elemType, paramDims, new Uint8Array(zp.buffer, zp.byteOffset, zp.byteLength)),
  ];

  if (opset < DYNAMIC_OPSET) {
    for (const use of c.uses) edit.replaceNode(use.nodeIndex, dynamicQuantizeMatMul(edit, use.node, [qName, sName, zName], dims[1]!, c.scope), use.scope);
    edit.requireOpset(MS_DOMAIN, 1);
  }
  for (const use of opset < DYNAMIC_OPSET ? [] : c.uses) {
    const n = use.node;
    const a = quantizeActivation(edit, use.scope, n.inputs[0]!, shared);
    const y = n.outputs[0]!;
    const base = n.name || edit.unique('MatMulInteger');
    const int32 = edit.unique(`${y}_int32`);
    const asFloat = edit.unique(`${y}_float`);
    const scale = edit.unique(`${y}_scale`);
    const bias = n.opType === 'Gemm' ? (n.inputs[2] ?? '') : '';
    const product = bias ? edit.unique(`${y}_matmul`) : y;
    const chain = [
      node('MatMulInteger', [a.q, qName, a.zeroPoint, zName], [int32], { name: base }),
      node('Cast', [int32], [asFloat], { name: edit.unique(`${base}_cast`), attributes: [attrs.int('to', DataType.float32)] }),
      node('Mul', [a.scale, sName], [scale], { name: edit.unique(`${base}_scales`) }),
      node('Mul', [asFloat, scale], [product], { name: edit.unique(`${base}_rescale`) }),
    ];
    if (bias) chain.push(node('Add', [product, bias], [y], { name: edit.unique(`${base}_bias`) }));
    edit.replaceNode(use.nodeIndex, chain, use.scope);
  }
  edit.replaceWeight(c, tensors);
  edit.forgetName(c.name);
  dropIdentities(edit, c);
  return tensors;
}

/** MatMul(A, W) or Gemm(A, W, C) → DynamicQuantizeMatMul(A, Wq, Ws, Wzp, [bias]) [+ Add(C)]. */
function dynamicQuantizeMatMul(edit: GraphEdit, n: OnnxNode, [qName, sName, zName]: string[], N: number, weightScope: OnnxGraph): OnnxNode[] {
  const bias = n.opType === 'Gemm' ? (n.inputs[2] ?? '') : '';
  const biasDims = bias ? weightScope.initializers.find((t) => t.name === bias)?.dims : undefined;
  const inSlot = biasDims !== undefined && biasDims.length === 1 && biasDims[0] === N;
  const inputs = [n.inputs[0]!, qName!, sName!, zName!];
  if (inSlot) inputs.push(bias);
  const name = n.name || edit.unique('DynamicQuantizeMatMul');
  if (!bias || inSlot) return [node('DynamicQuantizeMatMul', inputs, n.outputs, { name, domain: MS_DOMAIN })];
  const tmp = edit.unique(`${n.outputs[0]}_matmul`);
  return [node('DynamicQuantizeMatMul', inputs, [tmp], { name, domain: MS_DOMAIN }), node('Add', [tmp, bias], n.outputs, { name: edit.unique(`${name}_bias`) })];
}
