import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { decodeModel } from '../../../src/onnx/proto/decode.js';
import { encodeModelBytes } from '../../../src/onnx/proto/encode.js';
import { readFloat32 } from '../../../src/onnx/proto/tensor-data.js';
import { awqScales, foldAwq, scaleAlongK, searchAwq, type AwqGroup } from '../../../src/onnx/weights/awq.js';
import { findWeights } from '../../../src/onnx/weights/find-weights.js';
import { modelQuantOptions } from '../../../src/onnx/weights/options.js';
import { planWeight, type WeightPlan } from '../../../src/onnx/weights/plan.js';
import { proxyLoss } from '../../../src/onnx/weights/proxy-loss.js';
import { randn } from '../models.js';

// AWQ's rewrite must leave the float function unchanged: every weight of the trained char LM
// multiplied by a (random, positive) s along K and 1/s folded into the LayerNormalizations or
// inserted as Muls, run in onnxruntime against the original.

const lm = decodeModel(readFileSync('test/fixtures/models/trained/charlm.onnx'));
const opts = modelQuantOptions({ bits: 4, groupSize: 32, scheme: 'asymmetric', method: 'awq' });

function groupsOf(scale: (k: number, seed: number) => Float32Array): AwqGroup[] {
  const { candidates } = findWeights(lm, opts);
  const by = new Map<string, AwqGroup>();
  let seed = 1;
  for (const c of candidates) {
    if (!c.uses.every((u) => u.opType === 'MatMul')) continue;
    const activation = c.uses[0]!.node.inputs[0]!;
    const plan = planWeight(c, opts, 17) as WeightPlan;
    const k = c.tensor.dims[0]!;
    const g = by.get(activation) ?? { activation, members: [], choice: { alpha: 0.5, s: scale(k, seed++), loss: 0, rtnLoss: 0 } };
    g.members.push({ c, plan, kAxis: 0, values: readFloat32(c.tensor) });
    by.set(activation, g);
  }
  return [...by.values()];
}

async function logits(bytes: Uint8Array, ids: BigInt64Array): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'disabled' });
  try {
    return (await s.run({ input_ids: new ort.Tensor('int64', ids, [1, 128]) })).logits!.data as Float32Array;
  } finally {
    await s.release();
  }
}

describe('awq', () => {
  it('scales: mean|x|^α normalized by √(max·min), α = 0 all ones', () => {
    const m = Float64Array.of(1, 4, 16);
    assert.deepEqual([...awqScales(m, 0)], [1, 1, 1]);
    const s = awqScales(m, 0.5);
    // √m = 1, 2, 4; √(4·1) = 2.
    assert.deepEqual([...s], [0.5, 1, 2]);
  });

  it('folding 1/s keeps the float char LM’s logits (LayerNormalization folds, Mul inserts)', async () => {
    const groups = groupsOf((k, seed) => Float32Array.from(randn(k, seed), (v) => Math.exp(0.5 * v)));
    const folded = foldAwq(lm, groups);
    const kinds = [...folded.where.values()];
    assert.equal(kinds.filter((w) => w.startsWith('1/s folded into LayerNormalization')).length, 9, kinds.join('\n'));
    assert.equal(kinds.filter((w) => w.startsWith('Mul by 1/s inserted')).length, 8, kinds.join('\n'));
    const ids = BigInt64Array.from({ length: 128 }, (_, i) => BigInt((i * 7) % 98));
    const a = await logits(encodeModelBytes(lm), ids);
    const b = await logits(encodeModelBytes(folded.model), ids);
    let maxRel = 0;
    let scale = 0;
    for (let i = 0; i < a.length; i++) scale = Math.max(scale, Math.abs(a[i]!));
    for (let i = 0; i < a.length; i++) maxRel = Math.max(maxRel, Math.abs(a[i]! - b[i]!) / scale);
    assert.ok(maxRel < 1e-4, `max |Δlogit| / max |logit| = ${maxRel}`);
    // The input model is untouched.
    assert.equal(encodeModelBytes(lm).length, readFileSync('test/fixtures/models/trained/charlm.onnx').length);
  });

  it('the search is never worse than rtn on its own measure (α = 0 is rtn)', () => {
    const g = groupsOf((k) => new Float32Array(k).fill(1)).find((x) => x.members.length === 1 && x.members[0]!.c.tensor.dims[0] === 640)!;
    const k = 640;
    // A Hessian of 64 random rows with a few loud channels, and their mean |x|.
    const rows = 64;
    const x = randn(rows * k, 3);
    for (let r = 0; r < rows; r++) for (const c of [5, 77, 300]) x[r * k + c]! *= 20;
    const xtx = new Float64Array(k * k);
    const meanAbs = new Float64Array(k);
    for (let r = 0; r < rows; r++) for (let i = 0; i < k; i++) {
      meanAbs[i]! += Math.abs(x[r * k + i]!) / rows;
      for (let j = 0; j < k; j++) xtx[i * k + j]! += x[r * k + i]! * x[r * k + j]!;
    }
    const choice = searchAwq(g.members, meanAbs, { k, sumSq: new Float64Array(k), xtx }, opts);
    assert.ok(choice.loss <= choice.rtnLoss);
    assert.ok(choice.alpha > 0, `loud channels make some α > 0 win (got ${choice.alpha})`);
    assert.ok(choice.loss < 0.9 * choice.rtnLoss, `${choice.loss} vs rtn ${choice.rtnLoss}`);
    // scaleAlongK then dividing gives the weight back.
    const m = g.members[0]!;
    const back = scaleAlongK(scaleAlongK(m.values, m.c.tensor.dims, 0, choice.s), m.c.tensor.dims, 0, choice.s, true);
    assert.ok(proxyLoss(m.values, back, m.c.tensor.dims, 0, { k, sumSq: new Float64Array(k), xtx }) < 1e-6 * choice.rtnLoss);
  });
});
