import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { dequantizeWith } from '../../../src/core/quantize.js';
import { randomCalibrationSamples, splitSamples, type CalibrationSamples } from '../../../src/onnx/activations/calibration-data.js';
import { quantizeDataAware } from '../../../src/onnx/activations/quantize-data-aware.js';
import { defaultHeldBack } from '../../../src/onnx/activations/quantize-static.js';
import { batchesFor, forEachStatsBatch, type InputStats } from '../../../src/onnx/activations/weight-stats.js';
import { attrs, floatTensor, graph, model, node, valueInfo } from '../../../src/onnx/graph/build.js';
import { decodeModel } from '../../../src/onnx/proto/decode.js';
import { encodeModelBytes } from '../../../src/onnx/proto/encode.js';
import { DataType, type OnnxModel } from '../../../src/onnx/proto/model.js';
import { compareOnSamples } from '../../../src/onnx/runtime/held-back.js';
import { findWeights } from '../../../src/onnx/weights/find-weights.js';
import { convProxyLoss, gptqConvProblem, quantizeGptqConv } from '../../../src/onnx/weights/gptq-conv.js';
import { modelQuantOptions, type ModelQuantOptions } from '../../../src/onnx/weights/options.js';
import type { WeightPlan } from '../../../src/onnx/weights/plan.js';
import { quantizeModel } from '../../../src/onnx/weights/quantize-model.js';
import { quantizeWeight } from '../../../src/onnx/weights/quantize-weight.js';
import { statsKey, weightInputs } from '../../../src/onnx/weights/weight-inputs.js';
import { randn } from '../models.js';

// gptq on Conv weights: the patch Hessian (conv-patches.test.ts checks it against torch's
// unfold) makes ‖X_patches·ΔW‖² the Conv's own output error, which onnxruntime confirms by
// running the Conv with W and with Ŵ; GPTQ lowers it below rtn's for group 1, group 2 and
// depthwise, per channel and per group (depthwise per channel only: per group is one weight a
// block, which the planner never plans); and corpus Conv models quantized with method=gptq run
// in onnxruntime with a held-back output SNR at least rtn's.

const F = DataType.float32;
const C = 8;
const HW = 10;

function conv(group: number, m: number, kernel: number, stride: number, dilation: number): OnnxModel {
  const cg = C / group;
  return model(
    graph({
      nodes: [
        node('Relu', ['x'], ['r'], { name: 'relu' }),
        node('Conv', ['r', 'W'], ['y'], {
          name: 'conv',
          attributes: [attrs.ints('kernel_shape', [kernel, kernel]), attrs.ints('strides', [stride, stride]), attrs.ints('pads', [1, 1, 1, 1]), attrs.ints('dilations', [dilation, dilation]), attrs.int('group', group)],
        }),
      ],
      initializers: [floatTensor('W', [m, cg, kernel, kernel], randn(m * cg * kernel * kernel, 5))],
      inputs: [valueInfo('x', F, [1, C, HW, HW])],
      outputs: [valueInfo('y', F, undefined)],
    }),
    { opset: 21 },
  );
}

// Inputs with a few loud channels, so the Hessian is far from the identity.
const xs = Array.from({ length: 6 }, (_, i) => {
  const x = randn(C * HW * HW, 40 + i);
  for (let j = 0; j < HW * HW; j++) x[2 * HW * HW + j]! *= 6;
  return x;
});
const samples: CalibrationSamples = { count: xs.length, inputNames: ['x'], inputs: [{ name: 'x', dtype: 'float32', dims: [1, C, HW, HW] }], source: 'user', feeds: (i) => ({ x: new ort.Tensor('float32', xs[i]!.slice(), [1, C, HW, HW]) }) };

async function patchStats(m: OnnxModel): Promise<{ stats: InputStats; geo: { group: number; patchK: number } }> {
  const cand = findWeights(m, modelQuantOptions({ bits: 4, minElements: 1 })).candidates[0]!;
  const inp = (weightInputs(cand, true) as Exclude<ReturnType<typeof weightInputs>, string>).inputs[0]!;
  let stats: InputStats | undefined;
  await forEachStatsBatch(m, batchesFor([[{ activation: inp.activation, k: inp.k, layout: inp.layout, conv: inp.conv }]], true, 1 << 26), samples, { full: true, maxBytes: 1 << 26 }, (s) => {
    stats = s.get(statsKey(inp));
  });
  return { stats: stats!, geo: { group: inp.conv!.group, patchK: inp.conv!.patchK } };
}

/** Σ over the samples of (Conv(x, W) − Conv(x, Ŵ))², run in onnxruntime. */
async function outputError(m: OnnxModel, wHat: Float32Array): Promise<number> {
  const w = m.graph.initializers[0]!;
  const q: OnnxModel = { ...m, graph: { ...m.graph, initializers: [floatTensor('W', w.dims, wHat)] } };
  const [a, b] = await Promise.all([ort.InferenceSession.create(encodeModelBytes(m)), ort.InferenceSession.create(encodeModelBytes(q))]);
  try {
    let e = 0;
    for (let i = 0; i < samples.count; i++) {
      const ya = (await a.run(samples.feeds(i))).y!.data as Float32Array;
      const yb = (await b.run(samples.feeds(i))).y!.data as Float32Array;
      for (let j = 0; j < ya.length; j++) e += (ya[j]! - yb[j]!) ** 2;
    }
    return e;
  } finally {
    await Promise.all([a.release(), b.release()]);
  }
}

describe('gptq on Conv weights', () => {
  const shapes: Array<[string, number, number, number, number, number]> = [
    ['group 1, 3×3', 1, 6, 3, 1, 1],
    ['group 1, 3×3 stride 2 dilation 2', 1, 6, 3, 2, 2],
    ['group 2, 3×3', 2, 6, 3, 1, 1],
    ['depthwise 3×3', 8, 8, 3, 1, 1],
  ];
  for (const [what, group, m, kernel, stride, dilation] of shapes) {
    // Depthwise per group would be blocks of one channel (one weight each): nothing to fit.
    for (const granularity of group === C ? (['per_channel'] as const) : (['per_channel', 'per_group'] as const)) {
      it(`${what}, ${granularity}: ‖X_patches·ΔW‖² is the Conv's output error, and gptq's is below rtn's`, async () => {
        const net = conv(group, m, kernel, stride, dilation);
        const { stats, geo } = await patchStats(net);
        const w = net.graph.initializers[0]!;
        const values = Float32Array.from(randn(w.dims.reduce((a, b) => a * b, 1), 5));
        const cg = C / group;
        const gs = Math.min(4, cg);
        const plan: WeightPlan = granularity === 'per_channel' ? { format: 'qdq', bits: 3, granularity, groupSize: 128, axis: 0 } : { format: 'qdq', bits: 3, granularity, groupSize: gs, axis: 1 };
        const opts: ModelQuantOptions = modelQuantOptions({ bits: 3, scheme: 'asymmetric', method: 'gptq' });
        assert.equal(gptqConvProblem(w.dims, plan), undefined);
        const g = quantizeGptqConv(values, w.dims, plan, opts, geo, stats.xtx!);
        const gHat = dequantizeWith(g.q, g.params);
        const r = quantizeWeight(values, w.dims, plan, { ...opts, method: 'rtn' });
        const rHat = dequantizeWith(r.q, r.params);
        // The parameter layout is the plan's (what the emitters write): same shape as rtn's.
        assert.deepEqual(g.params.plan, r.params.plan);
        const lossG = convProxyLoss(values, gHat, w.dims, geo, stats.xtx!);
        const lossR = convProxyLoss(values, rHat, w.dims, geo, stats.xtx!);
        const direct = await outputError(net, rHat);
        assert.ok(Math.abs(lossR - direct) <= 1e-3 * direct, `proxy ${lossR} vs onnxruntime ${direct}`);
        const directG = await outputError(net, gHat);
        assert.ok(Math.abs(lossG - directG) <= 1e-3 * directG, `proxy ${lossG} vs onnxruntime ${directG}`);
        assert.ok(directG < 0.9 * direct, `gptq ${directG} vs rtn ${direct}`);
      });
    }
  }

  it('a group size that does not tile C/group is refused with the reason (rtn then)', () => {
    const plan: WeightPlan = { format: 'qdq', bits: 4, granularity: 'per_group', groupSize: 3, axis: 1 };
    assert.match(gptqConvProblem([6, 8, 3, 3], plan)!, /group_size to divide its 8 input channels/);
  });

  const corpus: Array<[string, Partial<ModelQuantOptions>, boolean]> = [
    ['resnet-op13', { bits: 4, granularity: 'per_channel' }, false],
    ['resnet-op13', { bits: 4, granularity: 'per_group', groupSize: 16 }, true],
    ['mobilenet_v2-op13', { bits: 4, granularity: 'per_channel' }, false],
    // Per group at opset 21 the depthwise weights are planned per channel (blocks along C/group = 1
    // would be one weight each, nothing to fit), so gptq fits them too: proxy_loss_reduction > 0.
    ['mobilenet_v2-op13', { bits: 4, granularity: 'per_group', groupSize: 16 }, true],
  ];
  for (const [name, partial, opset21] of corpus) {
    it(`${name} (${partial.granularity}${opset21 ? ' g16, opset 21' : ''}) with method=gptq runs in onnxruntime; held-back SNR ≥ rtn's`, async () => {
      const raw = decodeModel(readFileSync(`test/fixtures/models/corpus/${name}.onnx`));
      const m: OnnxModel = opset21 ? { ...raw, irVersion: Math.max(raw.irVersion, 10), opsetImports: raw.opsetImports.map((o) => (o.domain === '' ? { ...o, version: 21 } : o)) } : raw;
      const opts = modelQuantOptions({ ...partial, scheme: 'asymmetric', method: 'gptq', opTypes: ['Conv', 'Gemm', 'MatMul'] } as Partial<ModelQuantOptions>);
      const all = randomCalibrationSamples(m, 16, { batch: 1 });
      const r = await quantizeDataAware(m, all, { method: 'gptq', weights: opts });
      const convs = r.result.tensors.filter((t) => t.op_type === 'Conv');
      const fitted = convs.filter((t) => t.method?.startsWith('gptq'));
      assert.ok(fitted.length > 0);
      if (name.startsWith('mobilenet')) {
        const depthwise = fitted.filter((t) => t.shape[1] === 1);
        assert.ok(depthwise.length > 0 && depthwise.every((t) => /groups/.test(t.method!) && t.granularity === 'per_channel'), 'the depthwise Convs fitted per channel, one Hessian per conv group');
      }
      for (const t of fitted) assert.ok(t.proxy_loss_reduction! > 0, `${t.name}: proxy loss reduction ${t.proxy_loss_reduction}`);
      const rtn = quantizeModel(m, { ...opts, method: 'rtn' });
      const { heldBack } = splitSamples(all, defaultHeldBack(all.count));
      const rtnOut = await compareOnSamples({ bytes: encodeModelBytes(m) }, { bytes: encodeModelBytes(rtn.model) }, heldBack);
      const g = r.report.outputs[0]!.snr_db!;
      const base = rtnOut[0]!.snr_db!;
      assert.ok(g >= base, `gptq held-back SNR ${g} dB < rtn ${base} dB`);
      if (process.env.GPTQ_CONV_LOG) console.log(`${name} ${partial.granularity}: gptq ${g.toFixed(2)} dB, rtn ${base.toFixed(2)} dB, ${fitted.length}/${convs.length} Conv weights by gptq`);
    });
  }
});
