import { DataType, attr, type OnnxModel, type OnnxNode } from '../proto/model.js';
import { Reader, WIRE_LEN } from '../proto/wire.js';

// Element types of every tensor of the main graph, without onnx shape inference: declared
// types (inputs, outputs, value_info, initializers, Constant values) first, then each node's
// outputs by a small table of the ops that change the type; every other op keeps the type of
// its first typed input. Only float32 tensors are ever quantized, so a wrong guess here
// costs a missed Q/DQ pair, never a broken graph (onnxruntime checks what we emit).

function valueInfoElemType(src: Uint8Array): number | undefined {
  // ValueInfoProto.type (2) → TypeProto.tensor_type (1) → elem_type (1).
  const find = (buf: Uint8Array, field: number): Uint8Array | undefined => {
    const r = new Reader(buf, 'ValueInfoProto');
    while (!r.done) {
      const [f, w] = r.tag();
      if (f === field && w === WIRE_LEN) return r.bytes();
      r.skip(w, f);
    }
    return undefined;
  };
  const type = find(src, 2);
  const tensorType = type && find(type, 1);
  if (!tensorType) return undefined;
  const r = new Reader(tensorType, 'TypeProto.Tensor');
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 1 && w === 0) return r.uint();
    r.skip(w, f);
  }
  return undefined;
}

const INT64_OUT = new Set(['Shape', 'Size', 'ArgMax', 'ArgMin', 'NonZero', 'NonMaxSuppression']);
const BOOL_OUT = new Set(['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'Not', 'And', 'Or', 'Xor', 'IsNaN', 'IsInf']);

function outputTypes(n: OnnxNode, typeOf: (name: string) => number | undefined): (number | undefined)[] {
  const first = n.inputs.map((i) => (i ? typeOf(i) : undefined)).find((t) => t !== undefined);
  const all = (t: number | undefined) => n.outputs.map(() => t);
  if (INT64_OUT.has(n.opType)) return all(DataType.int64);
  if (BOOL_OUT.has(n.opType)) return all(DataType.bool);
  switch (n.opType) {
    case 'Constant': {
      const v = attr(n, 'value')?.t;
      if (v) return [v.dataType];
      if (attr(n, 'value_float') || attr(n, 'value_floats')) return [DataType.float32];
      return [DataType.int64];
    }
    case 'Cast': {
      const to = attr(n, 'to')?.i;
      return all(to === undefined ? undefined : Number(to));
    }
    case 'CastLike':
      return all(typeOf(n.inputs[1] ?? ''));
    case 'ConstantOfShape':
      return all(attr(n, 'value')?.t?.dataType ?? DataType.float32);
    case 'Where':
      return all(typeOf(n.inputs[1] ?? ''));
    case 'TopK':
    case 'MaxPool':
      return n.outputs.map((_, i) => (i === 0 ? first : DataType.int64));
    case 'DequantizeLinear':
      return all(typeOf(n.inputs[1] ?? '') ?? DataType.float32);
    case 'QuantizeLinear':
      return all(n.inputs[2] ? typeOf(n.inputs[2]) : DataType.uint8);
    case 'DynamicQuantizeLinear':
      return [DataType.uint8, DataType.float32, DataType.uint8];
    default:
      return all(first);
  }
}

export function tensorTypes(model: OnnxModel): Map<string, number> {
  const g = model.graph;
  const types = new Map<string, number>();
  const set = (name: string, t: number | undefined) => {
    if (t !== undefined && name && !types.has(name)) types.set(name, t);
  };
  for (const v of [...g.inputs, ...g.outputs, ...g.valueInfo]) set(v.name, valueInfoElemType(v.src));
  for (const t of g.initializers) set(t.name, t.dataType);
  for (const n of g.nodes) {
    const out = outputTypes(n, (name) => types.get(name));
    n.outputs.forEach((o, i) => set(o, out[i]));
  }
  return types;
}
