import { INT_DTYPE_INFO, type UnpackedArray } from '../dtypes.js';
import type { ErrorSums, ParamPlan, QuantParams } from '../quantize.js';
import { CHUNK, getKernels, kernelsFor, LAYOUT, stage, type Kernels } from './runtime.js';
import { copyRowsParams, forEachRowsPiece, forEachRunsCall, kernelShape, type RunsShape } from './segments.js';

// Drives quantize.wat over a tensor: stages each call's elements and parameters, runs the
// kernel, copies the integers out. Reading the results back (sumsOf) fixes the order in
// which the lanes' partial sums are added, so a given input always gives the same sums.
// The error sums are taken in float32 lanes and flushed to float64 in blocks (quantize.wat
// $spanr says how that stays within 1e-6 relative); kernelSumsPrecise says when it does.

const MODE_8 = 0;
const MODE_8_SUMS = 1;
const MODE_16_SUMS = 2;
/** bits(1.5 * 2^23), the magic number's bit pattern (see quantize.wat). */
const MAGIC_BITS = 0x4b400000;
const ACC_BYTES = 144;
/** Where the accumulator block keeps the float32 abs mask (four lanes). */
const ABS_MASK = 144;

interface Output {
  width: 1 | 2;
  bias: number;
  xor: number;
}

function outputOf(params: Pick<QuantParams, 'dtype'>): Output {
  const info = INT_DTYPE_INFO[params.dtype];
  const width = info.storageBits === 16 ? 2 : 1;
  if (info.signed) return { width, bias: 0, xor: 0 };
  return width === 1 ? { width, bias: 128, xor: 0x80808080 | 0 } : { width, bias: 32768, xor: 0x80008000 | 0 };
}

function setup(k: Kernels, out: Output): void {
  const kw = LAYOUT.k >> 2;
  k.i32.fill(MAGIC_BITS, kw + 16, kw + 20);
  k.i32.fill(out.xor, kw + 20, kw + 24);
  k.i32[kw + 25] = out.width;
  k.f64.fill(0, LAYOUT.acc >> 3, (LAYOUT.acc + ACC_BYTES) >> 3);
  k.i32.fill(0x7fffffff, (LAYOUT.acc + ABS_MASK) >> 2, (LAYOUT.acc + ABS_MASK + 16) >> 2);
}

/** Absolute error a float32 product below the normal range can carry (half its last place). */
const SUBNORMAL_SLACK = 2 ** -150;
/** The part of a sum that products below float32's normal range may take up at most. */
const SLACK_SHARE = 1e-7;

/**
 * Whether the kernels' sums are within 1e-6 relative of the float64 reference: finite, and
 * with too few products below float32's normal range to matter (each e^2 and x^2 that falls
 * there is off by up to 2^-150 absolute, not 2^-24 relative: count * 2^-150 must stay under
 * 1e-7 of its sum). A max_error of 0 means every error is exactly 0, and so is their sum.
 * Tensors of values under ~1e-19 fail it and take the reference.
 */
export function kernelSumsPrecise(s: ErrorSums): boolean {
  if (!(Number.isFinite(s.sumAbs) && Number.isFinite(s.sumSq) && Number.isFinite(s.sumX2))) return false;
  const slack = (s.count * SUBNORMAL_SLACK) / SLACK_SHARE;
  return (s.maxError === 0 || s.sumSq >= slack) && s.sumX2 >= slack;
}

/**
 * Where a call starting at element `start` writes its integers: in place when q lives in the
 * kernels' memory, else the staging area, which stageOut then copies to q.
 */
function outputStaging(k: Kernels, qBytes: Uint8Array, width: number) {
  const direct = qBytes.buffer === k.buffer;
  return {
    at: (start: number) => (direct ? qBytes.byteOffset + start * width : LAYOUT.q),
    stageOut: (start: number, count: number) => {
      if (!direct) qBytes.set(k.u8.subarray(LAYOUT.q, LAYOUT.q + count * width), start * width);
    },
  };
}

/**
 * The sums and, without error sums, how many NaN inputs the clipped count includes (the
 * kernels count a NaN as clipped): each call that clipped is scanned for NaN while its
 * values are still in cache, instead of a pass over the whole tensor afterwards.
 */
export interface KernelSums extends ErrorSums {
  /** Only without error sums (with them a NaN makes the sums NaN, and the caller takes the reference). */
  nan?: number;
}

/** The clipped count so far (the accumulator block's four lanes). */
function clippedOf(k: Kernels): number {
  const i = LAYOUT.acc >> 2;
  return k.i32[i]! + k.i32[i + 1]! + k.i32[i + 2]! + k.i32[i + 3]!;
}

function sumsOf(k: Kernels, count: number): ErrorSums {
  const a = LAYOUT.acc;
  const i = a >> 2;
  const d = a >> 3;
  const f = k.f64;
  return {
    count,
    clipped: k.i32[i]! + k.i32[i + 1]! + k.i32[i + 2]! + k.i32[i + 3]!,
    maxError: Math.max(f[d + 2]!, f[d + 3]!, f[d + 4]!, f[d + 5]!),
    sumAbs: f[d + 6]! + f[d + 7]! + (f[d + 8]! + f[d + 9]!),
    sumSq: f[d + 10]! + f[d + 11]! + (f[d + 12]! + f[d + 13]!),
    sumX2: f[d + 14]! + f[d + 15]! + (f[d + 16]! + f[d + 17]!),
  };
}

/**
 * Quantizes x into q with the kernels. With `sums`, the error sums come back complete;
 * without, only `clipped` is meaningful (and counts NaN inputs as clipped: `nan` says how many).
 */
export function quantizeKernel(x: Float32Array, params: QuantParams, q: UnpackedArray, sums: boolean): KernelSums {
  const k = kernelsFor(x);
  const out = outputOf(params);
  setup(k, out);
  const mode = out.width === 2 ? MODE_16_SUMS : sums ? MODE_8_SUMS : MODE_8;
  const { qMin, qMax } = params;
  const qBytes = new Uint8Array(q.buffer, q.byteOffset, q.byteLength);
  const { x: X, k: K, acc: ACC } = LAYOUT;
  const [P0, P1, P2, P3, P4] = LAYOUT.p;
  const { at: outAt, stageOut } = outputStaging(k, qBytes, out.width);
  let nan = 0;
  const shape = kernelShape(params.plan);
  if (shape.form === 'runs') {
    forEachRunsCall(shape, CHUNK, (c) => {
      const xa = stage(k, x, c.start, c.count, X);
      k.f32.set(params.scale.subarray(c.p0, c.p0 + c.params), P0 >> 2);
      k.i32.set(params.zeroPoint.subarray(c.p0, c.p0 + c.params), P1 >> 2);
      const before = clippedOf(k);
      k.quantize.runs(mode, xa, outAt(c.start), c.rows, c.runs, c.runLen, c.lastLen, P0, P1, c.prow, qMin, qMax, out.bias, K, ACC);
      if (!sums && clippedOf(k) !== before) nan += k.calibrate.nans(xa, c.count);
      stageOut(c.start, c.count);
    });
  } else {
    const scaleView = k.f32.subarray(P0 >> 2, (P0 >> 2) + CHUNK);
    const zpView = k.i32.subarray(P1 >> 2, (P1 >> 2) + CHUNK);
    forEachRowsPiece(shape, CHUNK, (piece, calls) => {
      copyRowsParams(shape, piece.block, piece.c0, piece.c1, params.scale, scaleView);
      copyRowsParams(shape, piece.block, piece.c0, piece.c1, params.zeroPoint, zpView);
      k.quantize.prep(P1, P2, P3, P4, piece.c1 - piece.c0, qMin, qMax, out.bias);
      calls((c) => {
        const count = c.rows * c.len;
        const xa = stage(k, x, c.start, count, X);
        const before = clippedOf(k);
        k.quantize.rows(mode, xa, outAt(c.start), c.rows, c.len, P0, P1, P2, P3, P4, K, ACC);
        if (!sums && clippedOf(k) !== before) nan += k.calibrate.nans(xa, count);
        stageOut(c.start, count);
      });
    });
  }
  return sums ? sumsOf(k, x.length) : { ...sumsOf(k, x.length), nan };
}

/**
 * The kernel shape when min-max calibration can be fused into quantization: every
 * parameter's values are exactly one run, never split across calls (per group along the
 * last axis, per channel along the first, a tensor of at most CHUNK values).
 */
export function fusableShape(plan: ParamPlan): RunsShape | null {
  const shape = kernelShape(plan);
  if (shape.form !== 'runs' || shape.runLen > CHUNK) return null;
  return shape.prow !== 0 || shape.rows === 1 ? shape : null;
}

/**
 * Min-max calibration and quantization in one pass (quantize.wat "fused"): each run is
 * calibrated while it is in cache, then quantized. Fills params.scale and params.zeroPoint
 * with what calibrate() would give.
 */
export function quantizeFusedKernel(x: Float32Array, params: QuantParams, shape: RunsShape, q: UnpackedArray, sums: boolean): KernelSums {
  const k = kernelsFor(x);
  const out = outputOf(params);
  setup(k, out);
  const mode = out.width === 2 ? MODE_16_SUMS : sums ? MODE_8_SUMS : MODE_8;
  const sym = params.scheme === 'symmetric' ? 1 : 0;
  const qBytes = new Uint8Array(q.buffer, q.byteOffset, q.byteLength);
  const { x: X, k: K, acc: ACC } = LAYOUT;
  const [P0, P1, P2, P3] = LAYOUT.p;
  const { at: outAt, stageOut } = outputStaging(k, qBytes, out.width);
  let nan = 0;
  forEachRunsCall(shape, CHUNK, (c) => {
    const xa = stage(k, x, c.start, c.count, X);
    const qa = outAt(c.start);
    const before = clippedOf(k);
    // Groups all of one length, their parameters consecutive: four at a time ("groups"),
    // the last few (and every other layout) through "fused".
    const ng = c.rows * c.runs;
    const quads = c.lastLen === c.runLen && (c.rows === 1 || c.prow === c.runs) && c.runLen % 4 === 0 ? ng & ~3 : 0;
    if (quads > 0) k.quantize.groups(mode, sym, xa, qa, quads, c.runLen, P0, P1, params.qMin, params.qMax, out.bias, K, ACC);
    if (quads === ng) {
      // every group done
    } else if (quads > 0) {
      const skip = quads * c.runLen;
      k.quantize.fused(mode, sym, xa + 4 * skip, qa + skip * out.width, 1, ng - quads, c.runLen, c.lastLen, P0 + 4 * quads, P1 + 4 * quads, 0, params.qMin, params.qMax, out.bias, K, ACC, P2, P3);
    } else {
      k.quantize.fused(mode, sym, xa, qa, c.rows, c.runs, c.runLen, c.lastLen, P0, P1, c.prow, params.qMin, params.qMax, out.bias, K, ACC, P2, P3);
    }
    if (!sums && clippedOf(k) !== before) nan += k.calibrate.nans(xa, c.count);
    params.scale.set(k.f32.subarray(P0 >> 2, (P0 >> 2) + c.params), c.p0);
    params.zeroPoint.set(k.i32.subarray(P1 >> 2, (P1 >> 2) + c.params), c.p0);
    stageOut(c.start, c.count);
  });
  return sums ? sumsOf(k, x.length) : { ...sumsOf(k, x.length), nan };
}

/**
 * Min-max ranges into scales and zero points, as calibrate.ts paramsFromRange gives them for
 * [lo, hi] (asymmetric) or [-alpha, alpha], alpha = max(|lo|, |hi|) (symmetric): four
 * parameters a vector (quantize.wat "paramsmany"). A JavaScript loop over paramsFromRange
 * took longer than the min/max pass for groups of 32.
 */
export function paramsFromRanges(lo: Float32Array, hi: Float32Array, ip: Pick<QuantParams, 'scheme' | 'qMin' | 'qMax'>, scale: Float32Array, zeroPoint: Int32Array): void {
  const k = getKernels();
  const [P0, P1, P2, P3] = LAYOUT.p;
  const sym = ip.scheme === 'symmetric' ? 1 : 0;
  for (let p0 = 0; p0 < lo.length; p0 += CHUNK) {
    const n = Math.min(CHUNK, lo.length - p0);
    k.f32.set(lo.subarray(p0, p0 + n), P0 >> 2);
    k.f32.set(hi.subarray(p0, p0 + n), P1 >> 2);
    k.quantize.paramsmany(P0, P1, P2, P3, n, sym, ip.qMin, ip.qMax);
    scale.set(k.f32.subarray(P2 >> 2, (P2 >> 2) + n), p0);
    zeroPoint.set(k.i32.subarray(P3 >> 2, (P3 >> 2) + n), p0);
  }
}
