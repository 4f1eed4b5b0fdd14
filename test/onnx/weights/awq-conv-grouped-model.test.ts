import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { calibrationSamplesFromNpz, sliceSamples, splitSamples } from '../../../src/onnx/activations/calibration-data.js';
import { quantizeDataAware } from '../../../src/onnx/activations/quantize-data-aware.js';
import { decodeModel } from '../../../src/onnx/proto/decode.js';
import { encodeModelBytes } from '../../../src/onnx/proto/encode.js';
import { attrInt, type OnnxModel } from '../../../src/onnx/proto/model.js';
import { readFloat32 } from '../../../src/onnx/proto/tensor-data.js';
import { compareOnSamples } from '../../../src/onnx/runtime/held-back.js';
import { foldAwq, type AwqGroup } from '../../../src/onnx/weights/awq.js';
import { findWeights } from '../../../src/onnx/weights/find-weights.js';
import { modelQuantOptions } from '../../../src/onnx/weights/options.js';
import { planWeight, type WeightPlan } from '../../../src/onnx/weights/plan.js';
import { quantizeModel } from '../../../src/onnx/weights/quantize-model.js';
import { randn } from '../models.js';
import { TRAINED_DIR } from '../fixture-models.js';

// awq end to end on a trained ResNeXt-style glyph CNN (trained/train_grouped_glyphs.py) with a
// group-8 and a group-4 Conv (8 and 16 channels per group), a depthwise Conv (group 64) and
// group-1 Convs, exported at opsets 13 and 17 (run at 21 for the blocked 4-bit DequantizeLinear;
// every op of the model is valid there). The grouped weights are scaled per conv group and the
// inserted Mul keeps the float function; the depthwise one is rtn with its reason; the quantized
// model runs in onnxruntime and its held-back output is at least rtn's. min_elements 1: the
// depthwise weight [64, 1, 3, 3] (576 values) and the stem are under the default 1024.

const CAL = readFileSync(join(TRAINED_DIR, 'glyphs-calibration.npz'));

function at21(m: OnnxModel): OnnxModel {
  return { ...m, irVersion: Math.max(m.irVersion, 10), opsetImports: m.opsetImports.map((o) => (o.domain === '' ? { ...o, version: 21 } : o)) };
}

async function logits(m: OnnxModel, x: Float32Array, n: number): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(encodeModelBytes(m), { graphOptimizationLevel: 'disabled' });
  try {
    return (await s.run({ image: new ort.Tensor('float32', x, [n, 1, 32, 32]) })).logits!.data as Float32Array;
  } finally {
    await s.release();
  }
}

for (const opset of [13, 17]) {
  describe(`awq on the grouped glyph CNN (opset ${opset})`, () => {
    const raw = decodeModel(readFileSync(join(TRAINED_DIR, `grouped-glyphs-op${opset}.onnx`)));
    const model = at21(raw);
    const groupOf = (node: string) => attrInt(model.graph.nodes.find((n) => n.name === node)!, 'group', 1);

    it('W·s per conv group and the inserted Mul by 1/s keep the float logits (random s on every Conv weight)', async () => {
      const opts = modelQuantOptions({ bits: 4, method: 'awq', granularity: 'per_channel', minElements: 1 });
      const groups: AwqGroup[] = [];
      let seed = 1;
      let grouped = 0;
      for (const c of findWeights(raw, opts).candidates) {
        if (!c.uses.every((u) => u.opType === 'Conv')) continue;
        const group = attrInt(c.uses[0]!.node, 'group', 1);
        const channels = c.tensor.dims[1]! * group;
        if (group > 1) grouped++;
        const s = Float32Array.from(randn(channels, seed++), (v) => Math.exp(0.7 * v));
        const plan = planWeight(c, opts, opset) as WeightPlan;
        groups.push({ activation: c.uses[0]!.node.inputs[0]!, members: [{ c, plan, kAxis: 1, values: readFloat32(c.tensor), conv: { group, patchK: c.tensor.dims.slice(1).reduce((a, b) => a * b, 1) } }], choice: { alpha: 0.5, s, loss: 0, rtnLoss: 0 } });
      }
      assert.equal(grouped, 3, 'group 8, group 64 (depthwise) and group 4');
      const folded = foldAwq(raw, groups);
      const n = 4;
      const x = randn(n * 32 * 32, 5);
      const a = await logits(raw, x, n);
      const b = await logits(folded.model, x, n);
      let scale = 0;
      let worst = 0;
      for (const v of a) scale = Math.max(scale, Math.abs(v));
      for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / scale);
      assert.ok(worst < 1e-4, `max |Δ| / max |logit| = ${worst}`);
    });

    it('4-bit g8 method=awq: grouped Convs searched per conv group, depthwise rtn with the reason, runs in onnxruntime, held-back SNR ≥ rtn’s', async () => {
      const opts = modelQuantOptions({ bits: 4, granularity: 'per_group', groupSize: 8, scheme: 'asymmetric', method: 'awq', opTypes: ['Conv', 'Gemm'], minElements: 1 });
      const all = sliceSamples(calibrationSamplesFromNpz(CAL, model, { maxBytes: 2 ** 28, maxSamples: 4096 }), 0, 48);
      const r = await quantizeDataAware(model, all, { method: 'awq', weights: opts, heldBack: 16 });
      const convs = r.result.tensors.filter((t) => t.op_type === 'Conv');
      const described = convs.map((t) => `${t.name} g${groupOf(t.node)}: ${t.method} ${t.note ?? ''}`).join('\n');
      const grouped = convs.filter((t) => groupOf(t.node) > 1 && t.shape[1]! > 1);
      assert.equal(grouped.length, 2, described);
      for (const t of grouped) {
        assert.match(t.method ?? '', /^awq \(α [0-9./]+/, described);
        assert.match(t.note ?? '', /per conv group/, described);
        const row = r.report.awq!.find((a) => a.weights.includes(t.name))!;
        assert.equal(row.conv_group_alphas?.length, groupOf(t.node));
        assert.ok(row.scale_proxy_loss_reduction! >= 0, `${t.name}: ${row.scale_proxy_loss_reduction}`);
      }
      assert.ok(r.report.awq!.some((a) => a.conv_group_alphas?.some((x) => x > 0)), 'some conv group chose α > 0');
      const depthwise = convs.filter((t) => t.shape[1] === 1 && groupOf(t.node) > 1);
      assert.equal(depthwise.length, 1, described);
      assert.equal(depthwise[0]!.method, 'rtn');
      assert.match(depthwise[0]!.note ?? '', /depthwise Conv \(group=64.*cannot change the rounding/);
      // Every weight is quantized: awq where it applies, rtn with a note where it does not.
      for (const t of r.result.tensors) assert.ok(t.method?.startsWith('awq') || (t.method === 'rtn' && t.note), `${t.name}: ${t.method} ${t.note}`);
      const rtn = quantizeModel(model, { ...opts, method: 'rtn' });
      const { heldBack } = splitSamples(all, 16);
      const base = (await compareOnSamples({ bytes: encodeModelBytes(model) }, { bytes: encodeModelBytes(rtn.model) }, heldBack))[0]!.snr_db!;
      const got = r.report.outputs[0]!.snr_db!;
      if (process.env.AWQ_GROUPED_LOG) console.log(`grouped glyphs op${opset} awq ${got.toFixed(2)} dB, rtn ${base.toFixed(2)} dB\n${described}`);
      assert.ok(got >= base, `awq ${got} dB < rtn ${base} dB`);
    });
  });
}
