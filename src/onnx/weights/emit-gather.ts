import { attrs, int64Tensor, node, tensor } from '../graph/build.js';
import { DataType, type OnnxTensor } from '../proto/model.js';
import type { GraphEdit } from '../graph/edit.js';
import { MS_DOMAIN } from './dq-form.js';
import { scaleTensor } from './emit-qdq.js';
import { dropIdentities, rewriteUse } from './emit-matmulnbits.js';
import type { WeightCandidate } from './find-weights.js';
import type { WeightPlan } from './plan.js';
import type { QuantizedWeight } from './quantize-weight.js';

// A 4-bit embedding: Gather(E, ids) → com.microsoft GatherBlockQuantized(data, ids, scales
// [, zero_points]; gather_axis 0, quantize_axis 1, block_size, bits 4). Its contract as
// onnxruntime-node 1.30 runs it (checked value by value): data uint8 [V, D/2], element 2i
// in the low nibble; scales [V, D/block] in the output's float type; zero points packed the
// same way [V, ceil(blocks/2)], or absent, meaning 8. The same bytes as MatMulNBits' B
// [N=V, blocks, block/2]: an embedding tied to the output projection (a MatMul reading it
// transposed, or a Gemm with transB=1) is stored once, and its MatMulNBits reads it through
// a Reshape (onnxruntime folds it; checked at optimization levels 'all' and 'disabled').

export function emitGatherBlockQuantized(
  edit: GraphEdit,
  c: WeightCandidate,
  plan: WeightPlan,
  w: QuantizedWeight,
  initializerDims: (name: string) => readonly number[] | undefined,
): OnnxTensor[] {
  const [V, D] = c.tensor.dims as [number, number];
  const bs = plan.groupSize;
  const blocks = D / bs;
  const symmetric = w.params.scheme === 'symmetric';
  const offset = symmetric ? 8 : 0;
  const data = new Uint8Array((V * D) / 2);
  for (let i = 0; i < V * D; i++) data[i >> 1]! |= (w.q[i]! + offset) << ((i & 1) * 4);
  const dName = edit.unique(`${c.name}_Q4`);
  const sName = edit.unique(`${c.name}_scales`);
  // The tensor API's per-group scales along axis 1 are [V, blocks], the layout wanted.
  const tensors = [tensor(dName, DataType.uint8, [V, D / 2], data), scaleTensor(sName, [V, blocks], w.params.scale, c.tensor.dataType)];
  const inputs = (ids: string) => [dName, ids, sName];
  let zName = '';
  if (!symmetric) {
    const row = Math.ceil(blocks / 2);
    const zp = new Uint8Array(V * row);
    for (let v = 0; v < V; v++) for (let b = 0; b < blocks; b++) zp[v * row + (b >> 1)]! |= w.params.zeroPoint[v * blocks + b]! << ((b & 1) * 4);
    zName = edit.unique(`${c.name}_zero_points`);
    tensors.push(tensor(zName, DataType.uint8, [V, row], zp));
  }
  let blocked = '';
  for (const use of c.uses) {
    const n = use.node;
    if (use.opType !== 'Gather') {
      if (!blocked) {
        blocked = edit.unique(`${c.name}_Q4_blocks`);
        const shape = edit.unique(`${c.name}_Q4_blocks_shape`);
        tensors.push(int64Tensor(shape, [3], [V, blocks, bs / 2]));
        edit.prepend(node('Reshape', [dName, shape], [blocked], { name: edit.unique(`${c.name}_Q4_Reshape`) }), c.scope);
      }
      const nbAttrs = [attrs.int('K', D), attrs.int('N', V), attrs.int('bits', 4), attrs.int('block_size', bs)];
      edit.replaceNode(use.nodeIndex, rewriteUse(edit, n, [blocked, sName, zName], nbAttrs, V, initializerDims), use.scope);
      continue;
    }
    const attributes = [attrs.int('gather_axis', 0), attrs.int('quantize_axis', 1), attrs.int('block_size', bs), attrs.int('bits', 4)];
    const ins = inputs(n.inputs[1]!);
    if (zName) ins.push(zName);
    edit.replaceNode(use.nodeIndex, [node('GatherBlockQuantized', ins, n.outputs, { name: n.name || edit.unique('GatherBlockQuantized'), domain: MS_DOMAIN, attributes })], use.scope);
  }
  edit.replaceWeight(c, tensors);
  edit.forgetName(c.name);
  dropIdentities(edit, c);
  edit.requireOpset(MS_DOMAIN, 1);
  return tensors;
}
