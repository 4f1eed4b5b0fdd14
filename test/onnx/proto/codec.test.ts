import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { attrs, floatTensor, graph, model, node, valueInfo } from '../../../src/onnx/graph/build.js';
import { decodeModel } from '../../../src/onnx/proto/decode.js';
import { encodeGraph, encodeModel, encodeModelBytes } from '../../../src/onnx/proto/encode.js';
import { checkGraph } from '../../../src/onnx/graph/check.js';
import { AttrType, DataType } from '../../../src/onnx/proto/model.js';
import { readFloat32 } from '../../../src/onnx/proto/tensor-data.js';
import { Parts } from '../../../src/onnx/proto/wire.js';
import { constantWeights, gemmMlp, matmulNet } from '../models.js';

function onnxError(fn: () => unknown, message?: RegExp): void {
  assert.throws(fn, (err: { code?: string; message: string }) => {
    assert.equal(err.code, 'QUANT_ERR_ONNX', `wrong error: ${String(err)}`);
    if (message) assert.match(err.message, message);
    return true;
  });
}

/** decodeModel must return or throw QUANT_ERR_ONNX: never anything else. */
function decodesOrRefuses(bytes: Uint8Array): void {
  try {
    decodeModel(bytes);
  } catch (err) {
    assert.equal((err as { code?: string }).code, 'QUANT_ERR_ONNX', `unexpected ${String(err)}`);
  }
}

const varint = (v: number) => new Parts().varint(v).concat();

describe('ONNX codec', () => {
  it('round trips a model byte for byte, and keeps raw_data as views of the input', () => {
    for (const { bytes } of [gemmMlp(), matmulNet(9, 3), constantWeights()]) {
      const m = decodeModel(bytes);
      assert.deepEqual(Buffer.from(encodeModelBytes(m)), Buffer.from(bytes));
      const raw = m.graph.initializers[0]?.rawData;
      if (raw) assert.equal(raw.buffer, bytes.buffer, 'raw_data is a view, not a copy');
    }
  });

  it('decodes the fields the quantizer reads', () => {
    const m = decodeModel(gemmMlp(17).bytes);
    assert.equal(m.irVersion, 8);
    assert.deepEqual(m.opsetImports, [{ domain: '', version: 17 }]);
    assert.deepEqual(
      m.graph.nodes.map((n) => [n.name, n.opType, n.inputs, n.outputs]),
      [
        ['fc1', 'Gemm', ['x', 'W1', 'b1'], ['h']],
        ['relu', 'Relu', ['h'], ['r']],
        ['fc2', 'Gemm', ['r', 'W2', 'b2'], ['y']],
      ],
    );
    assert.equal(m.graph.nodes[2]!.attributes[0]!.name, 'transB');
    assert.equal(m.graph.nodes[2]!.attributes[0]!.i, 1n);
    assert.deepEqual(m.graph.initializers.map((t) => [t.name, t.dims, t.dataType]), [
      ['W1', [256, 512], 1],
      ['b1', [512], 1],
      ['W2', [128, 512], 1],
      ['b2', [128], 1],
    ]);
    assert.deepEqual(m.graph.inputs.map((v) => v.name), ['x']);
    assert.deepEqual(m.graph.valueInfo.map((v) => v.name), ['h']);
  });

  it('reads float32 values from unaligned raw_data, packed float_data and unpacked float_data alike', () => {
    const values = Float32Array.from([1.5, -2, 3.25, 0, 1e-8]);
    // Grow the name until raw_data lands at an offset that is not a multiple of 4.
    let raw;
    for (let name = 'w'; !raw; name += 'w') {
      const bytes = encodeModelBytes(model(graph({ nodes: [], inputs: [], outputs: [], initializers: [floatTensor(name, [5], values)] })));
      const t = decodeModel(bytes).graph.initializers[0]!;
      if (t.rawData!.byteOffset % 4 !== 0) raw = t;
    }
    assert.throws(() => new Float32Array(raw.rawData!.buffer, raw.rawData!.byteOffset, 5), RangeError);
    assert.deepEqual(readFloat32(raw), values);
    const packed = { ...floatTensor('p', [5], values), rawData: undefined, floatData: [new Uint8Array(values.buffer)] };
    const decoded = decodeModel(encodeModelBytes(model(graph({ nodes: [], inputs: [], outputs: [], initializers: [packed] })))).graph.initializers[0]!;
    assert.equal(decoded.rawData, undefined);
    assert.deepEqual(readFloat32(decoded), values);
    // Unpacked: one fixed32 field per value (proto2 style writers).
    const unpacked = new Parts().packedInt64(1, [5]).uintField(2, DataType.float32);
    for (const v of values) unpacked.float(4, v);
    unpacked.stringField(8, 'u');
    const body = new Parts().messageField(5, unpacked);
    const m = new Parts().uintField(1, 8).messageField(8, new Parts().uintField(2, 17)).messageField(7, body).concat();
    assert.deepEqual(readFloat32(decodeModel(m).graph.initializers[0]!), values);
  });

  it('keeps fields it does not know (newer ONNX) through a rewrite', () => {
    const { bytes } = gemmMlp();
    // Field 99 on the model and field 16 (metadata_props) on the graph: both must survive.
    const extraGraph = new Parts().messageField(16, new Parts().stringField(1, 'k').stringField(2, 'v'));
    const withExtras = new Parts().raw(bytes).stringField(99, 'future').messageField(7, extraGraph).concat();
    const m = decodeModel(withExtras);
    const again = encodeModelBytes({ ...m, graph: { ...m.graph, nodes: [...m.graph.nodes] } });
    assert.ok(Buffer.from(again).includes(Buffer.from('future')));
    assert.equal(decodeModel(again).other.length, 1);
    assert.equal(decodeModel(again).graph.other.length, 1);
  });

  it('encodes a model as parts that frame big tensors without copying them', () => {
    const m = decodeModel(gemmMlp().bytes);
    const parts = encodeModel(m).finish();
    assert.ok(parts.some((p) => p instanceof Uint8Array && p.buffer === m.graph.initializers[0]!.rawData!.buffer));
  });
});

describe('ONNX reader against hostile input', () => {
  it('refuses a field that declares 4 GiB, at once', () => {
    const t0 = performance.now();
    const evil = Uint8Array.from([0x3a, ...varint(2 ** 32), 1, 2, 3]);
    onnxError(() => decodeModel(evil), /declares 4294967296 bytes .* only 3 remain/);
    assert.ok(performance.now() - t0 < 50);
  });

  it('skips 3000 levels of nested subgraphs without recursion', () => {
    // If(then_branch = If(then_branch = ...)): each level is a graph inside an attribute.
    let inner = new Parts().stringField(2, 'leaf');
    for (let i = 0; i < 3000; i++) {
      const ifNode = new Parts().stringField(4, 'If').messageField(5, new Parts().stringField(1, 'then_branch').messageField(6, inner).uintField(20, 5));
      inner = new Parts().messageField(1, ifNode);
    }
    const g = new Parts().messageField(1, new Parts().stringField(1, 'c').stringField(2, 'y').stringField(4, 'If').messageField(5, new Parts().stringField(1, 'then_branch').messageField(6, inner).uintField(20, 5)));
    g.messageField(11, new Parts().stringField(1, 'c'));
    const bytes = new Parts().uintField(1, 8).messageField(8, new Parts().uintField(2, 17)).messageField(7, g).concat();
    const m = decodeModel(bytes);
    assert.equal(m.graph.nodes.length, 1);
    // Also 3000 levels of nested length-delimited garbage in an unknown field.
    let garbage = new Parts().stringField(1, 'x');
    for (let i = 0; i < 3000; i++) garbage = new Parts().messageField(3, garbage);
    decodesOrRefuses(new Parts().uintField(1, 8).messageField(50, garbage).concat());
  });

  it('names what is wrong: not a model, no graph, wrong wire type, empty, bad varint', () => {
    onnxError(() => decodeModel(new Uint8Array(0)), /empty/);
    onnxError(() => decodeModel(new Parts().uintField(1, 8).concat()), /graph \(field 7\) is missing/);
    // A TensorProto is a protobuf, but field 1 is packed dims, not ir_version.
    onnxError(() => decodeModel(new Parts().packedInt64(1, [3, 4]).uintField(2, 1).concat()), /ir_version \(field 1\) has wire type 2/);
    onnxError(() => decodeModel(Uint8Array.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])), /longer than 10 bytes/);
    onnxError(() => decodeModel(Uint8Array.from([0x00, 0x01])), /field number 0/);
  });

  it('refuses a graph with more items than the limit instead of allocating them all', () => {
    const g = new Parts();
    for (let i = 0; i < 50; i++) g.messageField(1, new Parts().stringField(4, 'Relu'));
    const bytes = new Parts().uintField(1, 8).messageField(8, new Parts().uintField(2, 17)).messageField(7, g).concat();
    onnxError(() => decodeModel(bytes, { maxItems: 10 }), /more than 10/);
    assert.equal(decodeModel(bytes).graph.nodes.length, 50);
  });

  it('refuses a truncated model at every cut point with QUANT_ERR_ONNX', () => {
    const { bytes } = constantWeights();
    for (let cut = 0; cut < bytes.length; cut += 97) {
      const part = bytes.subarray(0, cut);
      try {
        checkGraph(decodeModel(part));
      } catch (err) {
        assert.equal((err as { code?: string }).code, 'QUANT_ERR_ONNX', `cut ${cut}: ${String(err)}`);
      }
    }
  });

  it('never crashes on random bytes or on mutations of a valid model (property)', () => {
    const { bytes } = matmulNet();
    const small = bytes.subarray(0, 1200);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 3000 }), (b) => decodesOrRefuses(b)), { numRuns: 400 });
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(small.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), (edits) => {
        const m = Uint8Array.from(small);
        for (const [at, v] of edits) m[at] = v;
        decodesOrRefuses(m);
      }),
      { numRuns: 400 },
    );
  });
});

describe('graph checks', () => {
  it('refuses a node input that nothing defines, naming node, slot and name', () => {
    const g = graph({
      nodes: [node('MatMul', ['x', 'W_missing'], ['y'], { name: 'mm' })],
      inputs: [valueInfo('x', DataType.float32, [1, 4])],
      outputs: [valueInfo('y', DataType.float32, [1, 4])],
    });
    onnxError(() => checkGraph(decodeModel(encodeModelBytes(model(g)))), /node 0 'mm' \(MatMul\) input 1 'W_missing'/);
  });

  it('refuses what onnx.checker refuses: a name defined twice (initializers, node outputs, an output over an input), naming it', () => {
    const x = valueInfo('x', DataType.float32, [1, 4]);
    const y = valueInfo('y', DataType.float32, [1, 4]);
    const w = (name: string) => floatTensor(name, [4, 4], new Float32Array(16));
    const check = (g: ReturnType<typeof graph>) => () => checkGraph(decodeModel(encodeModelBytes(model(g))));
    onnxError(check(graph({ nodes: [node('MatMul', ['x', 'W'], ['y'])], initializers: [w('W'), w('W')], inputs: [x], outputs: [y] })), /two initializers are named 'W'/);
    onnxError(
      check(graph({ nodes: [node('Relu', ['x'], ['h'], { name: 'a' }), node('Neg', ['x'], ['h'], { name: 'b' }), node('Add', ['h', 'h'], ['y'])], inputs: [x], outputs: [y] })),
      /'h' is defined twice, as output of node 0 'a' \(Relu\) and as output of node 1 'b' \(Neg\)/,
    );
    onnxError(check(graph({ nodes: [node('Split', ['x'], ['y', 'y'], { name: 's' })], inputs: [x], outputs: [y] })), /'y' is defined twice, as output of node 0 's'/);
    onnxError(check(graph({ nodes: [node('Relu', ['x'], ['x'], { name: 'r' })], inputs: [x], outputs: [x] })), /'x' is defined twice, as graph input and as output of node 0 'r'/);
    onnxError(check(graph({ nodes: [node('Relu', ['x'], ['W'], { name: 'r' }), node('Add', ['W', 'x'], ['y'])], initializers: [w('W')], inputs: [x], outputs: [y] })), /'W' is defined twice, as an initializer and as output of node 0 'r'/);
    onnxError(check(graph({ nodes: [node('Relu', ['x'], ['y'])], inputs: [x, x], outputs: [y] })), /'x' is listed twice as a graph input/);
    onnxError(check(graph({ nodes: [node('Relu', ['x'], ['h'])], inputs: [x], outputs: [y] })), /output 'y' is not produced/);
    // An initializer that is also a graph input (IR < 4) is legal, and empty optional outputs may repeat.
    checkGraph(decodeModel(matmulNet(17, 3).bytes));
    check(graph({ nodes: [node('Dropout', ['x'], ['y', ''])], inputs: [x], outputs: [y] }))();
  });

  it('keeps to the main graph when subgraphs exist: branch bodies read outer names and may reuse them inside', () => {
    const x = valueInfo('x', DataType.float32, [1, 4]);
    const y = valueInfo('y', DataType.float32, [1, 4]);
    // Both branches read the outer-scope W and x, and define 'h' (also a main-graph name) in their own scope.
    const body = (op: string) =>
      encodeGraph(graph({ nodes: [node('MatMul', ['x', 'W'], ['h']), node(op, ['h'], ['out'])], inputs: [], outputs: [valueInfo('out', DataType.float32, [1, 4])] }));
    const branch = (name: string, op: string) => ({ name, type: AttrType.graph, src: new Parts().stringField(1, name).uintField(20, AttrType.graph).messageField(6, body(op)).concat() });
    const g = graph({
      nodes: [node('Relu', ['x'], ['h'], { name: 'pre' }), node('If', ['c'], ['y'], { name: 'if', attributes: [branch('then_branch', 'Relu'), branch('else_branch', 'Neg')] })],
      initializers: [floatTensor('W', [4, 4], new Float32Array(16))],
      inputs: [x, valueInfo('c', DataType.bool, [])],
      outputs: [y],
    });
    checkGraph(decodeModel(encodeModelBytes(model(g))));
    // The main graph's own rules still hold beside a subgraph.
    const dup = { ...g, nodes: [...g.nodes, node('Neg', ['x'], ['y'], { name: 'again' })] };
    onnxError(() => checkGraph(decodeModel(encodeModelBytes(model(dup)))), /'y' is defined twice, as output of node 1 'if' \(If\) and as output of node 2 'again'/);
  });

  it('accepts optional empty inputs and outputs fed by initializers', () => {
    const g = graph({
      nodes: [node('Clip', ['x', '', 'hi'], ['y'], { attributes: [attrs.int('unused', 0)] })],
      initializers: [floatTensor('hi', [], Float32Array.of(1))],
      inputs: [valueInfo('x', DataType.float32, [2])],
      outputs: [valueInfo('y', DataType.float32, [2])],
    });
    checkGraph(decodeModel(encodeModelBytes(model(g))));
  });
});
