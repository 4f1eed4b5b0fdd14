import { runGptq, type GptqOps, type GptqOptions, type GptqResult, type Matrix } from '../methods/gptq-steps.js';
import { inverseUpperFactor } from './linalg.js';

// GPTQ with every operation in plain float64 loops: the oracle for methods/gptq.ts (whose
// heavy parts are float32 WebAssembly), and the TypeScript twin of the NumPy
// re-implementation whose codes test/fixtures/gptq/ holds.

const float64Ops: GptqOps = {
  matrix: (rows, cols) => ({ data: new Float64Array(rows * cols), ld: cols }),
  factor(h, n, lambda) {
    const hd = Float64Array.from(h);
    for (let i = 0; i < n; i++) hd[i * n + i]! += lambda;
    const u = inverseUpperFactor(hd, n);
    return u ? { data: u, ld: n } : null;
  },
  update(w: Matrix, e: Matrix, u: Matrix, rows: number, cols: number, i1: number, i2: number) {
    const count = i2 - i1;
    for (let r = 0; r < rows; r++) {
      for (let t = 0; t < count; t++) {
        const et = e.data[r * e.ld + t]!;
        if (et === 0) continue;
        const urow = (i1 + t) * u.ld;
        for (let j = i2; j < cols; j++) w.data[r * w.ld + j]! -= et * u.data[urow + j]!;
      }
    }
  },
};

export function gptqReference(weight: Float32Array, rows: number, cols: number, xtx: Float64Array, opts: GptqOptions): GptqResult {
  return runGptq(float64Ops, weight, rows, cols, xtx, opts);
}
