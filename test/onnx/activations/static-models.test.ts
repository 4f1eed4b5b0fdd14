import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { rint } from '../../../src/core/round.js';
import { randomCalibrationSamples } from '../../../src/onnx/activations/calibration-data.js';
import { quantizeStatic, type StaticRequest } from '../../../src/onnx/activations/quantize-static.js';
import { decodeModel } from '../../../src/onnx/proto/decode.js';
import { encodeModelBytes } from '../../../src/onnx/proto/encode.js';
import { DataType, type OnnxModel, type OnnxTensor } from '../../../src/onnx/proto/model.js';
import { readFloat32 } from '../../../src/onnx/proto/tensor-data.js';
import { fusedOps } from '../../../src/onnx/runtime/fused-ops.js';
import { modelQuantOptions } from '../../../src/onnx/weights/options.js';

// Static quantization of real PyTorch exports (test/fixtures/models/static/generate.py:
// torchvision BasicBlocks, mobilenet_v3_small at width 0.25, a BERT-style encoder, a
// detection head), calibrated on N(0, 1) samples. Thresholds are for random data.

const DIR = 'test/fixtures/models/static';
const load = (name: string) => decodeModel(readFileSync(`${DIR}/${name}`));
const request = (over: Partial<StaticRequest> = {}): StaticRequest => ({
  activationType: 'uint8',
  calibration: 'minmax',
  weights: modelQuantOptions({ bits: 8, format: 'qdq' }),
  heldBack: 4,
  ...over,
});

async function quantize(m: OnnxModel, over: Partial<StaticRequest> = {}) {
  const outcome = await quantizeStatic(m, randomCalibrationSamples(m, 12, {}), request(over));
  const q = outcome.fallback.quantized.model;
  const fused = await fusedOps({ bytes: encodeModelBytes(q) });
  assert.equal(fused.status, 'ok');
  return { outcome, q, fused: fused.status === 'ok' ? fused : undefined! };
}

const count = (m: OnnxModel, op: string) => m.graph.nodes.filter((n) => n.opType === op).length;
const minCosine = (o: { cosine_similarity: number }[]) => Math.min(...o.map((x) => x.cosine_similarity));

function initializer(m: OnnxModel, name: string): OnnxTensor {
  const t = m.graph.initializers.find((x) => x.name === name);
  assert.ok(t, `initializer ${name}`);
  return t;
}

function values(t: OnnxTensor): number[] {
  const raw = t.rawData!;
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const n = t.dims.reduce((a, b) => a * b, 1);
  return Array.from({ length: n }, (_, i) => (t.dataType === DataType.int32 ? view.getInt32(4 * i, true) : t.dataType === DataType.int8 ? view.getInt8(i) : view.getFloat32(4 * i, true)));
}

/** Structure every static model must have, checked on the emitted graph itself. */
function checkStructure(original: OnnxModel, q: OnnxModel): void {
  const qs = q.graph.nodes.filter((n) => n.opType === 'QuantizeLinear');
  assert.equal(new Set(qs.map((n) => n.inputs[0])).size, qs.length, 'one QuantizeLinear per tensor');
  assert.deepEqual(q.graph.outputs.map((o) => o.name), original.graph.outputs.map((o) => o.name), 'graph outputs keep their names');
  for (const o of q.graph.outputs) assert.ok(q.graph.nodes.some((n) => n.outputs.includes(o.name)), `output ${o.name} is produced`);
  assert.equal(q.opsetImports.find((o) => o.domain === '')!.version, original.opsetImports.find((o) => o.domain === '')!.version, 'default opset unchanged');
}

/** Every int32 bias: scale = s_x·s_w per channel and q = round(b / scale), from the emitted tensors. */
function checkBiases(original: OnnxModel, q: OnnxModel): number {
  const byOutput = new Map(q.graph.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
  let checked = 0;
  for (const n of q.graph.nodes) {
    if (n.opType !== 'Conv' && n.opType !== 'Gemm') continue;
    const bdq = byOutput.get(n.inputs[2] ?? '');
    if (bdq?.opType !== 'DequantizeLinear') continue;
    const bq = initializer(q, bdq.inputs[0]!);
    assert.equal(bq.dataType, DataType.int32);
    const bScale = values(initializer(q, bdq.inputs[1]!));
    const xdq = byOutput.get(n.inputs[0]!)!;
    const wdq = byOutput.get(n.inputs[1]!)!;
    assert.equal(xdq.opType, 'DequantizeLinear');
    const sx = values(initializer(q, xdq.inputs[1]!))[0]!;
    const sw = values(initializer(q, wdq.inputs[1]!));
    const beta = n.opType === 'Gemm' ? (n.attributes.find((a) => a.name === 'beta')?.f ?? 1) : 1;
    assert.equal(beta, 1);
    // The original float bias: the Conv's third input in the float model (possibly behind an Identity).
    const on = original.graph.nodes.find((x) => x.name === n.name)!;
    let bname = on.inputs[2]!;
    const alias = original.graph.nodes.find((x) => x.opType === 'Identity' && x.outputs[0] === bname);
    if (alias) bname = alias.inputs[0]!;
    const b = readFloat32(initializer(original, bname));
    const qv = values(bq);
    for (let c = 0; c < b.length; c++) {
      const s = Math.fround(sx * sw[sw.length > 1 ? c : 0]!);
      assert.equal(bScale[bScale.length > 1 ? c : 0], s, `${n.name} bias scale ${c}`);
      assert.equal(qv[c], rint(b[c]! / s), `${n.name} bias ${c}`);
    }
    checked++;
  }
  return checked;
}

describe('static quantization of PyTorch exports', () => {
  for (const opset of [13, 11]) {
    it(`resnet-style (torchvision BasicBlock), opset ${opset}: every Conv fused, int32 biases by the formula, cosine ≥ 0.999`, async () => {
      const m = load(`resnet-mini.opset${opset}.onnx`);
      const { outcome, q, fused } = await quantize(m);
      checkStructure(m, q);
      assert.equal(fused.fused.QLinearConv, count(m, 'Conv'), JSON.stringify(fused));
      assert.equal(fused.float_compute.Conv ?? 0, 0);
      assert.equal(fused.fused.QGemm, 1);
      assert.equal(checkBiases(m, q), count(m, 'Conv') + 1);
      assert.ok(minCosine(outcome.fallback.errors.outputs) >= 0.999, JSON.stringify(outcome.fallback.errors.outputs));
      if (opset === 11) assert.ok(q.opsetImports.some((o) => o.domain === 'com.microsoft'));
    });

    it(`mobilenet_v3_small (width 0.25), opset ${opset}: hard-swish and SE blocks quantized, every Conv fused, cosine ≥ 0.99`, async () => {
      const m = load(`mobilenet-v3-mini.opset${opset}.onnx`);
      const { outcome, q, fused } = await quantize(m);
      checkStructure(m, q);
      assert.equal(fused.fused.QLinearConv, count(m, 'Conv'), JSON.stringify(fused));
      assert.ok((fused.fused.QLinearMul ?? 0) > 0 && (fused.fused.QLinearGlobalAveragePool ?? 0) > 0, JSON.stringify(fused));
      assert.ok(checkBiases(m, q) >= count(m, 'Conv'));
      assert.ok(minCosine(outcome.fallback.errors.outputs) >= 0.99, JSON.stringify(outcome.fallback.errors.outputs));
    });
  }

  for (const calibration of ['percentile', 'entropy', 'mse'] as const) {
    it(`resnet-style with activation_calibration=${calibration}: every Conv fused, cosine ≥ 0.99`, async () => {
      const m = load('resnet-mini.opset13.onnx');
      const { outcome, fused } = await quantize(m, { calibration, percentile: 99.99 });
      assert.equal(fused.fused.QLinearConv, count(m, 'Conv'));
      assert.ok(minCosine(outcome.fallback.errors.outputs) >= 0.99, JSON.stringify(outcome.fallback.errors.outputs));
    });
  }

  it('int16 activations: com.microsoft Q/DQ at opset 13, nothing fused, at least as close to float as uint8', async () => {
    const m = load('resnet-mini.opset13.onnx');
    const u8 = await quantize(m);
    const i16 = await quantize(m, { activationType: 'int16' });
    checkStructure(m, i16.q);
    assert.ok(i16.q.graph.nodes.filter((n) => n.opType === 'QuantizeLinear').every((n) => n.domain === 'com.microsoft'));
    assert.equal(i16.fused.fused.QLinearConv ?? 0, 0);
    const snr = (r: typeof u8) => r.outcome.fallback.errors.outputs[0]!.snr_db!;
    // The int8 weights bound both; int16 activations only take the activation part of the error away.
    assert.ok(snr(i16) >= snr(u8), `int16 ${snr(i16)} dB vs uint8 ${snr(u8)} dB`);
  });

  it('BERT-style encoder: MatMuls fused, LayerNormalization and Erf left float, cosine ≥ 0.99', async () => {
    const m = load('bert-tiny.opset17.onnx');
    const { outcome, q, fused } = await quantize(m);
    checkStructure(m, q);
    assert.ok((fused.fused.QLinearMatMul ?? 0) >= count(m, 'MatMul') - 4, JSON.stringify(fused));
    assert.equal(count(q, 'LayerNormalization'), count(m, 'LayerNormalization'));
    assert.equal(count(q, 'Erf'), count(m, 'Erf'));
    for (const n of q.graph.nodes.filter((x) => x.opType === 'LayerNormalization' || x.opType === 'Erf')) {
      assert.ok(!outcome.fallback.quantized.plan.tensors.has(n.outputs[0]!) || n.opType !== 'Erf', 'Erf output is not quantized');
    }
    assert.ok(minCosine(outcome.fallback.errors.outputs) >= 0.99, JSON.stringify(outcome.fallback.errors.outputs));
  });

  it('detection head: collapses when fully quantized, and target_snr_db brings it back by excluding the head', async () => {
    const m = load('detection-head.opset13.onnx');
    const full = await quantize(m);
    const scores = (o: { name: string; snr_db: number | null }[]) => o.find((x) => x.name === 'scores')!.snr_db!;
    assert.ok(scores(full.outcome.fallback.errors.outputs) < 5, `fully quantized scores SNR ${scores(full.outcome.fallback.errors.outputs)} dB`);
    assert.equal(full.outcome.fallback.target_met, null);
    const back = await quantize(m, { target: { snrDb: 25 } });
    const f = back.outcome.fallback;
    assert.equal(f.target_met, true);
    assert.ok(scores(f.errors.outputs) >= 25);
    assert.ok(f.excluded.length >= 1 && f.excluded.length <= 2, JSON.stringify(f.excluded));
    assert.ok(f.excluded.some((e) => e.node === '/Mul' || e.node === '/Slice_1'), JSON.stringify(f.excluded));
    assert.match(f.excluded[0]!.reason, /scores/);
    assert.ok((back.fused.fused.QLinearConv ?? 0) >= 2, 'the backbone stays fused');
    checkStructure(m, back.q);
  });
});
