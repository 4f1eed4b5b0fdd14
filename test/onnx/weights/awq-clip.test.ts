import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import type { Scheme } from '../../../src/core/calibrate.js';
import { dequantizeWith } from '../../../src/core/quantize.js';
import { applyClip, CLIP_GRID, scaledHessian, searchClip } from '../../../src/onnx/weights/awq-clip.js';
import { modelQuantOptions } from '../../../src/onnx/weights/options.js';
import { quantizeWeight } from '../../../src/onnx/weights/quantize-weight.js';

// The clip search against llm-awq's auto_clip_layer in NumPy (test/fixtures/awq_clip/generate.py),
// which measures the error on 512 tokens where the TypeScript takes their XᵀX.

interface Case {
  name: string;
  rows: number;
  cols: number;
  group_size: number;
  bits: number;
  scheme: Scheme;
  w: number[];
  xtx: number[];
  step: number[];
  max_val: number[];
}

const cases = (JSON.parse(readFileSync('test/fixtures/awq_clip/awq_clip.json', 'utf8')) as { cases: Case[] }).cases;

describe('awq clip search', () => {
  for (const c of cases) {
    it(`${c.name}: the same shrink per output channel and group as llm-awq's auto_clip_layer`, () => {
      const w = Float32Array.from(c.w);
      const r = searchClip(w, c.rows, c.cols, c.group_size, Float64Array.from(c.xtx), c.bits, c.scheme);
      assert.equal(r.groups, c.step.length / c.rows);
      assert.deepEqual([...r.step], c.step);
      for (let i = 0; i < c.max_val.length; i++) assert.equal(r.maxVal[i], Math.fround(c.max_val[i]!), `group ${i}`);
      // The reference does shrink (the fixture is one where clipping matters).
      assert.ok(c.step.some((s) => s > 0) && c.step.some((s) => s === 0));
      assert.ok(c.step.every((s) => s < CLIP_GRID / 2));
    });
  }

  it('with s, the search scores on S⁻¹HS⁻¹ (the XᵀX of X/s) without a K×K copy: the same choice as on the scaled copy', () => {
    const c = cases[0]!;
    const s = Float32Array.from({ length: c.cols }, (_, i) => Math.exp(Math.sin(i)));
    const h = Float64Array.from(c.xtx);
    const a = searchClip(Float32Array.from(c.w), c.rows, c.cols, c.group_size, h, c.bits, c.scheme, s);
    const b = searchClip(Float32Array.from(c.w), c.rows, c.cols, c.group_size, scaledHessian(h, s), c.bits, c.scheme);
    assert.deepEqual([...a.step], [...b.step]);
    const plain = searchClip(Float32Array.from(c.w), c.rows, c.cols, c.group_size, h, c.bits, c.scheme);
    assert.ok(a.step.some((x, i) => x !== plain.step[i]), 's changes the choice');
  });

  it('the clipped weight rounded by rtn (min-max per group) is the grid the search scored', () => {
    const c = cases[0]!;
    const w = Float32Array.from(c.w);
    const clip = searchClip(w, c.rows, c.cols, c.group_size, Float64Array.from(c.xtx), c.bits, c.scheme);
    // As a MatMul weight [K, N] (K along axis 0): the transpose of the fixture's [out, in].
    const dims = [c.cols, c.rows];
    const t = new Float32Array(w.length);
    for (let r = 0; r < c.rows; r++) for (let k = 0; k < c.cols; k++) t[k * c.rows + r] = w[r * c.cols + k]!;
    const clipped = applyClip(t, dims, 0, clip);
    for (let r = 0; r < c.rows; r++) {
      for (let k = 0; k < c.cols; k++) {
        const m = clip.maxVal[r * clip.groups + ((k / c.group_size) | 0)]!;
        assert.equal(clipped[k * c.rows + r], Math.min(Math.max(t[k * c.rows + r]!, -m), m));
      }
    }
    const opts = modelQuantOptions({ bits: c.bits as 4, scheme: c.scheme, granularity: 'per_group', groupSize: c.group_size });
    const plan = { format: 'qdq' as const, bits: c.bits as 4, granularity: 'per_group' as const, groupSize: c.group_size, axis: 0 };
    const q = quantizeWeight(clipped, dims, plan, { ...opts, method: 'rtn' });
    const wHat = dequantizeWith(q.q, q.params);
    // Each group's grid is the one of its clipped values: nothing lands beyond ±maxVal + half a step.
    let shrunkGroupsSeen = 0;
    for (let r = 0; r < c.rows; r++) {
      for (let k = 0; k < c.cols; k++) {
        const b = (k / c.group_size) | 0;
        const m = clip.maxVal[r * clip.groups + b]!;
        const step = q.params.scale[b * c.rows + r]!;
        assert.ok(Math.abs(wHat[k * c.rows + r]!) <= m + step / 2 + 1e-6, `row ${r} col ${k}`);
        if (k % c.group_size === 0 && clip.step[r * clip.groups + b]! > 0) shrunkGroupsSeen++;
      }
    }
    assert.ok(shrunkGroupsSeen > 0);
  });
});

describe('awq clip: query/key projections', () => {
  it('the char LM’s fused qkv projections reach the attention scores (not clipped); proj, fc1, fc2 and head do not', async () => {
    const { decodeModel } = await import('../../../src/onnx/proto/decode.js');
    const { findWeights } = await import('../../../src/onnx/weights/find-weights.js');
    const { attentionScoresReached } = await import('../../../src/onnx/weights/attention-scores.js');
    const lm = decodeModel(readFileSync('test/fixtures/models/trained/charlm.onnx'));
    const found = findWeights(lm, modelQuantOptions({ bits: 4, method: 'awq' })).candidates.filter((c) => c.uses.every((u) => u.opType === 'MatMul'));
    const reached = new Map(found.map((c) => [c.uses[0]!.node.name, attentionScoresReached(lm, c.uses.map((u) => u.node))?.name]));
    const qkv = [...reached.keys()].filter((n) => n.endsWith('/qkv/MatMul'));
    assert.equal(qkv.length, 4);
    for (const n of qkv) assert.equal(reached.get(n), n.replace('/qkv/MatMul', '/MatMul'), n);
    const others = [...reached.keys()].filter((n) => !n.endsWith('/qkv/MatMul'));
    assert.ok(others.length >= 13);
    for (const n of others) assert.equal(reached.get(n), undefined, n);
  });
});
