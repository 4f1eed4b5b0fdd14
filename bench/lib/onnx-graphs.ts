import protobuf from 'protobufjs';

// The onnxruntime baselines, built as ONNX models in code: the few ModelProto fields they
// need, written with protobufjs from this excerpt of onnx.proto (field numbers as upstream).

const PROTO = `
syntax = "proto3";
package onnx;
message OperatorSetIdProto { string domain = 1; int64 version = 2; }
message TensorShapeProto { message Dimension { int64 dim_value = 1; } repeated Dimension dim = 1; }
message TypeProto { message Tensor { int32 elem_type = 1; TensorShapeProto shape = 2; } Tensor tensor_type = 1; }
message ValueInfoProto { string name = 1; TypeProto type = 2; }
message TensorProto { repeated int64 dims = 1; int32 data_type = 2; repeated float float_data = 4; repeated int32 int32_data = 5; string name = 8; }
message AttributeProto { string name = 1; int64 i = 3; int32 type = 20; }
message NodeProto { repeated string input = 1; repeated string output = 2; string name = 3; string op_type = 4; repeated AttributeProto attribute = 5; }
message GraphProto { repeated NodeProto node = 1; string name = 2; repeated TensorProto initializer = 5; repeated ValueInfoProto input = 11; repeated ValueInfoProto output = 12; }
message ModelProto { int64 ir_version = 1; string producer_name = 2; GraphProto graph = 7; repeated OperatorSetIdProto opset_import = 8; }
`;

const FLOAT = 1;
const UINT8 = 2;
const INT8 = 3;
const ATTR_INT = 2;

const Model = protobuf.parse(PROTO).root.lookupType('onnx.ModelProto');

interface Node {
  op: string;
  inputs: string[];
  outputs: string[];
  ints?: Record<string, number>;
}

function valueInfo(name: string, elemType: number, dims: number[]) {
  return { name, type: { tensorType: { elemType, shape: { dim: dims.map((d) => ({ dimValue: d })) } } } };
}

function model(nodes: Node[], initializers: object[], inputs: object[], outputs: object[]): Uint8Array {
  const graph = {
    name: 'bench',
    node: nodes.map((n, i) => ({
      name: `n${i}`,
      opType: n.op,
      input: n.inputs,
      output: n.outputs,
      attribute: Object.entries(n.ints ?? {}).map(([name, i]) => ({ name, i, type: ATTR_INT })),
    })),
    initializer: initializers,
    input: inputs,
    output: outputs,
  };
  const message = Model.fromObject({ irVersion: 8, producerName: 'quantd-bench', opsetImport: [{ domain: '', version: 13 }], graph });
  return Model.encode(message).finish();
}

/** int8 symmetric per tensor: scale = max|x| / 127, then QuantizeLinear (x / scale, ties to even). */
export function absMaxQuantizeModel(n: number): Uint8Array {
  return model(
    [
      { op: 'Abs', inputs: ['X'], outputs: ['A'] },
      { op: 'ReduceMax', inputs: ['A'], outputs: ['M'], ints: { keepdims: 0 } },
      { op: 'Div', inputs: ['M', 'QMAX'], outputs: ['S'] },
      { op: 'QuantizeLinear', inputs: ['X', 'S', 'ZP'], outputs: ['Q'] },
    ],
    [
      { name: 'QMAX', dataType: FLOAT, floatData: [127] },
      { name: 'ZP', dataType: INT8, int32Data: [0] },
    ],
    [valueInfo('X', FLOAT, [n])],
    [valueInfo('Q', INT8, [n])],
  );
}

/** uint8 asymmetric per tensor with its own min-max calibration. */
export function dynamicQuantizeModel(n: number): Uint8Array {
  return model(
    [{ op: 'DynamicQuantizeLinear', inputs: ['X'], outputs: ['Y', 'S', 'ZP'] }],
    [],
    [valueInfo('X', FLOAT, [n])],
    [valueInfo('Y', UINT8, [n]), valueInfo('S', FLOAT, []), valueInfo('ZP', UINT8, [])],
  );
}

/** int8 per channel along axis 0 of [rows, cols], scales given (no calibration). */
export function perAxisQuantizeModel(rows: number, cols: number): Uint8Array {
  return model(
    [{ op: 'QuantizeLinear', inputs: ['X', 'S', 'ZP'], outputs: ['Q'], ints: { axis: 0 } }],
    [{ name: 'ZP', dataType: INT8, dims: [rows], int32Data: new Array<number>(rows).fill(0) }],
    [valueInfo('X', FLOAT, [rows, cols]), valueInfo('S', FLOAT, [rows])],
    [valueInfo('Q', INT8, [rows, cols])],
  );
}

/** Xᵀ·X for X [n, k]: one Gemm with transA (the onnxruntime baseline of GPTQ's Hessian accumulation). */
export function gramModel(n: number, k: number): Uint8Array {
  return model(
    [{ op: 'Gemm', inputs: ['X', 'X'], outputs: ['Y'], ints: { transA: 1 } }],
    [],
    [valueInfo('X', FLOAT, [n, k])],
    [valueInfo('Y', FLOAT, [k, k])],
  );
}
