/** acc (k×k, row-major, full symmetric) += xᵀx for x = n rows × k cols, every product and sum in float64. */
export function accumulateGramReference(acc: Float64Array, x: Float32Array, n: number, k: number): void {
  for (let r = 0; r < n; r++) {
    const row = r * k;
    for (let i = 0; i < k; i++) {
      const xi = x[row + i]!;
      if (xi === 0) continue;
      const at = i * k;
      for (let j = 0; j < k; j++) acc[at + j]! += xi * x[row + j]!;
    }
  }
}
