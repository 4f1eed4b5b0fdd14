import { INT_DTYPE_INFO } from '../../core/dtypes.js';
import { floatTensor, node, tensor } from '../graph/build.js';
import { DataType, type OnnxGraph, type OnnxNode, type OnnxTensor } from '../proto/model.js';
import type { GraphEdit } from '../graph/edit.js';
import { MS_DOMAIN } from './dq-form.js';
import type { WeightCandidate } from './find-weights.js';
import type { QuantizedWeight } from './quantize-weight.js';

// format=dynamic for LSTM: LSTM(X, W, R, B, ...) → com.microsoft DynamicQuantizeLSTM(X, Wq,
// Rq, B, sequence_lens, initial_h, initial_c, P, W_scale, W_zero_point, R_scale,
// R_zero_point), same attributes and outputs. As onnxruntime-node 1.30 runs it (checked
// against the LSTM on the dequantized weights: cosine 0.999999, max difference 2.5e-4 from
// the activations' dynamic uint8 quantization): Wq int8 [dirs, input, 4·hidden] and Rq int8
// [dirs, hidden, 4·hidden] (the LSTM's W and R transposed), scales and int8 zero points
// [dirs, 4·hidden] per channel or [dirs] per tensor. W and R are both needed: the LSTM is
// rewritten once both are ready.

export interface LstmWeight {
  q: string;
  scale: string;
  zeroPoint: string;
}

/** W's or R's tensors; the node rewrite waits for its partner (`rewriteLstm`). */
export function emitLstmWeight(edit: GraphEdit, c: WeightCandidate, w: QuantizedWeight): { tensors: OnnxTensor[]; names: LstmWeight } {
  const [dirs, rows, cols] = c.tensor.dims as [number, number, number];
  const qt = new Int8Array(dirs * rows * cols);
  for (let d = 0; d < dirs; d++) {
    const base = d * rows * cols;
    for (let g = 0; g < rows; g++) for (let k = 0; k < cols; k++) qt[base + k * rows + g] = w.q[base + g * cols + k]!;
  }
  // The tensor API's per-channel scales along axis 1 are shared by the directions: tiled per direction.
  const perChannel = w.params.scale.length === rows;
  const scale = new Float32Array(perChannel ? dirs * rows : dirs);
  for (let d = 0; d < dirs; d++) {
    if (perChannel) scale.set(w.params.scale, d * rows);
    else scale[d] = w.params.scale[0]!;
  }
  const zp = INT_DTYPE_INFO.int8.create(scale.length);
  const dims = perChannel ? [dirs, rows] : [dirs];
  const names = { q: edit.unique(`${c.name}_quantized`), scale: edit.unique(`${c.name}_scale`), zeroPoint: edit.unique(`${c.name}_zero_point`) };
  const tensors = [
    tensor(names.q, DataType.int8, [dirs, cols, rows], qt),
    floatTensor(names.scale, dims, scale),
    tensor(names.zeroPoint, DataType.int8, dims, new Uint8Array(zp.buffer, zp.byteOffset, zp.byteLength)),
  ];
  edit.replaceWeight(c, tensors);
  edit.forgetName(c.name);
  return { tensors, names };
}

export function rewriteLstm(edit: GraphEdit, n: OnnxNode, nodeIndex: number, scope: OnnxGraph, W: LstmWeight, R: LstmWeight): void {
  const optional = [3, 4, 5, 6, 7].map((i) => n.inputs[i] ?? ''); // B, sequence_lens, initial_h, initial_c, P
  const inputs = [n.inputs[0]!, W.q, R.q, ...optional, W.scale, W.zeroPoint, R.scale, R.zeroPoint];
  const attributes = n.attributes.filter((a) => a.name !== 'layout');
  edit.replaceNode(nodeIndex, [node('DynamicQuantizeLSTM', inputs, n.outputs, { name: n.name || edit.unique('DynamicQuantizeLSTM'), domain: MS_DOMAIN, attributes })], scope);
  edit.requireOpset(MS_DOMAIN, 1);
}
