import { attrInt, DataType, type OnnxModel } from '../proto/model.js';
import { tensorType } from '../proto/value-type.js';

// Element types of the main graph's tensors without running shape inference: what value_info,
// graph inputs/outputs and initializers declare, then, in node order, the outputs of ops whose
// (first) output always has the element type of their first input, and Cast's `to`. A tensor
// these rules cannot type is left out (callers treat it as unknown).

/** Ops whose first output has their first input's element type (ONNX operator specs). */
const SAME_AS_FIRST_INPUT = new Set([
  'Abs', 'Add', 'AveragePool', 'BatchNormalization', 'Ceil', 'Clip', 'Concat', 'Conv', 'ConvTranspose', 'Div', 'Dropout', 'Elu', 'Erf',
  'Exp', 'Expand', 'Flatten', 'Floor', 'Gather', 'GatherElements', 'GatherND', 'Gelu', 'Gemm', 'GlobalAveragePool', 'GlobalMaxPool',
  'HardSigmoid', 'HardSwish', 'Identity', 'InstanceNormalization', 'LayerNormalization', 'LeakyRelu', 'Log', 'LpNormalization',
  'MatMul', 'Max', 'MaxPool', 'Mean', 'Min', 'Mish', 'Mul', 'Neg', 'Pad', 'Pow', 'PRelu', 'Reciprocal', 'ReduceL2', 'ReduceMax',
  'ReduceMean', 'ReduceMin', 'ReduceSum', 'Relu', 'Reshape', 'Resize', 'Selu', 'Sigmoid', 'Sin', 'Cos', 'Slice', 'Softmax',
  'LogSoftmax', 'Softplus', 'Softsign', 'Split', 'Sqrt', 'Squeeze', 'Sub', 'Sum', 'Tanh', 'Tile', 'Transpose', 'Unsqueeze', 'Upsample',
  'DepthToSpace', 'SpaceToDepth', 'Einsum', 'CumSum', 'ReduceProd', 'Round', 'Sign', 'ThresholdedRelu', 'Celu', 'Shrink',
]);

export function elementTypes(model: OnnxModel): Map<string, number> {
  const g = model.graph;
  const types = new Map<string, number>();
  for (const t of g.initializers) types.set(t.name, t.dataType);
  for (const v of [...g.inputs, ...g.outputs, ...g.valueInfo]) {
    const t = tensorType(v);
    if (t && t.elemType !== 0) types.set(v.name, t.elemType);
  }
  for (const n of g.nodes) {
    if (n.domain !== '' && n.domain !== 'ai.onnx') continue;
    const out = n.outputs[0];
    if (!out || types.has(out)) continue;
    if (n.opType === 'Cast') types.set(out, attrInt(n, 'to', 0));
    else if (n.opType === 'Shape' || n.opType === 'Size' || n.opType === 'ArgMax' || n.opType === 'ArgMin') types.set(out, DataType.int64);
    else if (SAME_AS_FIRST_INPUT.has(n.opType)) {
      const t = types.get(n.inputs[0] ?? '');
      if (t !== undefined) {
        types.set(out, t);
        // Split's outputs all share the input's type.
        if (n.opType === 'Split') for (const o of n.outputs) if (o) types.set(o, t);
      }
    }
  }
  return types;
}
