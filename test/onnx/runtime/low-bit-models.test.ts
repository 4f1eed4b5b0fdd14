import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { fromFp8, quantizeFp8 } from '../../../src/core/fp8.js';
import { NF4_LEVELS } from '../../../src/core/nf4.js';
import type { QuantMethod } from '../../../src/core/methods/index.js';
import { dequantizeWith, planParams, quantize } from '../../../src/core/quantize.js';
import { floatTensor, graph, model, node, valueInfo } from '../../../src/onnx/graph/build.js';
import { decodeModel } from '../../../src/onnx/proto/decode.js';
import { encodeModelBytes } from '../../../src/onnx/proto/encode.js';
import { attrInt, DataType, type OnnxModel } from '../../../src/onnx/proto/model.js';
import { readFloat32 } from '../../../src/onnx/proto/tensor-data.js';
import { fp8TypeOf } from '../../../src/onnx/weights/emit-fp8.js';
import { modelQuantOptions, type ModelQuantOptions } from '../../../src/onnx/weights/options.js';
import { quantizeModel } from '../../../src/onnx/weights/quantize-model.js';
import type { TensorRow } from '../../../src/onnx/weights/report.js';
import { validateModels } from '../../../src/onnx/runtime/validate.js';
import { convNet, gemmMlp, matmulNet, randn, type BuiltModel } from '../models.js';

// The new forms in onnxruntime: NF4 (MatMulBnb4), FP8 (float8 DequantizeLinear), 3-bit
// values in int4 QDQ, and lsq/hqq parameters in the integer forms. Each quantized model's
// outputs must equal those of the float model with its weights replaced by the dequantized
// ones (to float precision), and stay close to the float model's.

const WEIGHTS_ONLY = { intraOpNumThreads: 1, logSeverityLevel: 3 as const, extra: { session: { qdq_matmulnbits_accuracy_level: '0' } } };

async function run(bytes: Uint8Array, dims: Record<string, number[]>): Promise<Float32Array> {
  const feeds = Object.fromEntries(Object.entries(dims).map(([name, d], i) => [name, new ort.Tensor('float32', randn(d.reduce((a, b) => a * b, 1), 7 + i), d)]));
  const s = await ort.InferenceSession.create(bytes, WEIGHTS_ONLY);
  try {
    const out = await s.run(feeds);
    return out[s.outputNames[0]!]!.data as Float32Array;
  } finally {
    await s.release();
  }
}

function withWeights(input: OnnxModel, weights: Map<string, Float32Array>): Uint8Array {
  const initializers = input.graph.initializers.map((t) => (weights.has(t.name) ? floatTensor(t.name, t.dims, weights.get(t.name)!) : t));
  return encodeModelBytes({ ...input, graph: { ...input.graph, initializers } });
}

async function assertSameOutputs(quantized: Uint8Array, reference: Uint8Array, dims: Record<string, number[]>): Promise<void> {
  const [got, want] = [await run(quantized, dims), await run(reference, dims)];
  const scale = Math.max(...want.map(Math.abs));
  const worst = got.reduce((m, v, i) => Math.max(m, Math.abs(v - want[i]!)), 0);
  assert.ok(worst <= 1e-4 * scale, `max |quantized - dequantized reference| = ${worst} (output scale ${scale})`);
}

/** Decodes every MatMulBnb4 weight of the quantized model back to the original weight's layout, from its own bytes. */
function nf4Weights(input: OnnxModel, out: OnnxModel): Map<string, Float32Array> {
  const inits = new Map(out.graph.initializers.map((t) => [t.name, t] as const));
  const weights = new Map<string, Float32Array>();
  for (const n of out.graph.nodes.filter((x) => x.opType === 'MatMulBnb4')) {
    assert.equal(n.domain, 'com.microsoft');
    assert.equal(attrInt(n, 'quant_type', -1), 1);
    const [K, N, bs] = [attrInt(n, 'K', 0), attrInt(n, 'N', 0), attrInt(n, 'block_size', 0)];
    const B = inits.get(n.inputs[1]!)!.rawData!;
    const absmax = readFloat32(inits.get(n.inputs[2]!)!);
    const nk = new Float32Array(N * K);
    for (let i = 0; i < N * K; i++) nk[i] = Math.fround(NF4_LEVELS[(B[i >> 1]! >> (i & 1 ? 0 : 4)) & 15]! * absmax[Math.floor(i / bs)]!);
    const original = input.graph.nodes.find((x) => x.name === n.name)!;
    const w = input.graph.initializers.find((t) => t.name === original.inputs[1])!;
    const transB = original.opType === 'Gemm' && attrInt(original, 'transB', 0) === 1;
    if (transB) weights.set(w.name, nk);
    else {
      const kn = new Float32Array(K * N);
      for (let k = 0; k < K; k++) for (let c = 0; c < N; c++) kn[k * N + c] = nk[c * K + k]!;
      weights.set(w.name, kn);
    }
  }
  return weights;
}

/** What the integer forms dequantize to, from the core (the same calibrate/quantize and method). */
function intWeights(input: OnnxModel, rows: TensorRow[], opts: ModelQuantOptions): Map<string, Float32Array> {
  const weights = new Map<string, Float32Array>();
  for (const row of rows) {
    const t = input.graph.initializers.find((x) => x.name === row.name)!;
    const spec = { bits: row.bits, scheme: opts.scheme, granularity: row.granularity, axis: row.axis ?? 0, groupSize: row.group_size ?? 1, calibration: opts.calibration, percentile: opts.percentile, method: opts.method as QuantMethod };
    const { params, q } = quantize(readFloat32(t), t.dims, spec);
    weights.set(row.name, dequantizeWith(q, params));
  }
  return weights;
}

function fp8Weights(input: OnnxModel, rows: TensorRow[]): Map<string, Float32Array> {
  const weights = new Map<string, Float32Array>();
  for (const row of rows) {
    const t = input.graph.initializers.find((x) => x.name === row.name)!;
    const type = fp8TypeOf(row.format as 'fp8e4m3' | 'fp8e5m2');
    const plan = planParams(t.dims, row.granularity, row.axis ?? 0, row.group_size ?? 1);
    const values = readFloat32(t);
    const { codes, scale } = quantizeFp8(values, plan, type);
    const w = new Float32Array(values.length);
    // Parameter of each element, in the ONNX layout the DequantizeLinear reads.
    let idx = 0;
    for (let o = 0; o < plan.outer; o++) {
      for (let a = 0; a < plan.len; a++) {
        const base = o * plan.outerStride + Math.floor(a / plan.group) * plan.axisStride;
        for (let i = 0; i < plan.inner; i++, idx++) w[idx] = Math.fround(fromFp8(codes[idx]!, type) * scale[base + i * plan.innerStride]!);
      }
    }
    weights.set(row.name, w);
  }
  return weights;
}

/** x[2, 48] → MatMul(W [48, 40]): K = 48 is no multiple of the block size 32, so NF4 blocks run across rows. */
function oddK(): BuiltModel {
  const m = model(
    graph({
      nodes: [node('MatMul', ['x', 'W'], ['y'], { name: 'mm' })],
      initializers: [floatTensor('W', [48, 40], randn(48 * 40, 77, 0.2))],
      inputs: [valueInfo('x', DataType.float32, [2, 48])],
      outputs: [valueInfo('y', DataType.float32, [2, 40])],
    }),
  );
  return { model: m, bytes: encodeModelBytes(m) };
}

async function quantizeAndCheck(built: BuiltModel, opts: Partial<ModelQuantOptions>, minCosine: number) {
  const input = decodeModel(built.bytes);
  const o = modelQuantOptions(opts);
  const r = quantizeModel(input, o);
  assert.ok(r.tensors.length > 0);
  const bytes = encodeModelBytes(r.model);
  const v = await validateModels({ bytes: built.bytes }, { bytes });
  assert.equal(v.status, 'ok', JSON.stringify(v));
  if (v.status === 'ok') for (const out of [...v.weights_only.outputs, ...v.default_optimization.outputs]) assert.ok(out.cosine_similarity >= minCosine, `cosine ${out.cosine_similarity}`);
  return { input, r, bytes, o };
}

const x2 = { x: [2, 256] };

describe('NF4 through com.microsoft MatMulBnb4', () => {
  const cases: Array<[string, BuiltModel, Record<string, number[]>, Partial<ModelQuantOptions>]> = [
    ['Gemm MLP (transB 0 and 1, biases), block 64', gemmMlp(17), x2, { format: 'nf4' }],
    ['MatMul net, block 32', matmulNet(17), { x: [1, 8, 256] }, { format: 'nf4', groupSize: 32 }],
    ['K = 48 with block 32 (blocks straddle rows)', oddK(), { x: [2, 48] }, { format: 'nf4', groupSize: 32, minElements: 16 }],
  ];
  for (const [what, built, dims, opts] of cases) {
    it(what, async () => {
      const { input, r, bytes } = await quantizeAndCheck(built, opts, 0.98);
      for (const t of r.tensors) {
        assert.equal(t.format, 'nf4');
        assert.equal(t.bits, 4);
        assert.match(t.note ?? '', /saves storage only: .*dequantizes the whole weight to float32 on every call/);
        assert.ok(t.quantized_bytes < t.original_bytes / 6);
      }
      assert.deepEqual(r.addedOpsets, [{ domain: 'com.microsoft', version: 1 }]);
      await assertSameOutputs(bytes, withWeights(input, nf4Weights(input, r.model)), dims);
    });
  }
});

describe('FP8 weights through DequantizeLinear (opset ≥ 19)', () => {
  const cases: Array<[string, BuiltModel, Record<string, number[]>, Partial<ModelQuantOptions>, number]> = [
    ['Gemm MLP E4M3FN per channel', gemmMlp(19), x2, { format: 'fp8e4m3' }, 0.999],
    ['Gemm MLP E5M2 per channel', gemmMlp(19), x2, { format: 'fp8e5m2' }, 0.99],
    ['Conv net E4M3FN per channel', convNet(19), { x: [1, 8, 12, 12] }, { format: 'fp8e4m3' }, 0.999],
    ['MatMul net E4M3FN per tensor', matmulNet(19), { x: [1, 8, 256] }, { format: 'fp8e4m3', granularity: 'per_tensor' }, 0.999],
    ['Gemm MLP E4M3FN blocked g64 (opset 21)', gemmMlp(21), x2, { format: 'fp8e4m3', granularity: 'per_group', groupSize: 64 }, 0.999],
  ];
  for (const [what, built, dims, opts, minCosine] of cases) {
    it(what, async () => {
      const { input, r, bytes } = await quantizeAndCheck(built, opts, minCosine);
      for (const t of r.tensors) {
        assert.equal(t.format, opts.format);
        assert.equal(t.bits, 8);
        // FP8 keeps 3 (E4M3) or 2 (E5M2) mantissa bits: well below int8 on Gaussian weights.
        assert.ok(t.int8_snr_db! - t.snr_db! > (opts.format === 'fp8e4m3' ? 5 : 10), `${t.name}: fp8 ${t.snr_db} dB, int8 ${t.int8_snr_db} dB`);
      }
      assert.ok(r.model.irVersion >= 9);
      await assertSameOutputs(bytes, withWeights(input, fp8Weights(input, r.tensors)), dims);
    });
  }
});

describe('3-bit weights', () => {
  it('are 3-bit values in blocked int4 QDQ at opset 21, and say why not MatMulNBits', async () => {
    const { input, r, bytes, o } = await quantizeAndCheck(gemmMlp(21), { bits: 3 }, 0.9);
    for (const t of r.tensors) {
      assert.equal(`${t.format}/${t.bits}`, 'qdq/3');
      assert.match(t.note ?? '', /3-bit values stored as int4 \(onnxruntime 1.30's MatMulNBits refuses bits=3\)/);
    }
    await assertSameOutputs(bytes, withWeights(input, intWeights(input, r.tensors, o)), x2);
  });

  it('fall back to int8 below opset 21, with the reason', () => {
    const r = quantizeModel(decodeModel(gemmMlp(17).bytes), modelQuantOptions({ bits: 3 }));
    for (const t of r.tensors) {
      assert.equal(`${t.format}/${t.bits}`, 'qdq/8');
      assert.match(t.note ?? '', /refuses bits=3/);
    }
  });
});

describe('lsq and hqq on the model path', () => {
  const forms: Array<[string, BuiltModel, Partial<ModelQuantOptions>]> = [
    ['4-bit g32 MatMulNBits', gemmMlp(17), { bits: 4 }],
    ['4-bit g32 asymmetric blocked QDQ (opset 21)', gemmMlp(21), { bits: 4, scheme: 'asymmetric', format: 'qdq' }],
    ['8-bit per-channel QDQ', gemmMlp(17), { bits: 8 }],
  ];
  for (const [what, built, opts] of forms) {
    it(`${what}: every weight at least as good as rtn, and onnxruntime computes the dequantized weights`, async () => {
      const rtn = quantizeModel(decodeModel(built.bytes), modelQuantOptions(opts)).tensors;
      for (const method of ['lsq', 'hqq'] as const) {
        const { input, r, bytes, o } = await quantizeAndCheck(built, { ...opts, method }, 0.98);
        for (const t of r.tensors) {
          const base = rtn.find((x) => x.name === t.name)!;
          assert.ok(t.mse <= base.mse, `${method} ${t.name}: mse ${t.mse} > rtn ${base.mse}`);
        }
        if (opts.bits === 4) {
          const gain = r.tensors.reduce((s, t) => s + t.snr_db!, 0) / r.tensors.length - rtn.reduce((s, t) => s + t.snr_db!, 0) / rtn.length;
          assert.ok(gain > (method === 'lsq' ? 0.3 : 0.05), `${method}: mean SNR gain ${gain} dB`);
        }
        await assertSameOutputs(bytes, withWeights(input, intWeights(input, r.tensors, o)), x2);
      }
    });
  }
});
