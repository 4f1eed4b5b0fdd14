import type { OnnxValueInfo } from './model.js';
import { Reader, WIRE_LEN, WIRE_VARINT } from './wire.js';

// The tensor type of a ValueInfoProto (name 1, type 2 → TypeProto.tensor_type 1 → elem_type 1,
// shape 2 → TensorShapeProto.dim 1 → dim_value 1 | dim_param 2), read on demand: the decoder
// keeps value_info as bytes, and only calibration needs to know element types and dims.

/** A dimension: a number when static, a string when symbolic, undefined when unnamed. */
export type Dim = number | string | undefined;

export interface TensorType {
  /** TensorProto.DataType; 0 when the type is a tensor without an element type. */
  elemType: number;
  /** undefined when the shape is unknown (not even the rank). */
  shape: Dim[] | undefined;
}

function dimension(src: Uint8Array, path: string): Dim {
  const r = new Reader(src, path);
  let d: Dim;
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 1 && w === WIRE_VARINT) d = r.int64Number('dim_value');
    else if (f === 2 && w === WIRE_LEN) d = r.string();
    else r.skip(w, f);
  }
  return d;
}

function shapeOf(src: Uint8Array, path: string): Dim[] {
  const r = new Reader(src, path);
  const dims: Dim[] = [];
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 1 && w === WIRE_LEN) dims.push(dimension(r.bytes(), `${path}.dim`));
    else r.skip(w, f);
  }
  return dims;
}

function tensorTypeOf(src: Uint8Array, path: string): TensorType {
  const r = new Reader(src, path);
  const t: TensorType = { elemType: 0, shape: undefined };
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 1 && w === WIRE_VARINT) t.elemType = r.int32();
    else if (f === 2 && w === WIRE_LEN) t.shape = shapeOf(r.bytes(), `${path}.shape`);
    else r.skip(w, f);
  }
  return t;
}

/** The value's tensor type, or undefined when it has no type or is not a tensor (sequence, map, ...). */
export function tensorType(v: OnnxValueInfo): TensorType | undefined {
  const r = new Reader(v.src, `ValueInfoProto '${v.name}'`);
  let found: TensorType | undefined;
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 2 && w === WIRE_LEN) {
      const tr = new Reader(r.bytes(), `${r.path}.type`);
      while (!tr.done) {
        const [tf, tw] = tr.tag();
        if (tf === 1 && tw === WIRE_LEN) found = tensorTypeOf(tr.bytes(), `${tr.path}.tensor_type`);
        else tr.skip(tw, tf);
      }
    } else r.skip(w, f);
  }
  return found;
}
