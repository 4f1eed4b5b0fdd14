import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { attrs, floatTensor, graph, model, node, valueInfo } from '../../../src/onnx/graph/build.js';
import { DataType, type OnnxModel } from '../../../src/onnx/proto/model.js';
import { findWeights } from '../../../src/onnx/weights/find-weights.js';
import { modelQuantOptions, type ModelQuantOptions } from '../../../src/onnx/weights/options.js';
import { planWeight, type PlanResult } from '../../../src/onnx/weights/plan.js';
import { convTransposeNet, randn } from '../models.js';

// The planner's rule for blocks of one weight: where a weight's blocked axis has length 1
// (depthwise Conv [M, 1, kh, kw], a Conv with one input channel, a MatMul with K = 1), per
// group would give every weight its own scale, so it is planned per channel with a note, for
// every format that goes through QDQ (qdq, auto, fp8) and whether per group was asked or the
// low-bit default; in int8 below 8 bits where a channel's row holds several weights (a 3×3
// row is 9), at the asked bits where it is one (the same scales). A blocked axis longer than
// 1 keeps its blocks; per tensor and per channel requests are left alone.

const F = DataType.float32;

function plans(m: OnnxModel, partial: Partial<ModelQuantOptions>, opset: number): Map<string, PlanResult> {
  const opts = modelQuantOptions({ minElements: 1, ...partial });
  return new Map(findWeights(m, opts).candidates.map((c) => [c.name, planWeight(c, opts, opset)]));
}

function planned(p: PlanResult | undefined): Exclude<PlanResult, { skip: string }> {
  assert.ok(p && !('skip' in p), `planned, got ${JSON.stringify(p)}`);
  return p;
}

/** x[1, 1, 8, 8] → Conv(W [16, 1, 3, 3], group 1); v[4, 1] → MatMul(B [1, 64]), K = 1. */
function singleInputNets(opset: number): OnnxModel {
  return model(
    graph({
      nodes: [
        node('Conv', ['x', 'W'], ['y'], { name: 'stem', attributes: [attrs.ints('kernel_shape', [3, 3]), attrs.ints('pads', [1, 1, 1, 1])] }),
        node('MatMul', ['v', 'B'], ['z'], { name: 'outer' }),
      ],
      initializers: [floatTensor('W', [16, 1, 3, 3], randn(144, 3)), floatTensor('B', [1, 64], randn(64, 4))],
      inputs: [valueInfo('x', F, [1, 1, 8, 8]), valueInfo('v', F, [4, 1])],
      outputs: [valueInfo('y', F, undefined), valueInfo('z', F, undefined)],
    }),
    { opset },
  );
}

describe('planner: blocks of one weight become per channel', () => {
  const net = convTransposeNet(21).model;

  it('depthwise Conv under the 4-bit default (per_group g32) at opset 21: int8 per channel on axis 0, with the reason; the grouped Conv keeps its blocks', () => {
    const p = plans(net, { bits: 4 }, 21);
    const d = planned(p.get('Wd'));
    assert.deepEqual([d.format, d.bits, d.granularity, d.axis], ['qdq', 8, 'per_channel', 0]);
    assert.equal(
      d.note,
      'depthwise Conv (group=16, one input channel per group): blocks along C/group = 1 would give each of its 144 weights its own scale (more bytes than the float weight): per channel instead, in int8 (4-bit rows of 9 weights lose far more: ask granularity=per_channel for them)',
    );
    // Wg [32, 8, 3, 3], group 2: blocks of 8 (the whole C/group axis) at each kernel position, as before.
    const g = planned(p.get('Wg'));
    assert.deepEqual([g.bits, g.granularity, g.axis, g.groupSize], [4, 'per_group', 1, 32]);
    assert.equal(g.note, 'its blocked axis 1 holds 8 values, fewer than group_size=32: each block is those 8 (one scale per 8 weights)');
    // A group size the axis fills says nothing.
    assert.equal(planned(plans(net, { bits: 4, groupSize: 8 }, 21).get('Wg')).note, undefined);
  });

  for (const [what, partial, format, int8] of [
    ['explicit per_group, 8-bit qdq', { bits: 8, granularity: 'per_group', groupSize: 16, format: 'qdq' }, 'qdq', false],
    ['explicit per_group, 4-bit asymmetric qdq', { bits: 4, scheme: 'asymmetric', granularity: 'per_group', groupSize: 64, format: 'qdq' }, 'qdq', true],
    ['3-bit auto (int4-stored QDQ)', { bits: 3 }, 'qdq', true],
    ['2-bit auto (int4-stored QDQ: MatMulNBits does not take Conv)', { bits: 2 }, 'qdq', true],
    ['fp8e4m3 per_group', { format: 'fp8e4m3', granularity: 'per_group', groupSize: 32 }, 'fp8e4m3', false],
  ] as const) {
    it(`${what}: the depthwise weight is ${format} per channel${int8 ? ' in int8' : ''} with the note`, () => {
      const d = planned(plans(net, partial as Partial<ModelQuantOptions>, 21).get('Wd'));
      assert.deepEqual([d.format, d.bits, d.granularity, d.axis], [format, 8, 'per_channel', 0]);
      assert.match(d.note ?? '', int8 ? /^depthwise Conv \(group=16.*per channel instead, in int8 \([234]-bit rows of 9 weights/ : /^depthwise Conv \(group=16.*: per channel instead$/);
    });
  }

  it('per_tensor and per_channel requests are left as asked, bits too (no note)', () => {
    for (const granularity of ['per_tensor', 'per_channel'] as const) {
      const d = planned(plans(net, { bits: 4, granularity }, 21).get('Wd'));
      assert.deepEqual([d.bits, d.granularity, d.note], [4, granularity, undefined]);
    }
  });

  it('below opset 21 the note names the depthwise reason, not the opset (per channel at any opset)', () => {
    const d = planned(plans(convTransposeNet(17).model, { bits: 8, granularity: 'per_group' }, 17).get('Wd'));
    assert.equal(d.granularity, 'per_channel');
    assert.match(d.note ?? '', /^depthwise Conv/);
    assert.doesNotMatch(d.note ?? '', /opset/);
    const g = planned(plans(convTransposeNet(17).model, { bits: 8, granularity: 'per_group' }, 17).get('Wg'));
    assert.match(g.note ?? '', /blocked DequantizeLinear needs opset ≥ 21 \(model: 17\): per channel instead/);
  });

  it('a Conv with one input channel (group 1): int8 per channel; a MatMul with K = 1: the asked bits per channel (the same scales)', () => {
    const p = plans(singleInputNets(21), { bits: 4 }, 21);
    const w = planned(p.get('W'));
    assert.deepEqual([w.bits, w.granularity, w.axis], [8, 'per_channel', 0]);
    assert.match(w.note ?? '', /^a Conv with one input channel: blocks along C\/group = 1 would give each of its 144 weights its own scale .*in int8/);
    const b = planned(p.get('B'));
    assert.deepEqual([b.bits, b.granularity, b.axis], [4, 'per_channel', 1]);
    assert.equal(b.note, 'its blocked axis 0 has length 1: blocks along it would give each of its 64 weights its own scale: per channel instead (the same scales, without blocks)');
  });

  it('format=matmulnbits and nf4 do not take Conv: the depthwise weight is skipped with the reason (no per group to degenerate)', () => {
    for (const format of ['matmulnbits', 'nf4'] as const) {
      const d = plans(net, { bits: 4, format, groupSize: 32 }, 21).get('Wd');
      assert.ok(d && 'skip' in d);
      assert.match(d.skip, /replaces MatMul and Gemm only, and a Conv reads this weight/);
    }
  });
});
