import { factorBytes, factorInverse, GEMM_SUB, LinalgSpace, pad4, pad8, type F32Matrix } from '../kernels/linalg.js';
import { resolveGptq, runGptq, type BlockArrays, type GptqOps, type GptqOptions, type GptqResult, type Matrix } from './gptq-steps.js';

export { GPTQ_DAMP_RETRIES, GPTQ_DEFAULTS, type GptqOptions, type GptqResult } from './gptq-steps.js';

/** Bytes of the kernels' memory a rows×cols GPTQ needs (W, the block's errors, the factorization, the codes and parameters). */
export function gptqBytes(rows: number, cols: number, blockSize: number, groups: number): number {
  const ld = pad8(cols) + 8;
  const bs = Math.min(blockSize, cols);
  return 4 * pad4(rows) * (ld + pad8(bs) + 8) + factorBytes(cols) + 4 * (rows * cols + 2 * rows * groups + 4 * bs) + 64 * 12;
}

/**
 * GPTQ of one linear layer. W is [rows = output channels, cols = input features] row-major;
 * xtx is cols×cols = Σ xᵀx over calibration rows (not normalized: GPTQ's result does not
 * depend on H's scale, and the dampening is relative to its mean diagonal).
 *
 * The steps are reference/gptq.ts's (runGptq); the factorization of H and the lazy blocks'
 * updates run in float32 on the WebAssembly product (kernels/linalg.ts), as the reference
 * implementation runs in float32 on a GPU. So codes can differ from the float64 reference's
 * where a value lands within float32 rounding of a decision boundary (and the columns after it
 * see that difference): test/core/methods/gptq-fixtures.test.ts bounds how often. The column
 * loop inside each block runs in WebAssembly too (linalg.wat's gptqblock), in the same float64
 * operations as the steps' TypeScript loop (blockKernel = false), so the two give the same bits.
 */
export function gptq(weight: Float32Array, rows: number, cols: number, xtx: Float64Array, opts: GptqOptions, blockKernel = true): GptqResult {
  const { blockSize, groups } = resolveGptq(weight, rows, cols, xtx, opts);
  const space = new LinalgSpace(gptqBytes(rows, cols, blockSize, groups));
  let w1At = 0;
  const ops: GptqOps = {
    matrix: (r, c) => space.matrix(pad4(r), pad8(c) + 8),
    factor(h, n, lambda) {
      const mark = space.mark();
      const u = factorInverse(space, h, n, lambda);
      if (!u) space.release(mark);
      return u;
    },
    update(w: Matrix, e: Matrix, u: Matrix, r: number, c: number, i1: number, i2: number) {
      const wm = w as F32Matrix;
      const em = e as F32Matrix;
      // W[:, i2:] −= E[:, 0:count] · U[i1:i2, i2:]
      space.gemm(wm, i2, em, 0, em.ld, 1, u as F32Matrix, i1 * u.ld + i2, r, c - i2, i2 - i1, GEMM_SUB);
    },
    arrays(r, c, groups, bs) {
      const ints = (n: number) => {
        const m = space.matrix(1, n);
        return new Int32Array(m.data.buffer, m.at, n);
      };
      w1At = space.matrix(1, 2 * bs).at;
      return { codes: ints(r * c), scales: space.matrix(1, r * groups).data, zeroPoints: ints(r * groups), colParam: ints(bs), codeCol: ints(bs) };
    },
    block(w: Matrix, e: Matrix, u: Matrix, r: number, c: number, i1: number, count: number, a: BlockArrays, pstride: number, ip) {
      const at = (m: Matrix, i: number, j: number) => (m as F32Matrix).at + 4 * (i * m.ld + j);
      space.gptqBlock(at(w, 0, i1), 4 * w.ld, at(e, 0, 0), 4 * e.ld, at(u, i1, i1), 4 * u.ld, r, count, w1At, a.colParam.byteOffset, pstride, a.scales.byteOffset, a.zeroPoints.byteOffset, a.codes.byteOffset, a.codeCol.byteOffset, 4 * c, ip.qMin, ip.qMax);
    },
  };
  // Without the block kernel the steps' TypeScript column loop runs on the same float32 W, U and E: the test that both give the same bits.
  if (!blockKernel) delete ops.block;
  return runGptq(ops, weight, rows, cols, xtx, opts);
}
