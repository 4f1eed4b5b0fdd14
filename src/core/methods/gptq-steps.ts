import { paramsFromRange, type IntParams, type Scheme } from '../calibrate.js';
import { intRange } from '../dtypes.js';
import { clamp, rint } from '../round.js';
import { Errors } from '../../errors.js';

// The GPTQ algorithm (Frantar et al. 2022, IST-DASLab/gptq gptq.py `fasterquant`, with
// AutoGPTQ's static_groups for act-order) written once over the few operations whose cost
// dominates, which the reference (reference/gptq.ts, float64 loops) and the kernels
// (methods/gptq.ts, WebAssembly float32) provide. Everything else happens here: option
// checks, dead columns, damping and its retries, act-order, group parameters and the
// column loop of each lazy block.

export interface GptqOptions {
  bits: number; // 2..8
  scheme: 'symmetric' | 'asymmetric'; // same qMin/qMax/zero-point rules as the rest of core
  groupSize: number; // along cols; groupSize >= cols means per channel (one group per row)
  damp?: number; // default 0.01 (fraction of mean diag(H) added to the diagonal)
  blockSize?: number; // default 128 (lazy batch updates)
  actOrder?: boolean; // default false; with it, static groups (params from the unmodified W)
}

export interface GptqResult {
  codes: Int32Array; // rows*cols, row-major, each in [qMin, qMax]; dequantized = (code - zp) * scale
  scales: Float32Array; // rows*groups
  zeroPoints: Int32Array; // rows*groups
  groups: number; // ceil(cols / groupSize)
  /** The dampening fraction the factorization succeeded with: opts.damp, or larger after retries. */
  damp: number;
}

export const GPTQ_DEFAULTS = { damp: 0.01, blockSize: 128, actOrder: false } as const;
/** Retries of a failed factorization, each with ten times the dampening of the one before. */
export const GPTQ_DAMP_RETRIES = 3;

/** A row-major matrix in an implementation's own storage: element (i, j) at data[i·ld + j]. */
export interface Matrix {
  data: Float32Array | Float64Array;
  ld: number;
}

/** The operations the two implementations provide. */
export interface GptqOps {
  /** A rows×cols matrix, zeroed. */
  matrix(rows: number, cols: number): Matrix;
  /**
   * U, upper triangular with (H + λI)⁻¹ = UᵀU (H n×n row-major float64, left unchanged);
   * null when H + λI is not positive definite.
   */
  factor(h: Float64Array, n: number, lambda: number): Matrix | null;
  /** W[:, i2:cols] −= E[:, 0:i2−i1] · U[i1:i2, i2:cols] (the lazy batch's deferred update). */
  update(w: Matrix, e: Matrix, u: Matrix, rows: number, cols: number, i1: number, i2: number): void;
  /** Where the results and the block's column tables live (the kernels' memory); plain arrays when absent. */
  arrays?(rows: number, cols: number, groups: number, block: number): BlockArrays;
  /** The column loop of one block, columns i1 .. i1+count−1 of every row, as runBlock does it; runBlock runs when absent. */
  block?(w: Matrix, e: Matrix, u: Matrix, rows: number, cols: number, i1: number, count: number, a: BlockArrays, pstride: number, ip: IntParams): void;
}

/** Codes and parameters, and per column of the current block its parameter's index in the row and its code's column. */
export interface BlockArrays {
  codes: Int32Array;
  scales: Float32Array;
  zeroPoints: Int32Array;
  colParam: Int32Array;
  codeCol: Int32Array;
}

export interface ResolvedGptq {
  ip: IntParams;
  groupSize: number;
  groups: number;
  perChannel: boolean;
  damp: number;
  blockSize: number;
  actOrder: boolean;
}

const SCHEMES: readonly Scheme[] = ['symmetric', 'asymmetric'];

/** Checks the shapes and options (each message names the culprit) and fills in the defaults. */
export function resolveGptq(weight: Float32Array, rows: number, cols: number, xtx: Float64Array, opts: GptqOptions): ResolvedGptq {
  if (!Number.isInteger(rows) || rows < 1 || !Number.isInteger(cols) || cols < 1) {
    throw new Errors.TensorShape(`gptq needs a weight of at least 1×1, got rows ${rows}, cols ${cols}`);
  }
  if (weight.length !== rows * cols) throw new Errors.TensorShape(`gptq weight has ${weight.length} values, rows×cols = ${rows * cols}`);
  if (xtx.length !== cols * cols) throw new Errors.TensorShape(`gptq xtx has ${xtx.length} values, cols×cols = ${cols * cols}`);
  const { bits, scheme, groupSize } = opts;
  if (!Number.isInteger(bits) || bits < 2 || bits > 8) throw new Errors.Option(`gptq bits must be an integer in 2..8, got: ${bits}`);
  if (!SCHEMES.includes(scheme)) throw new Errors.Option(`gptq scheme must be symmetric or asymmetric, got: ${String(scheme)}`);
  if (!Number.isInteger(groupSize) || groupSize < 1) throw new Errors.Option(`gptq group_size must be a positive integer, got: ${groupSize}`);
  const damp = opts.damp ?? GPTQ_DEFAULTS.damp;
  if (!(damp >= 0) || !Number.isFinite(damp)) throw new Errors.Option(`gptq damp must be a finite number ≥ 0, got: ${damp}`);
  const blockSize = opts.blockSize ?? GPTQ_DEFAULTS.blockSize;
  if (!Number.isInteger(blockSize) || blockSize < 1) throw new Errors.Option(`gptq block_size must be a positive integer, got: ${blockSize}`);
  const signed = scheme === 'symmetric';
  const ip: IntParams = { bits, scheme, ...intRange(bits, signed) };
  const g = Math.min(groupSize, cols);
  return { ip, groupSize: g, groups: Math.ceil(cols / g), perChannel: groupSize >= cols, damp, blockSize, actOrder: opts.actOrder ?? GPTQ_DEFAULTS.actOrder };
}

/** The core's round-to-nearest parameters of values[from, to) (min-max range, as calibrate.ts). */
function fit(values: Float32Array | Float64Array, from: number, to: number, ip: IntParams): { scale: number; zeroPoint: number } {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = from; i < to; i++) {
    const v = values[i]!;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (ip.scheme === 'symmetric') {
    const alpha = Math.max(Math.abs(lo), Math.abs(hi));
    return paramsFromRange({ lo: -alpha, hi: alpha }, ip);
  }
  return paramsFromRange({ lo, hi }, ip);
}

/** Column order: identity, or act-order's descending diag(H) (ties by index, so it is deterministic). */
function columnOrder(diag: Float64Array, actOrder: boolean): Int32Array {
  const perm = new Int32Array(diag.length);
  for (let i = 0; i < diag.length; i++) perm[i] = i;
  if (actOrder) perm.sort((a, b) => diag[b]! - diag[a]! || a - b);
  return perm;
}

export function runGptq(ops: GptqOps, weight: Float32Array, rows: number, cols: number, xtx: Float64Array, opts: GptqOptions): GptqResult {
  const cfg = resolveGptq(weight, rows, cols, xtx, opts);
  const { ip, groupSize: g, groups, perChannel, blockSize } = cfg;
  for (let i = 0; i < xtx.length; i++) {
    if (!Number.isFinite(xtx[i]!)) throw new Errors.NonFinite(`gptq xtx holds a non-finite value at index ${i}`);
  }
  for (let i = 0; i < weight.length; i++) {
    if (!Number.isFinite(weight[i]!)) throw new Errors.NonFinite(`gptq weight holds a non-finite value at index ${i}`);
  }
  const bs = Math.min(blockSize, cols);
  const arrays = ops.arrays?.(rows, cols, groups, bs) ?? {
    codes: new Int32Array(rows * cols),
    scales: new Float32Array(rows * groups),
    zeroPoints: new Int32Array(rows * groups),
    colParam: new Int32Array(bs),
    codeCol: new Int32Array(bs),
  };
  const { scales, zeroPoints, colParam, codeCol } = arrays;
  const setParams = (at: number, sz: { scale: number; zeroPoint: number }) => {
    scales[at] = sz.scale;
    zeroPoints[at] = sz.zeroPoint;
  };
  // Per channel, the reference fits each row once, on W as given (before dead columns are zeroed).
  if (perChannel) for (let r = 0; r < rows; r++) setParams(r, fit(weight, r * cols, (r + 1) * cols, ip));

  // Dead inputs (diag(H) = 0): H_ii = 1 and the weight column 0, as the reference does.
  const dead = new Uint8Array(cols);
  for (let i = 0; i < cols; i++) if (xtx[i * cols + i] === 0) dead[i] = 1;
  const w0 = Float32Array.from(weight);
  for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) if (dead[j]) w0[r * cols + j] = 0;
  const staticGroups = cfg.actOrder && !perChannel;
  // Static groups: every group's parameters up front, from the unmodified (dead-zeroed) W.
  if (staticGroups) {
    for (let r = 0; r < rows; r++) {
      for (let b = 0; b < groups; b++) setParams(r * groups + b, fit(w0, r * cols + b * g, r * cols + Math.min((b + 1) * g, cols), ip));
    }
  }

  // The reference sorts after the dead columns' diagonal became 1.
  const diag = new Float64Array(cols);
  for (let i = 0; i < cols; i++) diag[i] = dead[i] ? 1 : xtx[i * cols + i]!;
  const perm = columnOrder(diag, cfg.actOrder);
  // H with rows and columns in loop order.
  const hp = new Float64Array(cols * cols);
  for (let i = 0; i < cols; i++) {
    const from = perm[i]! * cols;
    for (let j = 0; j < cols; j++) hp[i * cols + j] = xtx[from + perm[j]!]!;
    if (dead[perm[i]!]) hp[i * cols + i] = 1;
  }
  let mean = 0;
  for (let i = 0; i < cols; i++) mean += hp[i * cols + i]!;
  mean /= cols;

  let damp = cfg.damp;
  let u: Matrix | null = null;
  for (let attempt = 0; attempt <= GPTQ_DAMP_RETRIES; attempt++) {
    if (attempt > 0) damp = damp > 0 ? damp * 10 : GPTQ_DEFAULTS.damp;
    u = ops.factor(hp, cols, damp * mean);
    if (u) break;
  }
  if (!u) {
    throw new Errors.Calibration(`gptq: the Hessian XᵀX (${cols}×${cols}) is not positive definite even with dampening ${damp} of its mean diagonal; the calibration activations may hold too few distinct rows, or be degenerate`);
  }

  const w = ops.matrix(rows, cols);
  for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) w.data[r * w.ld + j] = w0[r * cols + perm[j]!]!;
  const e = ops.matrix(rows, bs);
  const pstride = perChannel ? 1 : groups;
  for (let i1 = 0; i1 < cols; i1 += blockSize) {
    const i2 = Math.min(i1 + blockSize, cols);
    const count = i2 - i1;
    for (let i = 0; i < count; i++) {
      const col = i1 + i;
      codeCol[i] = perm[col]!;
      colParam[i] = perChannel ? 0 : staticGroups ? (perm[col]! / g) | 0 : (col / g) | 0;
    }
    // As the reference: a group is fitted when the loop reaches its first column, on the
    // block-start W (updates made earlier in the same block are not in it yet), so every group
    // that starts in this block can be fitted before its column loop.
    if (!perChannel && !staticGroups) {
      for (let r = 0; r < rows; r++) {
        const wrow = r * w.ld;
        for (let col = Math.ceil(i1 / g) * g; col < i2; col += g) setParams(r * groups + col / g, fit(w.data, wrow + col, wrow + Math.min(col + g, cols), ip));
      }
    }
    if (ops.block) ops.block(w, e, u, rows, cols, i1, count, arrays, pstride, ip);
    else runBlock(w, e, u, rows, cols, i1, count, arrays, pstride, ip);
    if (i2 < cols) ops.update(w, e, u, rows, cols, i1, i2);
  }
  const copied = ops.arrays !== undefined;
  const codes = copied ? arrays.codes.slice() : arrays.codes;
  return { codes, scales: copied ? scales.slice() : scales, zeroPoints: copied ? zeroPoints.slice() : zeroPoints, groups, damp };
}

/** The column loop of one block in TypeScript: GptqOps.block's specification. */
function runBlock(w: Matrix, e: Matrix, u: Matrix, rows: number, cols: number, i1: number, count: number, a: BlockArrays, pstride: number, ip: IntParams): void {
  const { codes, scales, zeroPoints, colParam, codeCol } = a;
  const w1 = new Float64Array(count);
  const { qMin, qMax } = ip;
  const ud = u.data;
  const uld = u.ld;
  for (let r = 0; r < rows; r++) {
    const wrow = r * w.ld;
    for (let t = 0; t < count; t++) w1[t] = w.data[wrow + i1 + t]!;
    for (let i = 0; i < count; i++) {
      const col = i1 + i;
      const at = r * pstride + colParam[i]!;
      const scale = scales[at]!;
      const zp = zeroPoints[at]!;
      const x = w1[i]!;
      const q = clamp(rint(x / scale) + zp, qMin, qMax);
      codes[r * cols + codeCol[i]!] = q;
      const err = (x - (q - zp) * scale) / ud[col * uld + col]!;
      const urow = col * uld + i1;
      for (let t = i + 1; t < count; t++) w1[t]! -= err * ud[urow + t]!;
      e.data[r * e.ld + i] = err;
    }
  }
}
