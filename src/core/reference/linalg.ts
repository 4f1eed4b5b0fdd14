// Plain float64 linear algebra for GPTQ, the oracle the kernels (kernels/linalg.ts) are
// checked against. Matrices are row-major n×n Float64Arrays.

/**
 * The lower Cholesky factor L of a symmetric positive definite A (A = L·Lᵀ), or null when a
 * pivot is not positive (A is not positive definite in float64). Reads A's lower triangle.
 */
export function choleskyLower(a: Float64Array, n: number): Float64Array | null {
  const l = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let d = a[j * n + j]!;
    for (let k = 0; k < j; k++) d -= l[j * n + k]! * l[j * n + k]!;
    if (!(d > 0)) return null;
    const ljj = Math.sqrt(d);
    l[j * n + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      let s = a[i * n + j]!;
      for (let k = 0; k < j; k++) s -= l[i * n + k]! * l[j * n + k]!;
      l[i * n + j] = s / ljj;
    }
  }
  return l;
}

/** L⁻¹ of a lower triangular L with a nonzero diagonal (forward substitution, column by column). */
export function invertLower(l: Float64Array, n: number): Float64Array {
  const x = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    x[j * n + j] = 1 / l[j * n + j]!;
    for (let i = j + 1; i < n; i++) {
      let s = 0;
      for (let k = j; k < i; k++) s += l[i * n + k]! * x[k * n + j]!;
      x[i * n + j] = -s / l[i * n + i]!;
    }
  }
  return x;
}

/**
 * GPTQ's factor of the inverse Hessian, exactly the reference's three steps
 * (torch.linalg.cholesky → torch.cholesky_inverse → torch.linalg.cholesky(upper=True)):
 * the upper triangular U with H⁻¹ = Uᵀ·U. null when H (or H⁻¹ in float64) is not
 * positive definite.
 */
export function inverseUpperFactor(h: Float64Array, n: number): Float64Array | null {
  const l = choleskyLower(h, n);
  if (!l) return null;
  const li = invertLower(l, n);
  // H⁻¹ = L⁻ᵀ·L⁻¹, (i, j) = Σ_k li[k, i]·li[k, j] over k ≥ max(i, j).
  const hinv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = i; k < n; k++) s += li[k * n + i]! * li[k * n + j]!;
      hinv[i * n + j] = s;
      hinv[j * n + i] = s;
    }
  }
  const lo = choleskyLower(hinv, n);
  if (!lo) return null;
  // The upper factor is the lower one transposed.
  const u = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) u[j * n + i] = lo[i * n + j]!;
  return u;
}
