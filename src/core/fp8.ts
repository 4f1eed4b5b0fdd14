import { minmaxRanges } from './kernels/calibrate.js';
import type { ErrorSums, ParamPlan } from './quantize.js';
import { f32, rint } from './round.js';

// The two FP8 element types ONNX DequantizeLinear takes from opset 19 (the OCP formats):
// E4M3FN (bias 7, no infinities, one NaN pattern per sign, largest 448) and E5M2 (bias 15,
// IEEE-like with infinities, largest 57344). Conversion from float is the ONNX Cast /
// QuantizeLinear rule with saturate=1: round to nearest, ties to even; finite values past
// the largest one and ±Infinity become ±largest; NaN stays NaN.

export const FP8_TYPES = ['float8e4m3fn', 'float8e5m2'] as const;
export type Fp8Type = (typeof FP8_TYPES)[number];

interface Fp8Format {
  exponentBits: number;
  mantissaBits: number;
  bias: number;
  /** The largest finite value and its code (positive). */
  max: number;
  maxCode: number;
  nanCode: number;
}

export const FP8: Record<Fp8Type, Fp8Format> = {
  float8e4m3fn: { exponentBits: 4, mantissaBits: 3, bias: 7, max: 448, maxCode: 0x7e, nanCode: 0x7f },
  float8e5m2: { exponentBits: 5, mantissaBits: 2, bias: 15, max: 57344, maxCode: 0x7b, nanCode: 0x7f },
};

const f64 = new Float64Array(1);
const bits64 = new Uint32Array(f64.buffer);

/** floor(log2 v) for a positive finite double, from its exponent field (exact). */
function exponentOf(v: number): number {
  f64[0] = v;
  const e = (bits64[1]! >>> 20) & 0x7ff;
  if (e !== 0) return e - 1023;
  // A subnormal double: never a float32 value, but keep the answer right.
  return Math.floor(Math.log2(v));
}

/** The FP8 code of a float32 value (held in a double), saturating. */
export function toFp8(x: number, type: Fp8Type): number {
  const f = FP8[type];
  const sign = x < 0 || Object.is(x, -0) ? 0x80 : 0;
  // JavaScript does not keep a NaN's sign: every NaN becomes the positive NaN code.
  if (Number.isNaN(x)) return f.nanCode;
  const v = Math.abs(x);
  if (v === 0) return sign;
  if (v >= f.max) return sign | f.maxCode;
  const m = f.mantissaBits;
  const minNormalExp = 1 - f.bias;
  const e = Math.max(exponentOf(v), minNormalExp);
  // v / step is exact (a power-of-two scaling); its rounding picks the neighbour, ties to even.
  const step = 2 ** (e - m);
  const n = rint(v / step);
  let code: number;
  if (e === minNormalExp && n < 2 ** m) {
    code = n;
  } else if (n === 2 ** (m + 1)) {
    // Rounded up into the next binade: mantissa 0 of exponent e + 1.
    code = ((e + 1 + f.bias) << m) | 0;
  } else {
    code = ((e + f.bias) << m) | (n - 2 ** m);
  }
  if (code > f.maxCode) code = f.maxCode;
  return sign | code;
}

/** The value of an FP8 code. */
export function fromFp8(code: number, type: Fp8Type): number {
  const f = FP8[type];
  const sign = code & 0x80 ? -1 : 1;
  const m = f.mantissaBits;
  const e = (code >> m) & ((1 << f.exponentBits) - 1);
  const mant = code & ((1 << m) - 1);
  const allOnes = (1 << f.exponentBits) - 1;
  if (type === 'float8e4m3fn' && e === allOnes && mant === (1 << m) - 1) return NaN;
  if (type === 'float8e5m2' && e === allOnes) return mant === 0 ? sign * Infinity : NaN;
  if (e === 0) return sign * mant * 2 ** (1 - f.bias - m);
  return sign * (1 + mant / 2 ** m) * 2 ** (e - f.bias);
}

/** Decoded values of all 256 codes, for the hot loops. */
export function fp8Table(type: Fp8Type): Float32Array {
  return Float32Array.from({ length: 256 }, (_, c) => fromFp8(c, type));
}

/**
 * FP8 with one float32 scale per parameter (the tensor API's ParamPlan layout): scale =
 * max|x| / largest (1 for an all-zero group), code = fp8(x / scale) with the division in
 * float32, as QuantizeLinear computes it. Codes come back in x's layout, with the error
 * sums of the reconstruction fp8 · scale (float32) against x.
 */
export function quantizeFp8(x: Float32Array, plan: ParamPlan, type: Fp8Type): { codes: Uint8Array; scale: Float32Array; sums: ErrorSums } {
  const { lo, hi } = minmaxRanges(x, plan);
  const scale = new Float32Array(plan.count);
  for (let p = 0; p < plan.count; p++) {
    const v = f32(Math.max(Math.abs(lo[p]!), Math.abs(hi[p]!)) / FP8[type].max);
    scale[p] = v > 0 ? v : 1;
  }
  const codes = new Uint8Array(x.length);
  const table = fp8Table(type);
  const sums: ErrorSums = { count: x.length, clipped: 0, maxError: 0, sumAbs: 0, sumSq: 0, sumX2: 0 };
  let idx = 0;
  for (let o = 0; o < plan.outer; o++) {
    for (let a = 0; a < plan.len; a++) {
      const base = o * plan.outerStride + ((a / plan.group) | 0) * plan.axisStride;
      for (let i = 0; i < plan.inner; i++, idx++) {
        const s = scale[base + i * plan.innerStride]!;
        const v = x[idx]!;
        const c = toFp8(f32(v / s), type);
        codes[idx] = c;
        const e = Math.abs(v - f32(table[c]! * s));
        if (e > sums.maxError) sums.maxError = e;
        sums.sumAbs += e;
        sums.sumSq += e * e;
        sums.sumX2 += v * v;
      }
    }
  }
  return { codes, scale, sums };
}
