import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { halfToFloat } from '../../../src/core/float16.js';
import { floatTensor, graph, model, node, valueInfo } from '../../../src/onnx/graph/build.js';
import { ModelScopes } from '../../../src/onnx/graph/scopes.js';
import { decodeModel } from '../../../src/onnx/proto/decode.js';
import { encodeModelBytes } from '../../../src/onnx/proto/encode.js';
import { DataType, type OnnxGraph, type OnnxModel } from '../../../src/onnx/proto/model.js';
import { modelQuantOptions, type ModelQuantOptions } from '../../../src/onnx/weights/options.js';
import { quantizeModel } from '../../../src/onnx/weights/quantize-model.js';
import { computedWeights, convNet, convTransposeNet, halfBits, halfMlp, ifModel, loopModel, matmulNet, randn, recurrentModel, tiedEmbedding, type BuiltModel } from '../models.js';
import { cosine } from '../cosine.js';

// Real-graph coverage: low opsets, subgraphs, recurrent layers, embeddings, ConvTranspose,
// float16/bfloat16 and computed weights. Each quantized model runs in onnxruntime and is
// compared with the float model on the same inputs.

const SESSION = { intraOpNumThreads: 1, logSeverityLevel: 3 as const, extra: { session: { qdq_matmulnbits_accuracy_level: '0' } } };

function quantize(b: BuiltModel, opts: Partial<ModelQuantOptions> = {}) {
  const r = quantizeModel(decodeModel(b.bytes), modelQuantOptions(opts));
  const bytes = encodeModelBytes(r.model);
  return { ...r, bytes, out: decodeModel(bytes) };
}

function toFloats(t: ort.Tensor): Float64Array {
  if (t.type === 'float16') return Float64Array.from(t.data as Uint16Array, halfToFloat);
  return Float64Array.from(t.data as Float32Array);
}

async function outputs(bytes: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<Float64Array[]> {
  const s = await ort.InferenceSession.create(bytes, SESSION);
  try {
    const out = await s.run(feeds);
    return s.outputNames.map((n) => toFloats(out[n]!));
  } finally {
    await s.release();
  }
}

/** Every output of the quantized model against the float one: the worst cosine. */
async function worstCosine(original: Uint8Array, quantized: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<number> {
  const [want, got] = [await outputs(original, feeds), await outputs(quantized, feeds)];
  assert.equal(got.length, want.length);
  return Math.min(...want.map((w, i) => cosine(w, got[i]!)));
}

const f32 = (dims: number[], seed: number) => new ort.Tensor('float32', randn(dims.reduce((a, b) => a * b, 1), seed), dims);

function allNodes(g: OnnxGraph): { node: OnnxGraph['nodes'][number]; graph: OnnxGraph }[] {
  const scopes = new ModelScopes({ irVersion: 8, opsetImports: [], graph: g, other: [] });
  return scopes.scopes.flatMap((s) => s.graph.nodes.map((n) => ({ node: n, graph: s.graph })));
}

const dqNodes = (m: OnnxModel) => allNodes(m.graph).filter(({ node: n }) => n.opType === 'DequantizeLinear');

describe('low opsets: com.microsoft forms, the opset never raised', () => {
  for (const opset of [9, 11, 12]) {
    it(`Conv and MatMul weights stay per channel at opset ${opset}`, async () => {
      for (const b of [convNet(opset), matmulNet(opset)]) {
        const r = quantize(b);
        assert.ok(r.tensors.length === 2);
        assert.ok(r.tensors.every((t) => t.granularity === 'per_channel' && /com\.microsoft/.test(t.form) && new RegExp(`opset ${opset}`).test(t.form)));
        assert.ok(dqNodes(r.out).every(({ node: n }) => n.domain === 'com.microsoft'));
        assert.deepEqual(r.out.opsetImports, [
          { domain: '', version: opset },
          { domain: 'com.microsoft', version: 1 },
        ]);
      }
      const c = convNet(opset);
      assert.ok((await worstCosine(c.bytes, quantize(c).bytes, { x: f32([1, 8, 12, 12], 1) })) >= 0.999);
    });
  }

  it('uses the default-domain DequantizeLinear from opset 13', () => {
    const r = quantize(convNet(13));
    assert.ok(dqNodes(r.out).every(({ node: n }) => n.domain === ''));
    assert.deepEqual(r.addedOpsets, []);
  });

  it('format=dynamic below opset 11 becomes DynamicQuantizeMatMul and runs', async () => {
    const b = matmulNet(9);
    const r = quantize(b, { format: 'dynamic' });
    assert.equal(r.tensors.length, 2);
    assert.ok(r.tensors.every((t) => /DynamicQuantizeMatMul/.test(t.form)));
    assert.deepEqual(
      r.out.graph.nodes.filter((n) => n.opType === 'DynamicQuantizeMatMul').map((n) => n.domain),
      ['com.microsoft', 'com.microsoft'],
    );
    assert.equal(r.out.opsetImports.find((o) => o.domain === '')!.version, 9);
    assert.ok((await worstCosine(b.bytes, r.bytes, { x: f32([1, 8, 256], 2) })) >= 0.999);
  });
});

describe('subgraphs', () => {
  it('quantizes outer-scope weights read in If branches and initializers inside a branch', async () => {
    const b = ifModel();
    for (const bits of [8, 4] as const) {
      const r = quantize(b, { bits });
      assert.deepEqual(r.tensors.map((t) => t.name).sort(), ['W_shared', 'W_then']);
      assert.equal(r.tensors.find((t) => t.name === 'W_then')!.graph, "If 'branch' then_branch");
      assert.equal(r.tensors.find((t) => t.name === 'W_shared')!.graph, undefined);
      assert.equal(r.quantizedWeightBytes, r.floatWeightBytes);
      for (const cond of [true, false]) {
        const feeds = { x: f32([2, 64], 3), cond: new ort.Tensor('bool', Uint8Array.of(cond ? 1 : 0), []) };
        assert.ok((await worstCosine(b.bytes, r.bytes, feeds)) >= (bits === 8 ? 0.999 : 0.98), `bits ${bits} cond ${cond}`);
      }
    }
    // int8: the shared weight's DequantizeLinear is in the main graph, the branch's in the branch.
    const r8 = quantize(b);
    assert.deepEqual(r8.out.graph.nodes.map((n) => n.opType), ['DequantizeLinear', 'If']);
    const thenBranch = r8.out.graph.nodes[1]!.attributes.find((a) => a.name === 'then_branch')!.g!;
    assert.equal(thenBranch.nodes[0]!.opType, 'DequantizeLinear');
    assert.ok(!thenBranch.initializers.some((t) => t.name === 'W_then'));
    // The untouched else branch is written back as it came.
    const elseIn = decodeModel(b.bytes).graph.nodes[0]!.attributes.find((a) => a.name === 'else_branch')!;
    const elseOut = r8.out.graph.nodes[1]!.attributes.find((a) => a.name === 'else_branch')!;
    assert.deepEqual(Buffer.from(elseOut.src!), Buffer.from(elseIn.src!));
  });

  it('quantizes weights read inside a Loop body (outer and body initializers)', async () => {
    const b = loopModel();
    const r = quantize(b);
    assert.deepEqual(r.tensors.map((t) => t.name).sort(), ['W_body', 'W_outer']);
    assert.ok((await worstCosine(b.bytes, r.bytes, { v0: f32([1, 64], 4) })) >= 0.999);
  });
});

describe('recurrent layers, embeddings, ConvTranspose', () => {
  it('LSTM and GRU: W and R per gate row, B float', async () => {
    const b = recurrentModel();
    const r = quantize(b);
    assert.deepEqual(r.tensors.map((t) => `${t.name}/${t.op_type}/${t.axis}`).sort(), ['R/LSTM/1', 'Rg/GRU/1', 'W/LSTM/1', 'Wg/GRU/1']);
    assert.ok(r.out.graph.initializers.some((t) => t.name === 'B' && t.dataType === DataType.float32));
    assert.ok((await worstCosine(b.bytes, r.bytes, { X: f32([4, 1, 32], 5) })) >= 0.999);
  });

  it('format=dynamic: LSTM → com.microsoft DynamicQuantizeLSTM (W and R transposed, per gate row); GRU skipped with the reason', async () => {
    const b = recurrentModel();
    const r = quantize(b, { format: 'dynamic' });
    assert.deepEqual(r.tensors.map((t) => t.name).sort(), ['R', 'W']);
    assert.ok(r.tensors.every((t) => /DynamicQuantizeLSTM/.test(t.form)));
    assert.deepEqual(r.skipped.map((s) => s.name).sort(), ['Rg', 'Wg']);
    assert.ok(r.skipped.every((s) => /covers MatMul, Gemm and LSTM/.test(s.reason)));
    const lstm = r.out.graph.nodes.find((n) => n.opType === 'DynamicQuantizeLSTM')!;
    assert.equal(lstm.domain, 'com.microsoft');
    assert.deepEqual(r.out.graph.initializers.find((t) => t.name === lstm.inputs[1])!.dims, [1, 32, 256]);
    assert.ok((await worstCosine(b.bytes, r.bytes, { X: f32([4, 1, 32], 5) })) >= 0.999);
    // R too small to quantize: W stays float as well, and says why.
    const lone = quantize(b, { format: 'dynamic', exclude: ['R'] });
    assert.match(lone.skipped.find((s) => s.name === 'W')!.reason, /needs W and R both quantized/);
  });

  it('a tied embedding is quantized once, for the Gather and the MatMul behind a Transpose', async () => {
    const b = tiedEmbedding();
    const ids = new ort.Tensor('int64', BigInt64Array.from({ length: 8 }, (_, i) => BigInt((i * 97) % 512)), [1, 8]);
    const r = quantize(b);
    assert.equal(r.tensors.length, 1);
    const t = r.tensors[0]!;
    assert.deepEqual([t.name, t.axis, t.nodes], ['E', 0, ['embed', 'lm_head']]);
    assert.ok((await worstCosine(b.bytes, r.bytes, { ids })) >= 0.999);
    // 4-bit: one packed copy read by GatherBlockQuantized and, through a Reshape, by MatMulNBits.
    const r4 = quantize(b, { bits: 4 });
    assert.equal(r4.tensors[0]!.bits, 4);
    assert.match(r4.tensors[0]!.form, /GatherBlockQuantized \+ MatMulNBits/);
    assert.deepEqual(r4.out.graph.nodes.map((n) => n.opType), ['Reshape', 'GatherBlockQuantized', 'Tanh', 'MatMulNBits']);
    assert.equal(r4.out.graph.initializers.filter((t) => t.dataType === DataType.uint8).length, 1);
    assert.ok(r4.bytes.length <= 0.2 * b.bytes.length, `size ${r4.bytes.length / b.bytes.length}`);
    assert.ok((await worstCosine(b.bytes, r4.bytes, { ids })) >= 0.98);
  });

  it('ConvTranspose on channel axis 1; grouped and depthwise Conv on axis 0', async () => {
    const b = convTransposeNet();
    const r = quantize(b, { minElements: 100 });
    assert.deepEqual(r.tensors.map((t) => `${t.name}/${t.op_type}/${t.axis}`).sort(), ['W/ConvTranspose/1', 'Wd/Conv/0', 'Wg/Conv/0']);
    assert.ok((await worstCosine(b.bytes, r.bytes, { x: f32([1, 32, 6, 6], 6) })) >= 0.999);
  });
});

describe('float16 and bfloat16 weights', () => {
  const x16 = () => new ort.Tensor('float16', halfBits(randn(256, 7)), [2, 128]);
  for (const opset of [13, 17, 19]) {
    it(`float16 MLP at opset ${opset}: the Gemm's weight has float16 scales, the MatMul's float32 ones and a Cast back; the graph stays float16`, async () => {
      const b = halfMlp(opset);
      const r = quantize(b);
      assert.equal(r.tensors.length, 2);
      const rows = Object.fromEntries(r.tensors.map((t) => [t.name, t]));
      assert.ok(r.tensors.every((t) => t.dtype === 'float16'));
      assert.match(rows.W2!.form, /float16 scales/);
      assert.match(rows.W1!.form, /float32 scales; then Cast to float16/);
      const scale = (w: string) => r.out.graph.initializers.find((t) => t.name === `${w}_scale`)!.dataType;
      assert.deepEqual([scale('W1'), scale('W2')], [DataType.float32, DataType.float16]);
      assert.ok(r.out.graph.nodes.some((n) => n.opType === 'Cast' && n.outputs[0] === 'W1'));
      // W1's float32 scales need no com.microsoft op from opset 13; W2's float16 ones do below 19.
      const domainOf = (w: string) => dqNodes(r.out).find(({ node: n }) => n.inputs[0] === `${w}_quantized`)!.node.domain;
      assert.deepEqual([domainOf('W1'), domainOf('W2')], ['', opset >= 19 ? '' : 'com.microsoft']);
      assert.ok(r.bytes.length <= 0.55 * b.bytes.length, `size ${r.bytes.length / b.bytes.length}`);
      assert.ok((await worstCosine(b.bytes, r.bytes, { x: x16() })) >= 0.999);
    });
  }

  it('float16 4-bit: MatMulNBits with float16 scales', async () => {
    const b = halfMlp(17);
    const r = quantize(b, { bits: 4 });
    assert.deepEqual([...new Set(r.tensors.map((t) => `${t.format}/${t.bits}`))], ['matmulnbits/4']);
    assert.ok(r.bytes.length <= 0.35 * b.bytes.length, `size ${r.bytes.length / b.bytes.length}`);
    assert.ok((await worstCosine(b.bytes, r.bytes, { x: x16() })) >= 0.98);
  });

  it('follows weights through Cast, Transpose and Identity; bfloat16 gets float32 scales and a Cast back', async () => {
    const b = computedWeights();
    const r = quantize(b);
    const rows = Object.fromEntries(r.tensors.map((t) => [t.name, t]));
    assert.deepEqual(Object.keys(rows).sort(), ['Wb', 'Wc', 'Wi']);
    // Wc [256, 128] is read transposed: the MatMul's columns are Wc's rows.
    assert.equal(rows.Wc!.axis, 0);
    assert.equal(rows.Wc!.dtype, 'float16');
    assert.equal(rows.Wi!.axis, 1);
    assert.match(rows.Wb!.form, /Cast to bfloat16/);
    assert.ok(r.out.graph.nodes.some((n) => n.opType === 'Cast' && n.outputs[0] === 'Wb'));
    assert.ok((await worstCosine(b.bytes, r.bytes, { x: f32([2, 128], 8) })) >= 0.999);
    assert.equal(r.quantizedWeightBytes, r.floatWeightBytes);
  });
});

describe('the report invariant', () => {
  it('lists every float constant of min_elements or more: quantized, or skipped with the reason', () => {
    const g = graph({
      nodes: [
        node('MatMul', ['x', 'W'], ['h'], { name: 'mm' }),
        node('Add', ['h', 'P'], ['a'], { name: 'add_pos' }),
        node('Mul', ['a', 'M'], ['y'], { name: 'mul' }),
        node('Identity', ['U'], ['u_out']),
      ],
      initializers: [
        floatTensor('W', [64, 64], randn(4096, 1)),
        floatTensor('P', [8, 64], randn(512, 2)),
        floatTensor('M', [8, 64], randn(512, 5)),
        floatTensor('U', [4096], randn(4096, 3)),
        floatTensor('b', [16], randn(16, 4)),
      ],
      inputs: [valueInfo('x', DataType.float32, [8, 64])],
      outputs: [valueInfo('y', DataType.float32, [8, 64]), valueInfo('u_out', DataType.float32, [4096])],
    });
    const r = quantize({ model: model(g), bytes: encodeModelBytes(model(g)) }, { minElements: 500 });
    // P, a rank-2 tensor added to activations, is a position embedding: quantized per row.
    assert.deepEqual(r.tensors.map((t) => `${t.name}/${t.op_type}`).sort(), ['P/Add', 'W/MatMul']);
    assert.deepEqual(r.skipped.map((s) => s.name).sort(), ['M', 'U']);
    assert.match(r.skipped.find((s) => s.name === 'M')!.reason, /read by Mul input 1, not as a weight/);
    assert.match(r.skipped.find((s) => s.name === 'U')!.reason, /a graph output/);
    assert.equal(r.floatWeightBytes, 4 * (4096 + 512 + 512 + 4096 + 16));
    assert.equal(r.quantizedWeightBytes, 4 * (4096 + 512));
  });

  it('never says 0 quantized and 0 skipped for a model with weights', () => {
    const r = quantize(matmulNet(17), { minElements: 1_000_000 });
    assert.equal(r.tensors.length, 0);
    assert.ok(r.skipped.length >= 2);
    assert.ok(r.skipped.every((s) => /min_elements/.test(s.reason)));
  });
});
