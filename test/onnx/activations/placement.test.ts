import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { GraphIndex } from '../../../src/onnx/activations/graph-index.js';
import { PLACEMENT_RULES } from '../../../src/onnx/activations/placement-rules.js';
import { staticQuantize } from '../../../src/onnx/activations/static-model.js';
import { attrs, floatTensor, graph, model, node, valueInfo } from '../../../src/onnx/graph/build.js';
import { encodeModelBytes } from '../../../src/onnx/proto/encode.js';
import { DataType, type OnnxModel } from '../../../src/onnx/proto/model.js';
import { modelQuantOptions } from '../../../src/onnx/weights/options.js';
import { randn } from '../models.js';

// Placement and emission on a hand-built graph, with ranges from a table (no calibration):
//   x → Conv(W, B) → c → Relu → r ─┬→ MaxPool → p → Flatten → f → Gemm(W2, C2) → y (output)
//                                  └→ GlobalAveragePool → g → Flatten → gf → Add(f2 = Mul(gf, k)) ...
//   ln = LayerNormalization(gf) → z (output): no integer kernel, stays float

const F = DataType.float32;
function net(opset = 17): OnnxModel {
  return model(
    graph({
      nodes: [
        node('Conv', ['x', 'W', 'B'], ['c'], { name: 'conv', attributes: [attrs.ints('pads', [1, 1, 1, 1])] }),
        node('Relu', ['c'], ['r'], { name: 'relu' }),
        node('MaxPool', ['r'], ['p'], { name: 'pool', attributes: [attrs.ints('kernel_shape', [2, 2]), attrs.ints('strides', [2, 2])] }),
        node('Flatten', ['p'], ['f'], { name: 'flat' }),
        node('Gemm', ['f', 'W2', 'C2'], ['y'], { name: 'fc', attributes: [attrs.int('transB', 1), attrs.float('beta', 0.5)] }),
        node('GlobalAveragePool', ['r'], ['g'], { name: 'gap' }),
        node('Flatten', ['g'], ['gf'], { name: 'flat2' }),
        node('Mul', ['gf', 'k'], ['m'], { name: 'mul' }),
        node('LayerNormalization', ['m', 'lnS', 'lnB'], ['z'], { name: 'ln', attributes: [attrs.int('axis', -1)] }),
      ],
      initializers: [
        floatTensor('W', [4, 3, 3, 3], randn(108, 1, 0.3)),
        floatTensor('B', [4], randn(4, 2, 0.1)),
        floatTensor('W2', [5, 64], randn(320, 3, 0.2)),
        floatTensor('C2', [5], randn(5, 4, 0.1)),
        floatTensor('k', [1, 4], Float32Array.of(0.5, -1, 2, 0.25)),
        floatTensor('lnS', [4], Float32Array.of(1, 1, 1, 1)),
        floatTensor('lnB', [4], new Float32Array(4)),
      ],
      inputs: [valueInfo('x', F, [1, 3, 8, 8])],
      outputs: [valueInfo('y', F, [1, 5]), valueInfo('z', F, [1, 4])],
    }),
    { opset },
  );
}

const RANGES = new Map(
  Object.entries({ x: [-3, 3], c: [-2, 2.5], r: [0, 2.5], p: [0, 2.5], f: [0, 2.5], y: [-4, 4], g: [0, 1.2], gf: [0, 1.2], m: [-1, 2], z: [-2, 2] }).map(([k, [min, max]]) => [
    k,
    { min: min!, max: max! },
  ]),
);
const OPTS = { activationType: 'uint8' as const, weights: modelQuantOptions({ bits: 8, format: 'qdq' }) };

test('every op type the issue lists has its own placement rule', () => {
  for (const op of ['Conv', 'ConvTranspose', 'MatMul', 'Gemm', 'Add', 'Mul', 'Concat', 'MaxPool', 'AveragePool', 'GlobalAveragePool', 'Resize', 'Sigmoid', 'HardSigmoid', 'LeakyRelu', 'Softmax', 'Where', 'Relu', 'Clip', 'Reshape', 'Transpose', 'Flatten', 'Squeeze', 'Unsqueeze', 'Slice', 'Split', 'Gather', 'Pad']) {
    assert.equal(typeof PLACEMENT_RULES[op], 'function', op);
  }
  for (const op of ['LayerNormalization', 'Erf', 'ReduceMean', 'Div']) assert.equal(PLACEMENT_RULES[op], undefined, op);
});

test('Relu folds into the Conv, data movement shares its input parameters, one Q per tensor, outputs keep their names', async () => {
  const m = net();
  const q = staticQuantize(new GraphIndex(m), RANGES, OPTS);
  const nodes = q.model.graph.nodes;
  assert.equal(nodes.filter((n) => n.opType === 'Relu').length, 0, 'Relu folded');
  const conv = nodes.find((n) => n.name === 'conv')!;
  assert.deepEqual(conv.outputs, ['r_QuantizeLinear_Input']);
  // r has two readers (MaxPool, GlobalAveragePool) and exactly one Q.
  const qs = nodes.filter((n) => n.opType === 'QuantizeLinear');
  assert.equal(new Set(qs.map((n) => n.inputs[0])).size, qs.length, 'one Q per tensor');
  assert.equal(qs.filter((n) => n.inputs[0] === 'r_QuantizeLinear_Input').length, 1);
  // MaxPool and Flatten reuse r's scale and zero point initializers.
  const qOf = (t: string) => qs.find((n) => n.inputs[0] === `${t}_QuantizeLinear_Input`)!;
  for (const t of ['p', 'f']) assert.deepEqual(qOf(t).inputs.slice(1), qOf('r').inputs.slice(1), t);
  assert.equal(q.plan.tensors.get('p')!.kind, 'shared');
  // The range of r (the Relu output) gives the Conv's Q: zero point 0 for uint8.
  assert.equal(q.params.get('r')!.zeroPoint, 0);
  // Outputs keep their names: y comes from a DequantizeLinear, z from the float LayerNormalization.
  assert.deepEqual(q.model.graph.outputs.map((o) => o.name), ['y', 'z']);
  assert.equal(nodes.find((n) => n.outputs.includes('y'))!.opType, 'DequantizeLinear');
  const ln = nodes.find((n) => n.opType === 'LayerNormalization')!;
  assert.equal(ln.inputs[0], 'm', 'LayerNormalization reads the dequantized m');
  assert.equal(nodes.find((n) => n.outputs.includes('z'))!.opType, 'LayerNormalization', 'z stays float');
  // The Mul's constant operand is stored in the activation type.
  assert.ok(q.plan.constantActivations.has('k'));
  // Gemm's beta is folded into the int32 bias scale.
  const fc = nodes.find((n) => n.name === 'fc')!;
  assert.equal(fc.attributes.find((a) => a.name === 'beta')!.f, 1);
  assert.equal(q.model.opsetImports.find((o) => o.domain === '')!.version, 17);

  const s = await ort.InferenceSession.create(encodeModelBytes(q.model), { logSeverityLevel: 3 });
  const out = await s.run({ x: new ort.Tensor('float32', randn(192, 9), [1, 3, 8, 8]) });
  assert.deepEqual(out.y!.dims, [1, 5]);
  assert.deepEqual(out.z!.dims, [1, 4]);
  await s.release();
});

test('an excluded node reads the float tensor and gets no Q/DQ of its own', () => {
  const g = new GraphIndex(net(17));
  const fc = g.nodes.findIndex((n) => n.name === 'fc');
  const q = staticQuantize(g, RANGES, { ...OPTS, exclude: new Set([fc]) });
  const gemm = q.model.graph.nodes.find((n) => n.name === 'fc')!;
  assert.equal(gemm.inputs[0], 'f_QuantizeLinear_Input', 'the excluded Gemm reads f before its Q');
  assert.equal(gemm.inputs[1], 'W2', 'its weight stays float');
  assert.equal(gemm.inputs[2], 'C2', 'its bias stays float');
  assert.ok(!q.plan.tensors.has('y'));
});

test('below opset 13 per-channel DequantizeLinear is com.microsoft and the default opset stays; 8-bit MaxPool waits for opset 12', () => {
  const q = staticQuantize(new GraphIndex(net(11)), RANGES, OPTS);
  const nodes = q.model.graph.nodes;
  assert.equal(q.model.opsetImports.find((o) => o.domain === '')!.version, 11);
  assert.equal(nodes.find((n) => n.outputs.includes('W'))!.domain, 'com.microsoft');
  assert.ok(q.model.opsetImports.some((o) => o.domain === 'com.microsoft'));
  assert.ok(!q.plan.tensors.has('p'), 'MaxPool at opset 11 runs in float');
});

test('a bias that would overflow int32 at s_x·s_w raises the weight scale first', () => {
  // Weights ~1e-7 and a bias of 5e4: s_x·s_w ≈ 1e-11, b / (s_x·s_w) ≈ 5e15 ≫ 2^31.
  const m = model(
    graph({
      nodes: [node('Conv', ['x', 'W', 'B'], ['y'], { name: 'conv' })],
      initializers: [floatTensor('W', [2, 1, 1, 1], Float32Array.of(1e-7, -2e-7)), floatTensor('B', [2], Float32Array.of(5e4, -1e-3))],
      inputs: [valueInfo('x', F, [1, 1, 2, 2])],
      outputs: [valueInfo('y', F, [1, 2, 2, 2])],
    }),
  );
  const q = staticQuantize(new GraphIndex(m), new Map([['x', { min: -1, max: 1 }], ['y', { min: -1, max: 6e4 }]]), OPTS);
  const w = q.weights.get('W')!;
  assert.equal(w.raised, 1, 'only the channel whose bias overflows');
  const b = q.biases[0]!;
  const sx = q.params.get('x')!.scale;
  for (let c = 0; c < 2; c++) {
    assert.equal(b.scale[c], Math.fround(sx * w.w.params.scale[c]!), `bias scale ${c} = s_x·s_w`);
    assert.ok(Math.abs(b.q[c]!) <= 2147483647);
  }
  assert.ok(Math.abs(b.q[0]! * b.scale[0]! - 5e4) / 5e4 < 1e-6, 'the big bias is represented');
});
