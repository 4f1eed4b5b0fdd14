import { quadraticForms } from '../../core/kernels/linalg.js';
import { axisLayout } from '../../core/shape.js';

// The layer-output error a weight error causes on the calibration activations:
// ‖X·ΔW‖² = Σ_n Δ[:, n]ᵀ (XᵀX) Δ[:, n] over the output channels n, with ΔW taken along
// the K input features. With only diag(XᵀX) it is the diagonal approximation Σ_k H_kk ΔW_k².
// GPTQ minimizes the first, imatrix the second; the report compares each with rtn's.

export interface ProxyStats {
  k: number;
  sumSq: Float64Array;
  xtx?: Float64Array | undefined;
}

/**
 * ΔW = a − b for a weight of `dims` whose K features run along kAxis (any layout: the other
 * axes are output channels), as [columns][K] float64 vectors.
 */
function deltaColumns(a: Float32Array, b: Float32Array, dims: readonly number[], kAxis: number): { cols: number; d: Float32Array; k: number } {
  const { outer, len: k, inner } = axisLayout(dims, kAxis);
  const cols = outer * inner;
  const d = new Float32Array(cols * k);
  for (let o = 0; o < outer; o++) {
    for (let kk = 0; kk < k; kk++) {
      const base = (o * k + kk) * inner;
      for (let i = 0; i < inner; i++) d[(o * inner + i) * k + kk] = a[base + i]! - b[base + i]!;
    }
  }
  return { cols, d, k };
}

export function proxyLoss(w: Float32Array, wHat: Float32Array, dims: readonly number[], kAxis: number, s: ProxyStats): number {
  const { cols, d, k } = deltaColumns(w, wHat, dims, kAxis);
  // The core's SIMD D·H product (float32 products, float64 sums): AWQ scores 20 candidates per weight with it.
  if (s.xtx) return quadraticForms([d], cols, k, s.xtx)[0]!;
  let loss = 0;
  for (let c = 0; c < cols; c++) for (let i = 0; i < k; i++) loss += s.sumSq[i]! * d[c * k + i]! ** 2;
  return loss;
}

/** 1 − loss/rtnLoss: the share of rtn's proxy loss removed (negative when worse; null when rtn's is 0). */
export function lossReduction(loss: number, rtnLoss: number): number | null {
  return rtnLoss > 0 ? 1 - loss / rtnLoss : null;
}
