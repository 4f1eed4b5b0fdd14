// Σ xᵀx over n rows of k features, into the upper triangle of acc (k×k, row-major, float64).
// The core's Gram kernel (src/core/methods/gram.ts, another branch) replaces this loop when
// it lands; the collector only relies on the upper triangle being right.

export function addGram(acc: Float64Array, x: Float32Array, n: number, k: number): void {
  for (let r = 0; r < n; r++) {
    const o = r * k;
    for (let i = 0; i < k; i++) {
      const xi = x[o + i]!;
      if (xi === 0) continue;
      const row = i * k;
      for (let j = i; j < k; j++) acc[row + j]! += xi * x[o + j]!;
    }
  }
}
