// The float32 linear algebra kernels (kernels/linalg.ts, kernels/gram.ts) against the
// float64 references (reference/linalg.ts, reference/gram.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GRAM_ROWS, GramAccumulator, gramKernel } from '../../../src/core/kernels/gram.js';
import { factorInverse, GEMM_ADD, GEMM_SET, GEMM_SUB, LinalgSpace } from '../../../src/core/kernels/linalg.js';
import { accumulateGramReference } from '../../../src/core/reference/gram.js';
import { inverseUpperFactor } from '../../../src/core/reference/linalg.js';
import { randn } from '../../onnx/models.js';

test('gemm: C mode= A·B for every shape remainder, both A layouts, the three modes and the upper-blocks flag', () => {
  let seed = 1;
  for (const m of [1, 4, 5, 11]) {
    for (const n of [1, 8, 9, 23, 300]) {
      for (const kk of [1, 2, 3, 17]) {
        for (const mode of [GEMM_ADD, GEMM_SUB, GEMM_SET]) {
          for (const transposed of [false, true]) {
            for (const upper of [false, true]) {
              const space = new LinalgSpace(1 << 20);
              const lda = transposed ? m + 5 : kk + 3;
              const a = space.matrix(transposed ? kk : m + 4, lda + 8);
              const b = space.matrix(kk, n + 16);
              const c = space.matrix(m + 4, n + 16);
              a.data.set(randn(a.data.length, seed++));
              b.data.set(randn(b.data.length, seed++));
              const c0 = Float32Array.from(randn(c.data.length, seed++));
              c.data.set(c0);
              // A(i, t) at element a0 + i·ai + t·at.
              const [ai, at] = transposed ? [1, a.ld] : [a.ld, 1];
              space.gemm(c, 1, a, 2, ai, at, b, 3, m, n, kk, mode, upper);
              for (let i = 0; i < m; i++) {
                for (let j = 0; j < n; j++) {
                  const computed = !upper || j >= (i & -8);
                  if (!computed) continue;
                  let s = 0;
                  for (let t = 0; t < kk; t++) s = Math.fround(s + Math.fround(a.data[2 + i * ai + t * at]! * b.data[3 + t * b.ld + j]!));
                  const before = c0[i * c.ld + 1 + j]!;
                  const want = mode === GEMM_SET ? s : Math.fround(mode === GEMM_ADD ? before + s : before - s);
                  assert.equal(c.data[i * c.ld + 1 + j], want, `m ${m} n ${n} kk ${kk} mode ${mode} transposed ${transposed} upper ${upper} at (${i}, ${j})`);
                }
              }
              // Nothing left of the block (column 0) is touched.
              for (let i = 0; i < m; i++) assert.equal(c.data[i * c.ld], c0[i * c.ld]);
            }
          }
        }
      }
    }
  }
});

function spd(n: number, seed: number): Float64Array {
  const z = randn(n * (n + 8), seed);
  const h = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let t = 0; t < n + 8; t++) s += z[i * (n + 8) + t]! * z[j * (n + 8) + t]!;
      h[i * n + j] = s;
      h[j * n + i] = s;
    }
  }
  return h;
}

test('factorInverse: U with (H + λI)⁻¹ = UᵀU matches the reference three-step factor within float32 accuracy, across panel boundaries', () => {
  for (const n of [1, 7, 64, 65, 130, 200]) {
    const h = spd(n, n);
    let mean = 0;
    for (let i = 0; i < n; i++) mean += h[i * n + i]! / n;
    const lambda = 0.01 * mean;
    const hd = Float64Array.from(h);
    for (let i = 0; i < n; i++) hd[i * n + i]! += lambda;
    const want = inverseUpperFactor(hd, n)!;
    const space = new LinalgSpace(1 << 22);
    const u = factorInverse(space, h, n, lambda)!;
    let scale = 0;
    for (const v of want) scale = Math.max(scale, Math.abs(v));
    let worst = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        const got = u.data[i * u.ld + j]!;
        if (j < i) assert.equal(got, 0, `n ${n}: U(${i}, ${j}) below the diagonal`);
        worst = Math.max(worst, Math.abs(got - want[i * n + j]!) / scale);
      }
    }
    // Measured ≤ 2e-6 here; float32 factorization of a matrix of condition ~1e3.
    assert.ok(worst < 2e-5, `n ${n}: worst error ${worst} of max |U|`);
  }
});

test('factorInverse: null for a matrix that is not positive definite', () => {
  const n = 70;
  const h = spd(n, 3);
  h[40 * n + 40] = -1;
  assert.equal(factorInverse(new LinalgSpace(1 << 22), h, n, 0), null);
  const zero = new Float64Array(9 * 9);
  assert.equal(factorInverse(new LinalgSpace(1 << 20), zero, 9, 0), null);
});

test(`gramKernel: within (${GRAM_ROWS} + 1)·2⁻²⁴·Σ|x_ri·x_rj| of the float64 reference per element, over several chunks, and exact on small integers`, () => {
  for (const k of [1, 5, 37, 70]) {
    const n = 2 * GRAM_ROWS + 77;
    const x = randn(n * k, k + 100, 3);
    const want = new Float64Array(k * k);
    const got = new Float64Array(k * k);
    for (let i = 0; i < k; i++) {
      want[i * k + i] = i;
      got[i * k + i] = i;
    }
    accumulateGramReference(want, x, n, k);
    gramKernel(got, x, 100, k);
    gramKernel(got, x.subarray(100 * k), n - 100, k);
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
  const k = 19;
  const n = 1500;
  const ints = Float32Array.from({ length: n * k }, (_, i) => ((i * 7919) % 17) - 8);
  const want = new Float64Array(k * k);
  const got = new Float64Array(k * k);
  accumulateGramReference(want, ints, n, k);
  gramKernel(got, ints, n, k);
  assert.deepEqual(got, want);
});

test('GramAccumulator: rows streamed in pieces of any size (odd chunks, padded columns, several column tiles) stay within the bound, and each readout starts again from zero', () => {
  const pieces = [1, GRAM_ROWS, 77, GRAM_ROWS + 1, 2];
  const n = pieces.reduce((a, b) => a + b, 0);
  for (const k of [1, 5, 8, 37, 300]) {
    const x = randn(n * k, k + 7, 2);
    const acc = new GramAccumulator(k);
    const want = new Float64Array(k * k);
    accumulateGramReference(want, x, n, k);
    for (let round = 0; round < 2; round++) {
      let r0 = 0;
      for (const p of pieces) {
        acc.add(x.subarray(r0 * k), p);
        r0 += p;
      }
      const got = new Float64Array(k * k);
      acc.addInto(got);
      for (let i = 0; i < k; i++) {
        for (let j = 0; j < k; j++) {
          let absSum = 0;
          for (let r = 0; r < n; r++) absSum += Math.abs(x[r * k + i]! * x[r * k + j]!);
          const bound = (GRAM_ROWS + 1) * 2 ** -24 * absSum + 1e-12 * absSum;
          assert.ok(Math.abs(got[i * k + j]! - want[i * k + j]!) <= bound, `k ${k} round ${round} (${i}, ${j}): ${got[i * k + j]} vs ${want[i * k + j]}`);
          assert.equal(got[i * k + j], got[j * k + i]);
        }
      }
    }
    // Nothing added since the last readout: nothing to add.
    const after = new Float64Array(k * k).fill(1);
    acc.addInto(after);
    assert.ok(after.every((v) => v === 1));
  }
});
