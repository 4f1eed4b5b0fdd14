import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { reportFromSums } from '../../../src/core/metrics.js';
import { decodeModel } from '../../../src/onnx/proto/decode.js';
import { encodeModelBytes, encodeTensor } from '../../../src/onnx/proto/encode.js';
import { DataType, type OnnxModel } from '../../../src/onnx/proto/model.js';
import { modelQuantOptions, wildcard, type ModelQuantOptions } from '../../../src/onnx/weights/options.js';
import { quantizeModel } from '../../../src/onnx/weights/quantize-model.js';
import { readFloat32 } from '../../../src/onnx/proto/tensor-data.js';
import { quantize } from '../../../src/core/quantize.js';
import { constantWeights, convNet, gemmMlp, matmulNet, sharedWeight } from '../models.js';

function run(bytes: Uint8Array, opts: Partial<ModelQuantOptions> = {}) {
  const input = decodeModel(bytes);
  const r = quantizeModel(input, modelQuantOptions(opts));
  return { input, ...r, out: decodeModel(encodeModelBytes(r.model)) };
}

const names = (m: OnnxModel) => m.graph.initializers.map((t) => t.name);
const ops = (m: OnnxModel) => m.graph.nodes.map((n) => n.opType);

describe('model quantization: which weights', () => {
  it('quantizes MatMul, Gemm and Conv weights and leaves biases and small tensors float', () => {
    const r = run(gemmMlp().bytes);
    assert.deepEqual(r.tensors.map((t) => t.name).sort(), ['W1', 'W2']);
    const out = r.out.graph.initializers;
    for (const bias of ['b1', 'b2']) assert.equal(out.find((t) => t.name === bias)?.dataType, DataType.float32);
    const conv = run(convNet().bytes);
    assert.deepEqual(conv.tensors.map((t) => t.name).sort(), ['W1', 'W2']);
    assert.ok(names(conv.out).includes('B1'));
  });

  it('keeps every untouched initializer byte-identical, and node order and IO unchanged', () => {
    for (const format of ['qdq', 'matmulnbits', 'dynamic'] as const) {
      const opts = format === 'matmulnbits' ? { bits: 4 as const } : {};
      const r = run(gemmMlp().bytes, { format, ...opts });
      for (const name of ['b1', 'b2']) {
        const before = r.input.graph.initializers.find((t) => t.name === name)!;
        const after = r.out.graph.initializers.find((t) => t.name === name)!;
        assert.deepEqual(Buffer.from(encodeTensor(after).concat()), Buffer.from(encodeTensor(before).concat()), `${format} ${name}`);
      }
      assert.deepEqual(r.out.graph.inputs.map((v) => v.src), r.input.graph.inputs.map((v) => v.src));
      assert.deepEqual(r.out.graph.outputs.map((v) => v.src), r.input.graph.outputs.map((v) => v.src));
      assert.ok(ops(r.out).includes('Relu'));
    }
  });

  it('skips with a reason: min_elements, exclude (with wildcards, by node or initializer name), op_types', () => {
    const small = run(gemmMlp().bytes, { minElements: 100_000 });
    assert.deepEqual(small.tensors.map((t) => t.name), ['W1']);
    assert.deepEqual(small.skipped, [{ name: 'W2', reason: '65536 elements, fewer than min_elements=100000' }]);
    const byNode = run(gemmMlp().bytes, { exclude: ['fc*'] });
    assert.equal(byNode.tensors.length, 0);
    assert.deepEqual(byNode.skipped.map((s) => s.reason), ["excluded by 'fc*'", "excluded by 'fc*'"]);
    const byName = run(gemmMlp().bytes, { exclude: ['W2'] });
    assert.deepEqual(byName.tensors.map((t) => t.name), ['W1']);
    const onlyMatMul = run(gemmMlp().bytes, { opTypes: ['MatMul'] });
    assert.equal(onlyMatMul.tensors.length, 0);
    assert.equal(encodeModelBytes(onlyMatMul.model).length, gemmMlp().bytes.length);
  });

  it('matches wildcards literally except for *', () => {
    assert.ok(wildcard('layers.*.fc').test('layers.3.fc'));
    assert.ok(!wildcard('layers.*.fc').test('layersX3Xfc2'));
    assert.ok(wildcard('a+b(c)').test('a+b(c)'));
  });

  it('quantizes a shared weight once, for both consumers', () => {
    for (const bits of [8, 4] as const) {
      const r = run(sharedWeight().bytes, { bits });
      assert.equal(r.tensors.length, 1);
      assert.deepEqual(r.tensors[0]!.nodes, ['first', 'second']);
      const ints = r.out.graph.initializers.filter((t) => t.dataType !== DataType.float32);
      // Symmetric QDQ leaves out the zero point (all 0, DequantizeLinear's default).
      assert.equal(ints.length, 1, 'one quantized copy');
    }
  });

  it('takes weights out of Constant nodes', () => {
    const r = run(constantWeights().bytes);
    assert.equal(r.tensors.length, 2);
    assert.ok(!ops(r.out).includes('Constant'));
    assert.equal(ops(r.out).filter((o) => o === 'DequantizeLinear').length, 2);
  });

  it('removes replaced weights from graph.input (IR 3) and stale value_info', () => {
    const ir3 = run(matmulNet(9, 3).bytes, { bits: 4 });
    assert.deepEqual(ir3.input.graph.inputs.map((v) => v.name), ['x', 'W1', 'W2', 'b1']);
    assert.deepEqual(ir3.out.graph.inputs.map((v) => v.name), ['x', 'b1']);
    assert.deepEqual(ir3.out.graph.valueInfo.map((v) => v.name), ['m'], 'W1 no longer exists');
    // QDQ keeps W1 as the DequantizeLinear output, so its value_info stays true.
    const qdq = run(matmulNet().bytes);
    assert.deepEqual(qdq.out.graph.valueInfo.map((v) => v.name), ['W1', 'm']);
  });

  it('never raises the default opset; adds com.microsoft only for MatMulNBits', () => {
    const q = run(matmulNet(17).bytes, { bits: 8 });
    assert.deepEqual(q.out.opsetImports, [{ domain: '', version: 17 }]);
    const n = run(matmulNet(17).bytes, { bits: 4 });
    assert.deepEqual(n.out.opsetImports, [
      { domain: '', version: 17 },
      { domain: 'com.microsoft', version: 1 },
    ]);
    assert.deepEqual(n.addedOpsets, [{ domain: 'com.microsoft', version: 1 }]);
  });
});

describe('model quantization: formats chosen', () => {
  // `short`: a row whose blocked axis is shorter than group_size says so (not a fallback).
  const cases: { what: string; bytes: Uint8Array; opts: Partial<ModelQuantOptions>; want: string[]; fallback?: true; short?: true }[] = [
    { what: 'int8 → per-channel QDQ', bytes: gemmMlp().bytes, opts: { bits: 8 }, want: ['qdq/8/per_channel'] },
    { what: '4-bit at opset 17 → MatMulNBits', bytes: gemmMlp(17).bytes, opts: { bits: 4 }, want: ['matmulnbits/4/per_group'] },
    { what: '4-bit at opset 21 → blocked QDQ', bytes: gemmMlp(21).bytes, opts: { bits: 4 }, want: ['qdq/4/per_group'] },
    { what: '2-bit → MatMulNBits (2 bits stored)', bytes: matmulNet(21).bytes, opts: { bits: 2 }, want: ['matmulnbits/2/per_group'] },
    { what: '4-bit Conv at opset 17 → int8 with the reason', bytes: convNet(17).bytes, opts: { bits: 4 }, want: ['qdq/8/per_channel'], fallback: true },
    { what: '4-bit Conv at opset 21 → blocked QDQ', bytes: convNet(21).bytes, opts: { bits: 4 }, want: ['qdq/4/per_group'], short: true },
    { what: 'per_group int8 at opset 17 → per channel', bytes: matmulNet(17).bytes, opts: { bits: 8, granularity: 'per_group' }, want: ['qdq/8/per_channel'], fallback: true },
    { what: 'per_channel at opset 12 → per channel (com.microsoft DequantizeLinear)', bytes: matmulNet(12).bytes, opts: { bits: 8 }, want: ['qdq/8/per_channel'] },
    { what: 'per_channel at opset 9 → per channel (com.microsoft DequantizeLinear)', bytes: convNet(9).bytes, opts: { bits: 8 }, want: ['qdq/8/per_channel'] },
    { what: 'dynamic at opset 9 → DynamicQuantizeMatMul', bytes: matmulNet(9).bytes, opts: { format: 'dynamic' }, want: ['dynamic/8/per_channel'] },
    { what: 'dynamic', bytes: gemmMlp().bytes, opts: { format: 'dynamic' }, want: ['dynamic/8/per_channel'] },
  ];
  for (const c of cases) {
    it(c.what, () => {
      const r = run(c.bytes, c.opts);
      assert.deepEqual([...new Set(r.tensors.map((t) => `${t.format}/${t.bits}/${t.granularity}`))], c.want);
      assert.ok(r.tensors.length > 0);
      const short = (t: { note?: string | undefined }) => /^its blocked axis 1 holds \d+ values, fewer than group_size=32: each block is those \d+/.test(t.note ?? '');
      if (c.short) {
        // The Conv whose C is below 32 says so; the others say nothing.
        assert.ok(r.tensors.some(short) && r.tensors.every((t) => t.note === undefined || short(t)), JSON.stringify(r.tensors.map((t) => t.note)));
      }
      else assert.ok(r.tensors.every((t) => (typeof t.note === 'string') === (c.fallback === true)), 'a fallback says why, and only a fallback');
    });
  }

  it('refuses options the model cannot take as a whole, naming the limit', () => {
    const refuse = (bytes: Uint8Array, opts: Partial<ModelQuantOptions>, message: RegExp) =>
      assert.throws(() => run(bytes, opts), (e: { code: string; message: string }) => e.code === 'QUANT_ERR_OPTION' && message.test(e.message));
    refuse(gemmMlp(17).bytes, { format: 'qdq', bits: 4 }, /needs opset ≥ 21/);
    refuse(gemmMlp(17).bytes, { format: 'matmulnbits', bits: 4, groupSize: 48 }, /group_size in 16, 32, 64, 128, 256/);
    refuse(gemmMlp(17).bytes, { format: 'matmulnbits', bits: 4, granularity: 'per_channel' }, /per_group/);
    refuse(gemmMlp(17).bytes, { format: 'dynamic', bits: 4 }, /int8 only/);
  });

  it('an explicit format skips the weights it cannot carry, with the reason', () => {
    const r = run(convNet().bytes, { format: 'matmulnbits', bits: 4 });
    assert.equal(r.tensors.length, 0);
    assert.match(r.skipped[0]!.reason, /MatMulNBits replaces MatMul and Gemm only/);
  });
});

describe('model quantization: the report', () => {
  it("gives each weight the tensor API's numbers for the same weight and options", () => {
    const settings: { opts: Partial<ModelQuantOptions>; spec: (axis: number) => Parameters<typeof quantize>[2] }[] = [
      { opts: { bits: 8 }, spec: (axis) => ({ bits: 8, scheme: 'symmetric', granularity: 'per_channel', axis, groupSize: 128, calibration: 'minmax', percentile: 99.99 }) },
      { opts: { bits: 4, scheme: 'asymmetric', calibration: 'mse' }, spec: (axis) => ({ bits: 4, scheme: 'asymmetric', granularity: 'per_group', axis, groupSize: 32, calibration: 'mse', percentile: 99.99 }) },
    ];
    const { bytes } = gemmMlp();
    const input = decodeModel(bytes);
    for (const { opts, spec } of settings) {
      const r = quantizeModel(input, modelQuantOptions(opts));
      for (const row of r.tensors) {
        const t = input.graph.initializers.find((i) => i.name === row.name)!;
        const api = quantize(readFloat32(t), t.dims, spec(row.axis!));
        const e = reportFromSums(api.sums);
        assert.deepEqual([row.max_error, row.mean_error, row.mse, row.snr_db, row.clipped, row.scale_count], [e.max_error, e.mean_error, e.mse, e.snr_db, e.clipped, api.params.scale.length]);
      }
    }
  });

  it('ranks tensors worst first and counts their bytes', () => {
    const r = run(matmulNet().bytes, { bits: 4 });
    const snrs = r.tensors.map((t) => t.snr_db!);
    assert.deepEqual(snrs, [...snrs].sort((a, b) => a - b));
    const w1 = r.tensors.find((t) => t.name === 'W1')!;
    assert.equal(w1.original_bytes, 256 * 256 * 4);
    // 4 bits per weight + one float scale per 32: 32768 + 8 × 256 × 4.
    assert.equal(w1.quantized_bytes, 256 * 256 / 2 + (256 / 32) * 256 * 4);
    assert.deepEqual([w1.node, w1.op_type, w1.shape, w1.group_size], ['proj', 'MatMul', [256, 256], 32]);
  });

  it('reports progress per weight, monotonic, ending at the total', () => {
    const seen: number[] = [];
    quantizeModel(decodeModel(convNet().bytes), modelQuantOptions(), { onProgress: (p) => seen.push(p.bytesDone / p.bytesTotal) });
    assert.deepEqual(seen, [...seen].sort((a, b) => a - b));
    assert.equal(seen.at(-1), 1);
    assert.equal(seen.length, 3);
  });
});
