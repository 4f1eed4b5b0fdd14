import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { applyClipConv, searchClipConv } from '../../../src/onnx/weights/conv-columns.js';
import { awqReconstruction, awqScales, AWQ_GRID, scaleMember, searchAwq, type AwqMember } from '../../../src/onnx/weights/awq.js';
import { convGroupLosses, scaleConvGroups, searchClipConvGroups } from '../../../src/onnx/weights/awq-conv-groups.js';
import type { WeightCandidate } from '../../../src/onnx/weights/find-weights.js';
import { convProxyLoss } from '../../../src/onnx/weights/gptq-conv.js';
import { modelQuantOptions, type ModelQuantOptions } from '../../../src/onnx/weights/options.js';
import type { WeightPlan } from '../../../src/onnx/weights/plan.js';
import { randn } from '../models.js';

// awq on grouped Conv weights against test/fixtures/awq_conv_groups (generate.py): llm-awq's
// scale search run on each conv group as its own layer, the errors measured by torch's grouped
// conv2d in float64 on the calibration inputs; here from the per-group patch XᵀX.

interface Case {
  name: string;
  channels: number;
  out_channels: number;
  group: number;
  kernel: number[];
  bits: 3 | 4;
  scheme: 'symmetric' | 'asymmetric';
  granularity: 'per_channel' | 'per_group';
  group_size: number | null;
  w: number[];
  mean_abs: number[];
  xtx: number[];
  errs: number[][];
  alphas: number[];
}

const fixture = JSON.parse(readFileSync('test/fixtures/awq_conv_groups/awq_conv_groups.json', 'utf8')) as { cases: Case[] };

function setup(c: Case): { m: AwqMember; opts: ModelQuantOptions; dims: number[]; patchK: number; xtx: Float64Array; meanAbs: Float64Array } {
  const cg = c.channels / c.group;
  const dims = [c.out_channels, cg, ...c.kernel];
  const patchK = cg * c.kernel.reduce((a, b) => a * b, 1);
  const gs = c.group_size ?? 128;
  const opts = modelQuantOptions({ bits: c.bits, scheme: c.scheme, granularity: c.granularity, groupSize: gs, method: 'awq' });
  const plan: WeightPlan = { format: 'qdq', bits: c.bits, granularity: c.granularity, groupSize: gs, axis: c.granularity === 'per_group' ? 1 : 0 };
  const cand = { name: c.name, tensor: { name: c.name, dims } } as unknown as WeightCandidate;
  const m: AwqMember = { c: cand, plan, kAxis: 1, values: Float32Array.from(c.w), conv: { group: c.group, patchK } };
  return { m, opts, dims, patchK, xtx: Float64Array.from(c.xtx), meanAbs: Float64Array.from(c.mean_abs) };
}

function groupScales(meanAbs: Float64Array, group: number, alphas: readonly number[]): Float32Array {
  const cg = meanAbs.length / group;
  const s = new Float32Array(meanAbs.length);
  for (let j = 0; j < group; j++) s.set(awqScales(meanAbs.subarray(j * cg, (j + 1) * cg), alphas[j]!), j * cg);
  return s;
}

describe('awq on grouped Conv weights', () => {
  for (const c of fixture.cases) {
    it(`${c.name}: each conv group's error at every α matches torch's grouped conv2d, and the search keeps each group's best`, () => {
      const { m, opts, dims, patchK, xtx, meanAbs } = setup(c);
      for (let i = 0; i < AWQ_GRID; i++) {
        const s = groupScales(meanAbs, c.group, new Array<number>(c.group).fill(i / AWQ_GRID));
        const got = convGroupLosses(m.values, awqReconstruction(m, s, opts), dims, c.group, patchK, xtx);
        for (let j = 0; j < c.group; j++) {
          const want = c.errs[i]![j]!;
          assert.ok(Math.abs(got[j]! - want) <= 1e-4 * want, `α ${i / AWQ_GRID} group ${j}: ${got[j]} vs torch ${want}`);
        }
      }
      const choice = searchAwq([m], meanAbs, { k: c.channels, sumSq: new Float64Array(c.channels), xtx }, opts);
      assert.equal(choice.groupAlphas!.length, c.group);
      let refLoss = 0;
      let refRtn = 0;
      for (let j = 0; j < c.group; j++) {
        const col = c.errs.map((row) => row[j]!);
        const min = Math.min(...col);
        const picked = col[Math.round(choice.groupAlphas![j]! * AWQ_GRID)]!;
        // The same α, or (in a near tie the float32 products can flip) one within 1e-4 of the best.
        assert.ok(choice.groupAlphas![j] === c.alphas[j] || picked <= min * (1 + 1e-4), `group ${j}: α ${choice.groupAlphas![j]} (err ${picked}) vs torch's ${c.alphas[j]} (err ${min})`);
        refLoss += min;
        refRtn += col[0]!;
      }
      assert.ok(Math.abs(choice.loss - refLoss) <= 1e-4 * refLoss, `loss ${choice.loss} vs ${refLoss}`);
      assert.ok(Math.abs(choice.rtnLoss - refRtn) <= 1e-4 * refRtn, `rtn loss ${choice.rtnLoss} vs ${refRtn}`);
      assert.ok(choice.loss < 0.95 * choice.rtnLoss, `the fixture's loud channels make awq win: ${choice.loss} vs ${choice.rtnLoss}`);
      // The measured loss at the assembled s is convProxyLoss's sum over the groups.
      assert.ok(Math.abs(convProxyLoss(m.values, awqReconstruction(m, choice.s, opts), dims, m.conv!, xtx) - choice.loss) <= 1e-9 * choice.loss);
      assert.equal(choice.alpha, choice.groupAlphas!.reduce((a, b) => a + b, 0) / c.group);
    });
  }

  it('W·s per conv group: channel c of group j scales only output channels of group j; dividing gives W back', () => {
    const dims = [6, 2, 3, 3];
    const w = randn(6 * 2 * 9, 4);
    const s = Float32Array.of(2, 3, 5, 7, 11, 13);
    const out = scaleConvGroups(w, dims, 3, s);
    for (let o = 0; o < 6; o++) {
      for (let c = 0; c < 2; c++) {
        const f = s[((o / 2) | 0) * 2 + c]!;
        for (let p = 0; p < 9; p++) assert.equal(out[(o * 2 + c) * 9 + p], Math.fround(w[(o * 2 + c) * 9 + p]! * f));
      }
    }
    const back = scaleConvGroups(out, dims, 3, s, true);
    for (let i = 0; i < w.length; i++) assert.ok(Math.abs(back[i]! - w[i]!) <= 1e-6 * Math.abs(w[i]!));
    assert.throws(() => scaleConvGroups(w, dims, 2, s), /does not match/);
  });

  it('the clip search per conv group is the group-1 search on each group’s rows with its own scaled Hessian', () => {
    const c = fixture.cases[1]!;
    const { m, dims, patchK, xtx, meanAbs } = setup(c);
    const s = groupScales(meanAbs, c.group, c.alphas);
    const scaled = scaleMember(m, m.values, s);
    const clip = searchClipConvGroups(scaled, dims, c.group, c.group_size!, xtx, s, c.bits, c.scheme);
    const rowsPer = c.out_channels / c.group;
    const cg = c.channels / c.group;
    const p = patchK / cg;
    assert.equal(clip.rows, c.out_channels);
    assert.equal(clip.groups, p * (cg / c.group_size!));
    let shrunk = 0;
    for (let j = 0; j < c.group; j++) {
      // Group j alone: its rows, its Hessian block divided by its own s.
      const h = new Float64Array(patchK * patchK);
      for (let a = 0; a < patchK; a++) {
        for (let b = 0; b < patchK; b++) h[a * patchK + b] = xtx[j * patchK * patchK + a * patchK + b]! / (s[j * cg + ((a / p) | 0)]! * s[j * cg + ((b / p) | 0)]!);
      }
      const alone = searchClipConv(scaled.slice(j * rowsPer * patchK, (j + 1) * rowsPer * patchK), [rowsPer, ...dims.slice(1)], c.group_size!, h, c.bits, c.scheme);
      assert.deepEqual([...clip.step.subarray(j * rowsPer * clip.groups, (j + 1) * rowsPer * clip.groups)], [...alone.step]);
      for (const v of alone.step) if (v > 0) shrunk++;
    }
    assert.ok(shrunk > 0, 'some block is shrunk');
    const out = applyClipConv(scaled, dims, clip, true);
    for (let i = 0; i < out.length; i++) assert.ok(Math.abs(out[i]!) <= Math.abs(scaled[i]!));
  });
  it('depthwise (one channel per conv group): any s leaves Q(W·s)/s = Q(W) to float rounding, per channel and per group (why awq does not search it)', () => {
    const dims = [16, 1, 3, 3];
    const cand = { name: 'dw', tensor: { name: 'dw', dims } } as unknown as WeightCandidate;
    const s = Float32Array.from({ length: 16 }, (_, i) => Math.exp(2 * Math.sin(1.7 * i)));
    for (const granularity of ['per_channel', 'per_group'] as const) {
      const opts = modelQuantOptions({ bits: 3, scheme: 'asymmetric', granularity, groupSize: 16, method: 'awq' });
      const plan: WeightPlan = { format: 'qdq', bits: 3, granularity, groupSize: 16, axis: granularity === 'per_group' ? 1 : 0 };
      const m: AwqMember = { c: cand, plan, kAxis: 1, values: randn(16 * 9, 8), conv: { group: 16, patchK: 9 } };
      const plain = awqReconstruction(m, new Float32Array(16).fill(1), opts);
      const scaled = awqReconstruction(m, s, opts);
      let worst = 0;
      let top = 0;
      for (let i = 0; i < plain.length; i++) {
        worst = Math.max(worst, Math.abs(plain[i]! - scaled[i]!));
        top = Math.max(top, Math.abs(m.values[i]!));
      }
      assert.ok(worst <= 1e-6 * top, `${granularity}: ${worst / top}`);
      // A grouped weight (2 channels per group) is changed by the same s: the invariance is depthwise's own.
      const g: AwqMember = { ...m, c: { name: 'g', tensor: { name: 'g', dims: [16, 2, 3, 3] } } as unknown as WeightCandidate, values: randn(16 * 18, 9), conv: { group: 8, patchK: 18 } };
      const gPlain = awqReconstruction(g, new Float32Array(16).fill(1), opts);
      const gScaled = awqReconstruction(g, s, opts);
      assert.ok(gPlain.some((v, i) => Math.abs(v - gScaled[i]!) > 1e-3), granularity);
    }
  });
});
