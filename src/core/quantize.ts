import { containerFor, intRange, INT_DTYPE_INFO, type IntDType, type UnpackedArray } from './dtypes.js';
import {
  minmaxRange,
  mseRange,
  paramsFromRange,
  percentileRange,
  type CalibrationMethod,
  type IntParams,
  type Range,
  type Scheme,
} from './calibrate.js';
import { minmaxRanges } from './kernels/calibrate.js';
import { dequantizeKernel, isKernelInts } from './kernels/dequantize.js';
import { fusableShape, kernelSumsPrecise, paramsFromRanges, quantizeFusedKernel, quantizeKernel } from './kernels/quantize.js';
import { arenaAlloc } from './kernels/arenas.js';
import { groupValues } from './groups.js';
import { refineGroup, type QuantMethod } from './methods/index.js';
import { refineGroups } from './methods/refine-groups.js';
import { magnitudeWeights, type LsqWeighting } from './methods/lsq-weights.js';
import { dequantizeWithReference, quantizeWithReference } from './reference/quantize.js';
import { axisLayout, normalizeAxis, type Shape } from './shape.js';
import { Errors } from '../errors.js';

export const GRANULARITIES = ['per_tensor', 'per_channel', 'per_group'] as const;
export type Granularity = (typeof GRANULARITIES)[number];

export interface QuantSpec {
  bits: number;
  scheme: Scheme;
  granularity: Granularity;
  /** Channel axis (per_channel) or grouped axis (per_group); may be negative. Ignored per tensor. */
  axis: number;
  groupSize: number;
  calibration: CalibrationMethod;
  percentile: number;
  /** How each group's scale and zero point are fitted to its calibrated range (methods/); rtn when absent. */
  method?: QuantMethod | undefined;
  /** Per-element weights of lsq's squared error (x's layout), e.g. imatrix's diag(XᵀX) per input feature. */
  weights?: Float32Array | undefined;
  /** Without `weights`: what data-free lsq weighs its error by in each group (methods/lsq-weights.ts); mse when absent. */
  lsqWeights?: LsqWeighting | undefined;
}

/**
 * Where each element's scale lives. Element (o, a, i) of the [outer, len, inner] view
 * around the axis uses parameter o*outerStride + floor(a / group)*axisStride + i*innerStride.
 * One formula covers the three granularities:
 *   per_tensor  strides 0, 0, 0
 *   per_channel strides 0, 1, 0 (group 1)
 *   per_group   strides nBlocks*inner, inner, 1 (the ONNX blocked layout)
 */
export interface ParamPlan {
  axis: number;
  outer: number;
  len: number;
  inner: number;
  group: number;
  outerStride: number;
  axisStride: number;
  innerStride: number;
  count: number;
  /** Shape of the scale and zero-point arrays ([] for per tensor). */
  paramShape: number[];
}

export function planParams(shape: Shape, granularity: Granularity, axis: number, groupSize: number): ParamPlan {
  if (granularity === 'per_tensor') {
    const n = shape.reduce((a, b) => a * b, 1);
    return { axis: 0, outer: 1, len: n, inner: 1, group: 1, outerStride: 0, axisStride: 0, innerStride: 0, count: 1, paramShape: [] };
  }
  if (shape.length === 0) throw new Errors.Option(`granularity ${granularity} needs a tensor of rank ≥ 1; this one is a scalar`);
  const ax = normalizeAxis(axis, shape.length);
  const { outer, len, inner } = axisLayout(shape, ax);
  if (granularity === 'per_channel') {
    return { axis: ax, outer, len, inner, group: 1, outerStride: 0, axisStride: 1, innerStride: 0, count: len, paramShape: [len] };
  }
  if (!Number.isInteger(groupSize) || groupSize < 1) {
    throw new Errors.Option(`group_size must be a positive integer, got: ${groupSize}`);
  }
  const blocks = Math.ceil(len / groupSize);
  const paramShape = shape.slice();
  paramShape[ax] = blocks;
  return {
    axis: ax,
    outer,
    len,
    inner,
    group: groupSize,
    outerStride: blocks * inner,
    axisStride: inner,
    innerStride: 1,
    count: outer * blocks * inner,
    paramShape,
  };
}

export interface QuantParams extends IntParams {
  dtype: IntDType;
  plan: ParamPlan;
  scale: Float32Array;
  zeroPoint: Int32Array;
}

export function intParamsOf(bits: number, scheme: Scheme): IntParams & { dtype: IntDType } {
  const signed = scheme === 'symmetric';
  return { bits, scheme, ...intRange(bits, signed), dtype: containerFor(bits, signed) };
}

function calibrateSlice(slice: Float32Array, spec: QuantSpec, ip: IntParams): Range {
  switch (spec.calibration) {
    case 'minmax':
      return minmaxRange(slice, spec.scheme);
    case 'percentile':
      return percentileRange(slice, spec.scheme, spec.percentile);
    case 'mse':
      return mseRange(slice, ip);
  }
}

/** Calibrates every tensor, channel or group on its own and derives its scale and zero point. */
export function calibrate(x: Float32Array, shape: Shape, spec: QuantSpec): QuantParams {
  const ip = intParamsOf(spec.bits, spec.scheme);
  const plan = planParams(shape, spec.granularity, spec.axis, spec.groupSize);
  const scale = new Float32Array(plan.count);
  const zeroPoint = new Int32Array(plan.count);
  const set = (p: number, range: Range) => {
    const sz = paramsFromRange(range, ip);
    scale[p] = sz.scale;
    zeroPoint[p] = sz.zeroPoint;
  };
  const method = spec.method ?? 'rtn';
  if (method !== 'rtn') {
    const { values, offsets } = groupValues(x, plan);
    // Magnitude weights are the group's own, made per group below (the kernels take none).
    const magnitude = method === 'lsq' && !spec.weights && spec.lsqWeights === 'magnitude';
    if (spec.calibration === 'minmax' && !spec.weights && !magnitude) {
      const { lo, hi } = minmaxRanges(x, plan);
      refineGroups(method, values, offsets, lo, hi, ip, scale, zeroPoint);
      return { ...ip, plan, scale, zeroPoint };
    }
    const weights = spec.weights ? groupValues(spec.weights, plan).values : undefined;
    const ranges = spec.calibration === 'minmax' ? minmaxRanges(x, plan) : undefined;
    for (let p = 0; p < plan.count; p++) {
      const slice = values.subarray(offsets[p]!, offsets[p + 1]!);
      let range: Range;
      if (ranges) {
        const lo = ranges.lo[p]!;
        const hi = ranges.hi[p]!;
        const alpha = Math.max(Math.abs(lo), Math.abs(hi));
        range = spec.scheme === 'asymmetric' ? { lo, hi } : { lo: -alpha, hi: alpha };
      } else range = calibrateSlice(slice, spec, ip);
      const sz = refineGroup(method, slice, range, ip, magnitude ? magnitudeWeights(slice) : weights?.subarray(offsets[p]!, offsets[p + 1]!));
      scale[p] = sz.scale;
      zeroPoint[p] = sz.zeroPoint;
    }
    return { ...ip, plan, scale, zeroPoint };
  }
  if (spec.calibration === 'minmax') {
    // One min/max pass (the kernels), then paramsFromRange of minmaxRange's range for each
    // parameter, four at a time (the kernels: a loop here cost more than the pass).
    const { lo, hi } = minmaxRanges(x, plan);
    paramsFromRanges(lo, hi, ip, scale, zeroPoint);
    return { ...ip, plan, scale, zeroPoint };
  }
  const { values, offsets } = groupValues(x, plan);
  for (let p = 0; p < plan.count; p++) set(p, calibrateSlice(values.subarray(offsets[p]!, offsets[p + 1]!), spec, ip));
  return { ...ip, plan, scale, zeroPoint };
}

/** Sums the error report is built from, gathered in the same pass that quantizes. */
export interface ErrorSums {
  /** Elements the sums cover: the finite ones. */
  count: number;
  /** NaN and ±Inf elements (only given scales admit them): quantized, but left out of the sums. */
  nonFinite?: number;
  clipped: number;
  maxError: number;
  sumAbs: number;
  sumSq: number;
  sumX2: number;
}

/**
 * q = clamp(round(x / scale) + zero_point, q_min, q_max), with x / scale a float32 division
 * and ties to even; the error sums compare x with (q - zero_point) * scale in float32,
 * accumulated in float64.
 *
 * The WebAssembly kernels compute every q, the clipped count and max_error exactly as the
 * reference (reference/quantize.ts) does; the three sums are taken in float32 lanes flushed
 * to float64 in blocks, within 1e-6 relative of the reference's (quantize.wat $spanr). Inputs
 * the kernels cannot match (NaN, a reconstruction past the float32 range, values so small
 * that their squares leave float32's normal range) take the reference.
 */
export function quantizeWith(x: Float32Array, params: QuantParams, out?: UnpackedArray): { q: UnpackedArray; sums: ErrorSums } {
  const q = outputFor(params, x, out);
  const sums = quantizeKernel(x, params, q, true);
  if (!kernelSumsPrecise(sums)) return quantizeWithReference(x, params, adopt(q, out));
  return { q: adopt(q, out), sums };
}

/** The kernels write the dtype's own container; another array given as `out` gets the values copied in. */
function outputFor(params: Pick<QuantParams, 'dtype'>, x: Float32Array, out?: UnpackedArray): UnpackedArray {
  const info = INT_DTYPE_INFO[params.dtype];
  const n = x.length;
  const empty = info.create(0);
  if (out && out.length === n && out.constructor === empty.constructor) return out;
  // Beside x in its arena when there is room: the kernels write the integers in place.
  const bytes = arenaAlloc(x, n * empty.BYTES_PER_ELEMENT);
  if (!bytes) return info.create(n);
  const Container = empty.constructor as new (buffer: ArrayBufferLike, offset: number, length: number) => UnpackedArray;
  return new Container(bytes.buffer, bytes.byteOffset, n);
}

function adopt(q: UnpackedArray, out?: UnpackedArray): UnpackedArray {
  if (!out || out === q) return q;
  out.set(q);
  return out;
}

/**
 * The integers alone, without the error report: what onnxruntime's QuantizeLinear computes,
 * at about twice quantizeWith's speed. Returns the clipped count as well.
 */
export function quantizeValues(x: Float32Array, params: QuantParams, out?: UnpackedArray): { q: UnpackedArray; clipped: number } {
  const q = outputFor(params, x, out);
  const { clipped, nan } = quantizeKernel(x, params, q, false);
  // The kernel counts a NaN as clipped (and writes no defined integer for it).
  if (nan !== 0) return { q: adopt(q, out), clipped: quantizeWithReference(x, params, q).sums.clipped };
  return { q: adopt(q, out), clipped };
}

/** x_hat = (q - zero_point) * scale in float32 (saturating at ±FLT_MAX rather than overflowing). */
export function dequantizeWith(q: ArrayLike<number>, params: Pick<QuantParams, 'plan' | 'scale' | 'zeroPoint'>, out?: Float32Array): Float32Array {
  const x = out ?? new Float32Array(q.length);
  if (!isKernelInts(q)) return dequantizeWithReference(q, params, x);
  dequantizeKernel(q, params, x);
  return x;
}

/**
 * Min-max calibration fused into quantization where each parameter's values are one run in
 * memory (one pass instead of two); null where that layout does not apply.
 */
function quantizeFused(x: Float32Array, shape: Shape, spec: QuantSpec, sums: boolean, out?: UnpackedArray) {
  if (spec.calibration !== 'minmax' || (spec.method ?? 'rtn') !== 'rtn') return null;
  const plan = planParams(shape, spec.granularity, spec.axis, spec.groupSize);
  const runs = fusableShape(plan);
  if (!runs) return null;
  const ip = intParamsOf(spec.bits, spec.scheme);
  const params: QuantParams = { ...ip, plan, scale: new Float32Array(plan.count), zeroPoint: new Int32Array(plan.count) };
  const q = outputFor(params, x, out);
  const s = quantizeFusedKernel(x, params, runs, q, sums);
  return { params, q: adopt(q, out), sums: s };
}

export function quantize(x: Float32Array, shape: Shape, spec: QuantSpec): { params: QuantParams; q: UnpackedArray; sums: ErrorSums } {
  const fused = quantizeFused(x, shape, spec, true);
  if (fused && kernelSumsPrecise(fused.sums)) return fused;
  const params = fused?.params ?? calibrate(x, shape, spec);
  return { params, ...quantizeWith(x, params, fused?.q) };
}

/**
 * quantize() without the error report: calibration and the integers (and the clipped
 * count), the work onnxruntime's quantization graphs do.
 */
export function quantizeIntegers(x: Float32Array, shape: Shape, spec: QuantSpec, out?: UnpackedArray): { params: QuantParams; q: UnpackedArray; clipped: number } {
  const fused = quantizeFused(x, shape, spec, false, out);
  if (fused && !fused.sums.nan) return { params: fused.params, q: fused.q, clipped: fused.sums.clipped };
  const params = fused?.params ?? calibrate(x, shape, spec);
  return { params, ...quantizeValues(x, params, fused?.q ?? out) };
}
