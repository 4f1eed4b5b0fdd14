// onnxruntime's Gram path (onnx/runtime/gram.ts) against the float64 reference, with the bound
// the WebAssembly path states (core/kernels/gram.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GRAM_ROWS } from '../../../src/core/kernels/gram.js';
import { accumulateGramReference } from '../../../src/core/reference/gram.js';
import { OrtGram } from '../../../src/onnx/runtime/gram.js';
import { randn } from '../models.js';

test(`OrtGram: within (${GRAM_ROWS} + 1)·2⁻²⁴·Σ|x_ri·x_rj| of the float64 reference per element, one band and several, rows in pieces across chunks`, async () => {
  for (const k of [1, 7, 64, 130, 300]) {
    const pieces = [3, GRAM_ROWS + 5, 40];
    const n = pieces.reduce((a, b) => a + b, 0);
    const x = randn(n * k, k + 11, 3);
    const want = new Float64Array(k * k);
    const got = new Float64Array(k * k);
    for (let i = 0; i < k; i++) {
      want[i * k + i] = i;
      got[i * k + i] = i;
    }
    accumulateGramReference(want, x, n, k);
    const g = await OrtGram.create(k);
    try {
      let r0 = 0;
      for (const p of pieces) {
        await g.add(x.subarray(r0 * k), p);
        r0 += p;
      }
      g.addInto(got);
    } finally {
      await g.release();
    }
    for (let i = 0; i < k; i++) {
      for (let j = 0; j < k; j++) {
        let absSum = 0;
        for (let r = 0; r < n; r++) absSum += Math.abs(x[r * k + i]! * x[r * k + j]!);
        const bound = (GRAM_ROWS + 1) * 2 ** -24 * absSum + 1e-12 * absSum;
        assert.ok(Math.abs(got[i * k + j]! - want[i * k + j]!) <= bound, `k ${k} (${i}, ${j}): ${got[i * k + j]} vs ${want[i * k + j]}`);
        assert.equal(got[i * k + j], got[j * k + i]);
      }
    }
  }
});

test('OrtGram: exact on small integers; a readout starts again from zero; bad shapes are refused', async () => {
  const k = 150;
  const n = 1100;
  const ints = Float32Array.from({ length: n * k }, (_, i) => ((i * 7919) % 17) - 8);
  const want = new Float64Array(k * k);
  accumulateGramReference(want, ints, n, k);
  const g = await OrtGram.create(k);
  try {
    await g.add(ints, n);
    const got = new Float64Array(k * k);
    g.addInto(got);
    assert.deepEqual(got, want);
    const again = new Float64Array(k * k);
    g.addInto(again);
    assert.ok(again.every((v) => v === 0));
    await assert.rejects(g.add(ints.subarray(0, k), 2), /n×k/);
    assert.throws(() => g.addInto(new Float64Array(4)), /k×k/);
  } finally {
    await g.release();
  }
  await assert.rejects(OrtGram.create(0), /k ≥ 1/);
});
