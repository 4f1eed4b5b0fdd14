import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import type { CalibrationSamples } from '../../../src/onnx/activations/calibration-data.js';
import { batchesFor, forEachStatsBatch, type InputStats } from '../../../src/onnx/activations/weight-stats.js';
import { attrs, floatTensor, graph, model, node, valueInfo } from '../../../src/onnx/graph/build.js';
import { DataType } from '../../../src/onnx/proto/model.js';
import { findWeights } from '../../../src/onnx/weights/find-weights.js';
import { modelQuantOptions } from '../../../src/onnx/weights/options.js';
import { statsKey, weightInputs } from '../../../src/onnx/weights/weight-inputs.js';
import { randn } from '../models.js';

// The Hessian of a Conv weight's input patches (GPTQ's add_batch with nn.Unfold), gathered in
// onnxruntime by a one-hot Conv, against torch.nn.functional.unfold in float64
// (test/fixtures/conv_hessian/generate.py): strides, symmetric and asymmetric pads, dilations,
// non-square kernels, group 2 and depthwise (one Hessian per conv group), a 1×1 stride-2 Conv.
// The Conv reads Relu(x) (an intermediate) in one run and x (the graph input) in another.

interface Case {
  name: string;
  channels: number;
  out_channels: number;
  spatial: [number, number];
  kernel: [number, number];
  strides: number[];
  pads: number[];
  dilations: number[];
  group: number;
  x: number[][];
  xtx: number[];
}

const cases = (JSON.parse(readFileSync('test/fixtures/conv_hessian/conv_hessian.json', 'utf8')) as { cases: Case[] }).cases;
const F = DataType.float32;

function convModel(c: Case, throughRelu: boolean) {
  const [h, w] = c.spatial;
  const cg = c.channels / c.group;
  const x = throughRelu ? 'r' : 'x';
  return model(
    graph({
      nodes: [
        ...(throughRelu ? [node('Identity', ['x'], ['r'], { name: 'id' })] : []),
        node('Conv', [x, 'W'], ['y'], {
          name: 'conv',
          attributes: [attrs.ints('kernel_shape', c.kernel), attrs.ints('strides', c.strides), attrs.ints('pads', c.pads), attrs.ints('dilations', c.dilations), attrs.int('group', c.group)],
        }),
      ],
      initializers: [floatTensor('W', [c.out_channels, cg, ...c.kernel], randn(c.out_channels * cg * c.kernel[0] * c.kernel[1], 3))],
      inputs: [valueInfo('x', F, [1, c.channels, h, w])],
      outputs: [valueInfo('y', F, undefined)],
    }),
    { opset: 13 },
  );
}

function samplesOf(c: Case): CalibrationSamples {
  const dims = [1, c.channels, ...c.spatial];
  return { count: c.x.length, inputNames: ['x'], inputs: [{ name: 'x', dtype: 'float32', dims }], source: 'user', feeds: (i) => ({ x: new ort.Tensor('float32', Float32Array.from(c.x[i]!), dims) }) };
}

describe('Conv patch Hessians (nn.Unfold in onnxruntime)', () => {
  for (const c of cases) {
    for (const throughRelu of [false, true]) {
      it(`${c.name}${throughRelu ? ' (an intermediate input)' : ' (the graph input)'}: per-group Σ pᵀp matches torch unfold`, async () => {
        const m = convModel(c, throughRelu);
        const cand = findWeights(m, modelQuantOptions({ bits: 4, method: 'gptq', minElements: 1 })).candidates.find((w) => w.name === 'W')!;
        const inputs = weightInputs(cand, true);
        assert.ok(typeof inputs !== 'string', String(inputs));
        const inp = inputs.inputs[0]!;
        assert.equal(inp.layout, 'patches');
        const patchK = (c.channels / c.group) * c.kernel[0] * c.kernel[1];
        assert.equal(inp.conv!.patchK, patchK);
        const req = { activation: inp.activation, k: inp.k, layout: inp.layout, conv: inp.conv };
        let got: InputStats | undefined;
        await forEachStatsBatch(m, batchesFor([[req]], true, 1 << 24), samplesOf(c), { full: true, maxBytes: 1 << 24 }, (stats) => {
          got = stats.get(statsKey(inp));
        });
        assert.ok(got?.xtx, 'no patch Hessian');
        assert.equal(got.xtx.length, c.group * patchK * patchK);
        let worst = 0;
        for (let i = 0; i < c.xtx.length; i++) worst = Math.max(worst, Math.abs(got.xtx[i]! - c.xtx[i]!) / (1 + Math.abs(c.xtx[i]!)));
        assert.ok(worst < 1e-5, `max relative difference ${worst}`);
        // The per-channel sums (imatrix's, AWQ's) come along: Σ x² per input channel over both samples.
        const hw = c.spatial[0] * c.spatial[1];
        for (let ch = 0; ch < c.channels; ch++) {
          let e = 0;
          for (const x of c.x) for (let i = 0; i < hw; i++) e += x[ch * hw + i]! ** 2;
          assert.ok(Math.abs(got.sumSq[ch]! - e) <= 1e-4 * (1 + e));
        }
      });
    }
  }

  it('the patch Hessians count against HESSIAN_MAX_BYTES (a 413 that names the Conv patches)', () => {
    const c = cases[0]!;
    const cand = findWeights(convModel(c, false), modelQuantOptions({ bits: 4, method: 'gptq', minElements: 1 })).candidates.find((w) => w.name === 'W')!;
    const inp = (weightInputs(cand, true) as Exclude<ReturnType<typeof weightInputs>, string>).inputs[0]!;
    assert.throws(
      () => batchesFor([[{ activation: inp.activation, k: inp.k, layout: inp.layout, conv: inp.conv }]], true, 1000),
      (e: Error & { statusCode?: number }) => e.statusCode === 413 && /27×27 XᵀX of its Conv patches/.test(e.message),
    );
  });
});
