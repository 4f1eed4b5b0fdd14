import { searchClip, type ClipChoice } from './awq-clip.js';
import type { Scheme } from '../../core/calibrate.js';

// A Conv weight [M, C, ...kernel] as GPTQ's and AWQ's [M, K] rows over its input patches
// (K = C · P, P = Π kernel; nn.Unfold's (c, p) order is the weight's memory order). The
// service's blocks run along C at each kernel position, so per group the columns are taken in
// (p, c) order, where a block is contiguous; the patch Hessian is permuted the same way.

/** Column j of the (p, c) order is column colOf[j] of the (c, p) order; identity when not per group. */
export function convColumns(c: number, p: number, perGroup: boolean): Int32Array {
  const k = c * p;
  const m = new Int32Array(k);
  for (let j = 0; j < k; j++) m[j] = perGroup ? (j % c) * p + ((j / c) | 0) : j;
  return m;
}

/** H [k×k] with rows and columns taken in the order col. */
export function permuteHessian(h: Float64Array, col: Int32Array): Float64Array {
  const k = col.length;
  const out = new Float64Array(k * k);
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) out[i * k + j] = h[col[i]! * k + col[j]!]!;
  return out;
}

/** The clip search on a (scaled) Conv weight with its patch Hessian h (of X/s), group 1. */
export function searchClipConv(values: Float32Array, dims: readonly number[], groupSize: number | undefined, h: Float64Array, bits: number, scheme: Scheme): ClipChoice {
  const m = dims[0]!;
  const c = dims[1]!;
  const p = dims.slice(2).reduce((a, b) => a * b, 1);
  const k = c * p;
  const col = convColumns(c, p, groupSize !== undefined);
  const w = new Float32Array(m * k);
  for (let r = 0; r < m; r++) for (let j = 0; j < k; j++) w[r * k + j] = values[r * k + col[j]!]!;
  return searchClip(w, m, k, groupSize === undefined ? k : Math.min(groupSize, c), permuteHessian(h, col), bits, scheme);
}

/** values [M, C, ...kernel] with each (output channel, block) clamped to ±maxVal (clip from searchClipConv). */
export function applyClipConv(values: Float32Array, dims: readonly number[], clip: ClipChoice, perGroup: boolean): Float32Array {
  const m = dims[0]!;
  const c = dims[1]!;
  const p = dims.slice(2).reduce((a, b) => a * b, 1);
  const out = new Float32Array(values.length);
  const blocksPerP = perGroup ? c / clip.groupSize : 1;
  for (let r = 0; r < m; r++) {
    for (let ch = 0; ch < c; ch++) {
      for (let q = 0; q < p; q++) {
        const b = perGroup ? q * blocksPerP + ((ch / clip.groupSize) | 0) : 0;
        const mx = clip.maxVal[r * clip.groups + b]!;
        const at = (r * c + ch) * p + q;
        const v = values[at]!;
        out[at] = v > mx ? mx : v < -mx ? -mx : v;
      }
    }
  }
  return out;
}
