// Inputs and measures shared by the GPTQ tests.
import { paramsFromRange } from '../../../src/core/calibrate.js';
import { intParamsOf } from '../../../src/core/quantize.js';
import { clamp, rint } from '../../../src/core/round.js';
import { accumulateGramReference } from '../../../src/core/reference/gram.js';
import type { GptqOptions, GptqResult } from '../../../src/core/methods/gptq.js';
import { randn } from '../../onnx/models.js';

/** n rows of k correlated features: Gaussian z mixed by a random k×k matrix (a small diagonal, so features are strongly correlated), columns scaled over two decades. */
export function correlated(n: number, k: number, seed: number): Float32Array {
  const z = randn(n * k, seed);
  const mix = randn(k * k, seed + 1, 1 / Math.sqrt(k));
  for (let i = 0; i < k; i++) mix[i * k + i]! += 0.25;
  const x = new Float32Array(n * k);
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < k; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += z[r * k + t]! * mix[t * k + j]!;
      x[r * k + j] = s * 10 ** ((2 * j) / k - 1);
    }
  }
  return x;
}

export function gramOf(x: Float32Array, n: number, k: number): Float64Array {
  const acc = new Float64Array(k * k);
  accumulateGramReference(acc, x, n, k);
  return acc;
}

/** Ŵ from a result: (code − zp)·scale per element. */
export function dequantized(res: GptqResult, rows: number, cols: number, groupSize: number): Float64Array {
  const out = new Float64Array(rows * cols);
  const g = Math.min(groupSize, cols);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) {
      const at = r * res.groups + ((j / g) | 0);
      out[r * cols + j] = (res.codes[r * cols + j]! - res.zeroPoints[at]!) * res.scales[at]!;
    }
  }
  return out;
}

/** GPTQ's proxy loss tr((W − Ŵ) H (W − Ŵ)ᵀ). */
export function proxyLoss(w: Float32Array, wq: Float64Array, rows: number, cols: number, h: Float64Array): number {
  let total = 0;
  const d = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) d[j] = w[r * cols + j]! - wq[r * cols + j]!;
    for (let i = 0; i < cols; i++) {
      let s = 0;
      for (let j = 0; j < cols; j++) s += h[i * cols + j]! * d[j]!;
      total += d[i]! * s;
    }
  }
  return total;
}

/** Round to nearest on the same per-row, per-group min-max grid (the core's rtn). */
export function rtn(w: Float32Array, rows: number, cols: number, opts: GptqOptions): GptqResult {
  const ip = intParamsOf(opts.bits, opts.scheme);
  const g = Math.min(opts.groupSize, cols);
  const groups = Math.ceil(cols / g);
  const codes = new Int32Array(rows * cols);
  const scales = new Float32Array(rows * groups);
  const zeroPoints = new Int32Array(rows * groups);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < groups; b++) {
      let lo = Infinity;
      let hi = -Infinity;
      for (let j = b * g; j < Math.min((b + 1) * g, cols); j++) {
        lo = Math.min(lo, w[r * cols + j]!);
        hi = Math.max(hi, w[r * cols + j]!);
      }
      const alpha = Math.max(Math.abs(lo), Math.abs(hi));
      const { scale, zeroPoint } = paramsFromRange(opts.scheme === 'symmetric' ? { lo: -alpha, hi: alpha } : { lo, hi }, ip);
      scales[r * groups + b] = scale;
      zeroPoints[r * groups + b] = zeroPoint;
      for (let j = b * g; j < Math.min((b + 1) * g, cols); j++) {
        codes[r * cols + j] = clamp(rint(w[r * cols + j]! / scale) + zeroPoint, ip.qMin, ip.qMax);
      }
    }
  }
  return { codes, scales, zeroPoints, groups, damp: 0 };
}
