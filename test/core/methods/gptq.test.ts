// GPTQ's defining properties on the float64 reference and on the kernel path.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gptq, type GptqOptions } from '../../../src/core/methods/gptq.js';
import { gptqReference } from '../../../src/core/reference/gptq.js';
import { randn } from '../../onnx/models.js';
import { correlated, dequantized, gramOf, proxyLoss, rtn } from './gptq-helpers.js';

const impls = { reference: gptqReference, kernels: gptq };

for (const [name, run] of Object.entries(impls)) {
  test(`${name}: with H = I, GPTQ is round to nearest exactly`, () => {
    for (const opts of [
      { bits: 4, scheme: 'asymmetric', groupSize: 16 },
      { bits: 3, scheme: 'symmetric', groupSize: 64 },
      { bits: 2, scheme: 'asymmetric', groupSize: 1000, actOrder: true },
    ] as GptqOptions[]) {
      const rows = 8;
      const cols = 48;
      const w = randn(rows * cols, 7);
      const eye = new Float64Array(cols * cols);
      for (let i = 0; i < cols; i++) eye[i * cols + i] = 3;
      const got = run(w, rows, cols, eye, opts);
      const want = rtn(w, rows, cols, opts);
      assert.deepEqual(got.codes, want.codes, JSON.stringify(opts));
      assert.deepEqual(got.scales, want.scales);
      assert.deepEqual(got.zeroPoints, want.zeroPoints);
    }
  });

  test(`${name}: the proxy loss tr((W−Ŵ)H(W−Ŵ)ᵀ) is below round to nearest's on correlated activations, 24 seeds`, () => {
    let worst = 0;
    for (let seed = 1; seed <= 24; seed++) {
      const rows = 12;
      const cols = 40;
      const n = 96;
      const x = correlated(n, cols, 1000 + seed);
      const h = gramOf(x, n, cols);
      const w = randn(rows * cols, seed);
      const opts: GptqOptions = { bits: seed % 2 ? 3 : 4, scheme: seed % 3 ? 'asymmetric' : 'symmetric', groupSize: seed % 4 ? 16 : 64, actOrder: seed % 5 === 0, blockSize: 8 + (seed % 3) * 8 };
      const gl = proxyLoss(w, dequantized(run(w, rows, cols, h, opts), rows, cols, opts.groupSize), rows, cols, h);
      const rl = proxyLoss(w, dequantized(rtn(w, rows, cols, opts), rows, cols, opts.groupSize), rows, cols, h);
      assert.ok(gl < rl, `seed ${seed} ${JSON.stringify(opts)}: gptq ${gl} vs rtn ${rl}`);
      worst = Math.max(worst, gl / rl);
    }
    assert.ok(worst < 1);
  });
}
