import { GEMM_SET, LinalgSpace, pad8 } from './linalg.js';

// xᵀx on linalg.wat's product: rows are staged GRAM_ROWS at a time, their float32 products
// summed in float32 over the chunk (in row order), and each chunk's sums added into the
// float64 accumulator. Against the float64 reference each element is off by at most
// (GRAM_ROWS + 1)·2⁻²⁴·Σ_r |x_ri·x_rj| (a recursive float32 sum of GRAM_ROWS rounded
// products, Higham's γ_n bound) plus float64 rounding: test/core/kernels/linalg.test.ts checks it.

export const GRAM_ROWS = 512;

let cached: { space: LinalgSpace; k: number; x: ReturnType<LinalgSpace['matrix']>; c: ReturnType<LinalgSpace['matrix']> } | undefined;

/** The space for k columns: this thread keeps the last one (a Hessian's worth of float32), since calls come in series. */
function spaceFor(k: number) {
  if (cached?.k === k) return cached;
  cached = undefined;
  const kp = pad8(k);
  const space = new LinalgSpace(4 * (GRAM_ROWS * kp + kp * kp) + 1024);
  cached = { space, k, x: space.matrix(GRAM_ROWS, kp), c: space.matrix(kp, kp) };
  return cached;
}

/** Drops the kept space (its memory goes with the garbage). */
export function releaseGramSpace(): void {
  cached = undefined;
}

/** acc (k×k, symmetric) += xᵀx for the first n rows of x (n × k row-major). */
export function gramKernel(acc: Float64Array, x: Float32Array, n: number, k: number): void {
  if (n === 0) return;
  const { space, x: xs, c } = spaceFor(k);
  const kp = xs.ld;
  const cd = c.data;
  for (let r0 = 0; r0 < n; r0 += GRAM_ROWS) {
    const count = Math.min(GRAM_ROWS, n - r0);
    if (kp === k) xs.data.set(x.subarray(r0 * k, (r0 + count) * k));
    else for (let r = 0; r < count; r++) xs.data.set(x.subarray((r0 + r) * k, (r0 + r + 1) * k), r * kp);
    // C (upper blocks) = Xᵀ·X: A(i, t) = X[t, i].
    space.gemm(c, 0, xs, 0, 1, kp, xs, 0, k, k, count, GEMM_SET, true);
    for (let i = 0; i < k; i++) {
      const at = i * k;
      const ct = i * kp;
      for (let j = i; j < k; j++) acc[at + j]! += cd[ct + j]!;
    }
  }
  // The lower triangle from the upper (acc was symmetric, and the same sums went into both).
  for (let i = 1; i < k; i++) for (let j = 0; j < i; j++) acc[i * k + j] = acc[j * k + i]!;
}
