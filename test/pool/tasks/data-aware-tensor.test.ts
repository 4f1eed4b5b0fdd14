// The tensor API's statistics: XᵀX of wide activations on onnxruntime (statisticsForAsync)
// against the WebAssembly path (statisticsFor), and the same refusals on both.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeNpy } from '../../../src/codecs/npy.js';
import { GRAM_ROWS } from '../../../src/core/kernels/gram.js';
import type { QuantSpec } from '../../../src/core/quantize.js';
import { ORT_GRAM_MIN_FEATURES, statisticsFor, statisticsForAsync } from '../../../src/pool/tasks/data-aware-tensor.js';
import { randn } from '../../onnx/models.js';

const LIMITS = { maxElements: 1 << 24, maxDims: 8, maxMatmulMacs: 1e9, maxJsonReplyBytes: 1 << 28 };
const SPEC: QuantSpec = { bits: 4, scheme: 'asymmetric', granularity: 'per_group', axis: -1, groupSize: 32, calibration: 'minmax', percentile: 99.9 };

test(`statisticsForAsync: activations with ≥ ${ORT_GRAM_MIN_FEATURES} features are summed on onnxruntime within the WebAssembly path's bound of it`, async () => {
  const k = ORT_GRAM_MIN_FEATURES;
  const n = GRAM_ROWS + 33;
  const x = randn(n * k, 17);
  const tensor = { data: randn(4 * k, 18), shape: [4, k] };
  const members = { activations: encodeNpy(x, '<f4', [n, k]) };
  const onOrt = await statisticsForAsync(LIMITS, tensor, members, SPEC, 'gptq');
  const onWasm = statisticsFor(LIMITS, tensor, members, SPEC, 'gptq');
  assert.equal(onOrt.statistics, 'activations');
  assert.equal(onOrt.activationRows, n);
  let differ = 0;
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < k; j++) {
      // Each path is within (GRAM_ROWS + 1)·2⁻²⁴·Σ|x_ri·x_rj| ≤ …·√(H_ii·H_jj) of the exact sum.
      const bound = 2 * (GRAM_ROWS + 1) * 2 ** -24 * Math.sqrt(onWasm.h[i * k + i]! * onWasm.h[j * k + j]!);
      const d = Math.abs(onOrt.h[i * k + j]! - onWasm.h[i * k + j]!);
      assert.ok(d <= bound, `(${i}, ${j}): ${onOrt.h[i * k + j]} vs ${onWasm.h[i * k + j]}`);
      if (d > 0) differ++;
    }
  }
  // The two paths are different summations (else this test would compare a path with itself).
  assert.ok(differ > 0);
});

test('statisticsForAsync: a wrong activations shape is the same 400 as on the WebAssembly path', async () => {
  const k = ORT_GRAM_MIN_FEATURES;
  const tensor = { data: randn(4 * k, 1), shape: [4, k] };
  const members = { activations: encodeNpy(randn(10 * (k + 1), 2), '<f4', [10, k + 1]) };
  await assert.rejects(statisticsForAsync(LIMITS, tensor, members, SPEC, 'gptq'), /activations must be \[n, 256\]/);
  assert.throws(() => statisticsFor(LIMITS, tensor, members, SPEC, 'gptq'), /activations must be \[n, 256\]/);
});
