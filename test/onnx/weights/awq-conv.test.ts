import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { randomCalibrationSamples, splitSamples } from '../../../src/onnx/activations/calibration-data.js';
import { quantizeDataAware } from '../../../src/onnx/activations/quantize-data-aware.js';
import { defaultHeldBack } from '../../../src/onnx/activations/quantize-static.js';
import { decodeModel } from '../../../src/onnx/proto/decode.js';
import { encodeModelBytes } from '../../../src/onnx/proto/encode.js';
import type { OnnxModel } from '../../../src/onnx/proto/model.js';
import { readFloat32 } from '../../../src/onnx/proto/tensor-data.js';
import { compareOnSamples } from '../../../src/onnx/runtime/held-back.js';
import { foldAwq, type AwqGroup } from '../../../src/onnx/weights/awq.js';
import { applyClipConv, searchClipConv } from '../../../src/onnx/weights/conv-columns.js';
import { findWeights } from '../../../src/onnx/weights/find-weights.js';
import { modelQuantOptions } from '../../../src/onnx/weights/options.js';
import { planWeight, type WeightPlan } from '../../../src/onnx/weights/plan.js';
import { quantizeModel } from '../../../src/onnx/weights/quantize-model.js';
import { randn } from '../models.js';

// awq on group-1 Conv weights: W·s along the input channels and a Mul by 1/s ([C, 1, 1]) before
// the Conv leave the float function unchanged (zero padding commutes with the Mul); the clip
// search's blocks are the service's (C-blocks at each kernel position); and corpus ResNet
// quantized with method=awq runs in onnxruntime with a held-back SNR at least rtn's.

const raw = decodeModel(readFileSync('test/fixtures/models/corpus/resnet-op13.onnx'));
const at21: OnnxModel = { ...raw, irVersion: Math.max(raw.irVersion, 10), opsetImports: raw.opsetImports.map((o) => (o.domain === '' ? { ...o, version: 21 } : o)) };

async function run(m: OnnxModel, x: Float32Array): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(encodeModelBytes(m), { graphOptimizationLevel: 'disabled' });
  try {
    const out = await s.run({ image: new ort.Tensor('float32', x, [1, 3, ...inputHw(m)]) });
    return Object.values(out)[0]!.data as Float32Array;
  } finally {
    await s.release();
  }
}

function inputHw(m: OnnxModel): number[] {
  const t = randomCalibrationSamples(m, 1, { batch: 1 }).inputs[0]!;
  return t.dims.slice(2) as number[];
}

describe('awq on Conv weights', () => {
  it('W·s and an inserted Mul by 1/s keep the float ResNet’s outputs', async () => {
    const opts = modelQuantOptions({ bits: 4, method: 'awq', granularity: 'per_channel' });
    const by = new Map<string, AwqGroup>();
    let seed = 1;
    for (const c of findWeights(raw, opts).candidates) {
      if (!c.uses.every((u) => u.opType === 'Conv')) continue;
      const activation = c.uses[0]!.node.inputs[0]!;
      const k = c.tensor.dims[1]!;
      const plan = planWeight(c, opts, 13) as WeightPlan;
      const g = by.get(activation) ?? { activation, members: [], choice: { alpha: 0.5, s: Float32Array.from(randn(k, seed++), (v) => Math.exp(0.5 * v)), loss: 0, rtnLoss: 0 } };
      g.members.push({ c, plan, kAxis: 1, values: readFloat32(c.tensor), conv: { group: 1, patchK: c.tensor.dims.slice(1).reduce((a, b) => a * b, 1) } });
      by.set(activation, g);
    }
    assert.ok(by.size >= 5);
    const folded = foldAwq(raw, [...by.values()]);
    assert.ok([...folded.where.values()].every((w) => w.startsWith('Mul by 1/s inserted')));
    const hw = inputHw(raw);
    const x = randn(3 * hw[0]! * hw[1]!, 9);
    const a = await run(raw, x);
    const b = await run(folded.model, x);
    let scale = 0;
    let worst = 0;
    for (const v of a) scale = Math.max(scale, Math.abs(v));
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / scale);
    assert.ok(worst < 1e-4, `max |Δ| / max |y| = ${worst}`);
  });

  it('the clip search’s blocks are C-blocks at each kernel position (an unshrunk block keeps its own max |w|)', () => {
    const dims = [6, 8, 3, 3];
    const m = 6;
    const c = 8;
    const p = 9;
    const gs = 4;
    const w = randn(m * c * p, 21);
    for (let i = 0; i < w.length; i += 7) w[i]! *= 5;
    const x = randn(200 * c * p, 22);
    const k = c * p;
    const h = new Float64Array(k * k);
    for (let r = 0; r < 200; r++) for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) h[i * k + j]! += x[r * k + i]! * x[r * k + j]!;
    const clip = searchClipConv(w, dims, gs, h, 3, 'asymmetric');
    assert.equal(clip.groups, p * (c / gs));
    let unshrunk = 0;
    let shrunk = 0;
    const out = applyClipConv(w, dims, clip, true);
    for (let oc = 0; oc < m; oc++) {
      for (let q = 0; q < p; q++) {
        for (let cb = 0; cb < c / gs; cb++) {
          const b = q * (c / gs) + cb;
          let amax = 0;
          for (let ch = cb * gs; ch < (cb + 1) * gs; ch++) amax = Math.max(amax, Math.abs(w[(oc * c + ch) * p + q]!));
          const mx = clip.maxVal[oc * clip.groups + b]!;
          if (clip.step[oc * clip.groups + b] === 0) {
            assert.equal(mx, Math.fround(amax));
            unshrunk++;
          } else {
            assert.ok(mx < amax);
            shrunk++;
          }
          for (let ch = cb * gs; ch < (cb + 1) * gs; ch++) assert.ok(Math.abs(out[(oc * c + ch) * p + q]!) <= mx);
        }
      }
    }
    assert.ok(unshrunk > 0 && shrunk > 0, `${unshrunk} unshrunk, ${shrunk} shrunk`);
  });

  it('resnet-op13 (g16, opset 21) with method=awq: Conv weights scaled and clipped, runs in onnxruntime, held-back SNR ≥ rtn’s', async () => {
    const opts = modelQuantOptions({ bits: 4, granularity: 'per_group', groupSize: 16, scheme: 'asymmetric', method: 'awq', opTypes: ['Conv', 'Gemm', 'MatMul'] });
    const all = randomCalibrationSamples(at21, 16, { batch: 1 });
    const r = await quantizeDataAware(at21, all, { method: 'awq', weights: opts });
    const convs = r.result.tensors.filter((t) => t.op_type === 'Conv' && t.method?.startsWith('awq'));
    assert.ok(convs.length >= 5, r.result.tensors.map((t) => `${t.name}: ${t.method} ${t.note ?? ''}`).join('\n'));
    assert.ok(r.report.awq!.some((a) => a.clip.some((c) => c.clipped)));
    const rtn = quantizeModel(at21, { ...opts, method: 'rtn' });
    const { heldBack } = splitSamples(all, defaultHeldBack(all.count));
    const base = (await compareOnSamples({ bytes: encodeModelBytes(at21) }, { bytes: encodeModelBytes(rtn.model) }, heldBack))[0]!.snr_db!;
    const got = r.report.outputs[0]!.snr_db!;
    if (process.env.GPTQ_CONV_LOG) console.log(`resnet awq ${got.toFixed(2)} dB, rtn ${base.toFixed(2)} dB`);
    assert.ok(got >= base, `awq ${got} dB < rtn ${base} dB`);
  });
});
