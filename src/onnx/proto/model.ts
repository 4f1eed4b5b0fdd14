// The parts of an ONNX ModelProto this service reads or writes (field numbers from onnx.proto3,
// IR version 11). Everything else is kept as encoded bytes and written back unchanged: a
// decoded message keeps its original payload in `src` until it is replaced, so untouched
// nodes and initializers (and fields newer than this code) round-trip byte for byte.

/** TensorProto.DataType, as numbered in onnx.proto (type name as onnxruntime spells it). */
export const DataType = {
  float32: 1,
  uint8: 2,
  int8: 3,
  uint16: 4,
  int16: 5,
  int32: 6,
  int64: 7,
  string: 8,
  bool: 9,
  float16: 10,
  float64: 11,
  uint32: 12,
  uint64: 13,
  complex64: 14,
  complex128: 15,
  bfloat16: 16,
  float8e4m3fn: 17,
  float8e4m3fnuz: 18,
  float8e5m2: 19,
  float8e5m2fnuz: 20,
  uint4: 21,
  int4: 22,
  float4e2m1: 23,
  float8e8m0: 24,
  uint2: 25,
  int2: 26,
} as const;
export type DataTypeName = keyof typeof DataType;

const NAMES = new Map<number, DataTypeName>(Object.entries(DataType).map(([k, v]) => [v, k as DataTypeName]));
export function dataTypeName(t: number): string {
  return NAMES.get(t) ?? `data type ${t}`;
}

/** AttributeProto.AttributeType. */
export const AttrType = {
  float: 1,
  int: 2,
  string: 3,
  tensor: 4,
  graph: 5,
  floats: 6,
  ints: 7,
  strings: 8,
  tensors: 9,
  graphs: 10,
  sparseTensor: 11,
  sparseTensors: 12,
  typeProto: 13,
  typeProtos: 14,
} as const;

export const DATA_LOCATION_EXTERNAL = 1;

export interface KeyValue {
  key: string;
  value: string;
}

export interface OnnxTensor {
  name: string;
  dims: number[];
  dataType: number;
  /** A view into the input bytes (alignment not guaranteed: read through a copy or a DataView). */
  rawData?: Uint8Array | undefined;
  /** float_data payloads as read: packed runs or single 4-byte values, in order. */
  floatData?: Uint8Array[] | undefined;
  /** Other typed-data fields are present (int32_data, double_data, ...). */
  hasOtherData?: boolean | undefined;
  /** TensorProto.segment is set (a chunk of a larger tensor; never quantized). */
  segmented?: boolean | undefined;
  dataLocation: number;
  externalData: KeyValue[];
  src?: Uint8Array | undefined;
}

export interface OnnxAttribute {
  name: string;
  type: number;
  f?: number | undefined;
  i?: bigint | undefined;
  s?: Uint8Array | undefined;
  t?: OnnxTensor | undefined;
  floats?: number[] | undefined;
  ints?: bigint[] | undefined;
  /** A subgraph body (If branches, Loop and Scan bodies): decoded, its bytes kept in `src`. */
  g?: OnnxGraph | undefined;
  graphs?: OnnxGraph[] | undefined;
  src?: Uint8Array | undefined;
}

export interface OnnxNode {
  name: string;
  opType: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attributes: OnnxAttribute[];
  src?: Uint8Array | undefined;
}

export interface OnnxValueInfo {
  name: string;
  src: Uint8Array;
}

export interface OpsetId {
  domain: string;
  version: number;
}

/** A field kept as its complete encoded bytes (tag included), written back as is. */
export interface Span {
  field: number;
  bytes: Uint8Array;
}

export interface OnnxGraph {
  name: string;
  nodes: OnnxNode[];
  initializers: OnnxTensor[];
  /** Names defined by sparse_initializer entries (kept encoded in `other`). */
  sparseInitializerNames: string[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  valueInfo: OnnxValueInfo[];
  other: Span[];
}

export interface OnnxModel {
  irVersion: number;
  opsetImports: OpsetId[];
  graph: OnnxGraph;
  other: Span[];
}

/** The default-domain opset ('' and 'ai.onnx' are the same domain), or undefined. */
export function defaultOpset(model: OnnxModel): number | undefined {
  return model.opsetImports.find((o) => o.domain === '' || o.domain === 'ai.onnx')?.version;
}

export function attr(node: OnnxNode, name: string): OnnxAttribute | undefined {
  return node.attributes.find((a) => a.name === name);
}

export function attrInt(node: OnnxNode, name: string, fallback: number): number {
  const a = attr(node, name);
  return a?.i === undefined ? fallback : Number(a.i);
}

export function attrFloat(node: OnnxNode, name: string, fallback: number): number {
  const a = attr(node, name);
  return a?.f === undefined ? fallback : a.f;
}

/** Bits per element of the fixed-size types (strings have no fixed size). */
const ELEMENT_BITS: Record<number, number> = {
  1: 32, 2: 8, 3: 8, 4: 16, 5: 16, 6: 32, 7: 64, 9: 8, 10: 16, 11: 64, 12: 32, 13: 64, 14: 64, 15: 128, 16: 16,
  17: 8, 18: 8, 19: 8, 20: 8, 21: 4, 22: 4, 23: 4, 24: 8, 25: 2, 26: 2,
};

/** Bytes n elements of a type take as raw_data, or undefined for strings and unknown types. */
export function rawBytes(dataType: number, n: number): number | undefined {
  const bits = ELEMENT_BITS[dataType];
  return bits === undefined ? undefined : Math.ceil((n * bits) / 8);
}
