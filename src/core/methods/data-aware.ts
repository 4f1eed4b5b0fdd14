import { intParamsOf, planParams, calibrate, dequantizeWith, quantizeWith, type ErrorSums, type QuantParams, type QuantSpec } from '../quantize.js';
import { errorSums } from '../metrics.js';
import { INT_DTYPE_INFO, type UnpackedArray } from '../dtypes.js';
import { quadraticForms } from '../kernels/linalg.js';
import { accumulateGram } from './gram.js';
import { gptq, GPTQ_DEFAULTS } from './gptq.js';
import { normalizeAxis, type Shape } from '../shape.js';
import { Errors } from '../../errors.js';

// The tensor API's data-aware methods on one 2-D weight with its calibration statistics:
// imatrix (lsq weighted by diag XᵀX per input feature) and gptq. The input-feature axis is
// the one the groups run along (per_group) or the one that is not the channel (per_channel),
// so both [out, in] and ONNX MatMul's [in, out] layouts work; H = XᵀX is over that axis.

export const TENSOR_DATA_METHODS = ['imatrix', 'gptq'] as const;
export type TensorDataMethod = (typeof TENSOR_DATA_METHODS)[number];
export function isTensorDataMethod(m: string | undefined): m is TensorDataMethod {
  return (TENSOR_DATA_METHODS as readonly string[]).includes(m ?? '');
}

/** Largest input-feature count: H (float64) and its float32 factors take about 20·K² bytes. */
export const MAX_DATA_AWARE_FEATURES = 4096;

export interface GptqTensorOptions {
  damp?: number | undefined;
  blockSize?: number | undefined;
  actOrder?: boolean | undefined;
}

/** The input-feature axis of a 2-D weight under spec (400 for any other form). */
export function inputAxis(shape: Shape, spec: QuantSpec, method: string): 0 | 1 {
  if (shape.length !== 2) throw new Errors.TensorShape(`method ${method} needs a 2-D weight ([out, in] or [in, out]); this tensor has shape [${shape.join(', ')}]`);
  if (spec.granularity === 'per_tensor') throw new Errors.Option(`method ${method} needs granularity per_group or per_channel (its groups run along the input features)`);
  const axis = normalizeAxis(spec.axis, 2) as 0 | 1;
  return spec.granularity === 'per_group' ? axis : ((1 - axis) as 0 | 1);
}

/** H = XᵀX from activations [n, k] (float32), or checked as given ([k, k]). */
export function hessianOf(source: { activations?: { data: Float32Array; shape: Shape } | undefined; xtx?: { data: Float32Array | Float64Array; shape: Shape } | undefined }, k: number): { h: Float64Array; rows: number | null } {
  if (k > MAX_DATA_AWARE_FEATURES) throw new Errors.TensorShape(`data-aware methods take at most ${MAX_DATA_AWARE_FEATURES} input features; this weight has ${k}`);
  const { activations, xtx } = source;
  if (activations && xtx) throw new Errors.Option('give activations or xtx, not both');
  if (activations) {
    const s = activations.shape;
    if (s.length !== 2 || s[1] !== k) throw new Errors.TensorShape(`activations must be [n, ${k}] (n calibration rows of the weight's ${k} input features); got [${s.join(', ')}]`);
    if (s[0]! < 1) throw new Errors.TensorShape('activations has no rows');
    const h = new Float64Array(k * k);
    accumulateGram(h, activations.data, s[0]!, k);
    return { h, rows: s[0]! };
  }
  if (xtx) {
    const s = xtx.shape;
    if (s.length !== 2 || s[0] !== k || s[1] !== k) throw new Errors.TensorShape(`xtx must be [${k}, ${k}] (XᵀX over the weight's ${k} input features); got [${s.join(', ')}]`);
    const h = Float64Array.from(xtx.data);
    for (let i = 0; i < k; i++) {
      for (let j = 0; j < i; j++) {
        const a = h[i * k + j]!;
        const b = h[j * k + i]!;
        if (Math.abs(a - b) > 1e-6 * (Math.abs(a) + Math.abs(b)) + 1e-30) throw new Errors.TensorData(`xtx is not symmetric: xtx[${i}, ${j}] = ${a}, xtx[${j}, ${i}] = ${b}`);
      }
      if (!(h[i * k + i]! >= 0)) throw new Errors.TensorData(`xtx[${i}, ${i}] = ${h[i * k + i]}; a diagonal of XᵀX is ≥ 0`);
    }
    return { h, rows: null };
  }
  throw new Errors.Option('data-aware methods need calibration statistics: an .npz body with tensor and activations ([n, in]) or xtx ([in, in])');
}

export interface DataAwareResult {
  params: QuantParams;
  q: UnpackedArray;
  sums: ErrorSums;
  /** Output error on the calibration statistics: 10·log10(tr(WHWᵀ) / tr(ΔWHΔWᵀ)), for this method and for rtn. */
  outputSnrDb: number | null;
  rtnOutputSnrDb: number | null;
  /** gptq: the dampening the factorization used. */
  damp?: number;
}

/** diag(H) per element of x (whose input features run along kAxis of a 2-D shape). */
function elementImportance(shape: Shape, kAxis: 0 | 1, h: Float64Array): Float32Array {
  const [a, b] = shape as [number, number];
  const k = kAxis === 1 ? b : a;
  const w = new Float32Array(a * b);
  for (let i = 0; i < a; i++) for (let j = 0; j < b; j++) w[i * b + j] = h[(kAxis === 1 ? j : i) * (k + 1)]!;
  return w;
}

/** x as [out, in] row-major (a copy-transpose when the features run along axis 0). */
function asOutIn(x: Float32Array, shape: Shape, kAxis: 0 | 1): Float32Array {
  if (kAxis === 1) return x;
  const [k, n] = shape as [number, number];
  const t = new Float32Array(x.length);
  for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) t[j * k + i] = x[i * n + j]!;
  return t;
}

function snrDb(signal: number, noise: number): number | null {
  if (!(signal > 0)) return null;
  return 10 * Math.log10(signal / (noise + 1e-30));
}

/** Error sums of x against the dequantized integers (clipped: values beyond the grid's end levels). */
function sumsOf(x: Float32Array, xHat: Float32Array, q: UnpackedArray, params: QuantParams): ErrorSums {
  const { qMin, qMax } = params;
  let clipped = 0;
  for (let i = 0; i < x.length; i++) if ((q[i] === qMax && x[i]! > xHat[i]!) || (q[i] === qMin && x[i]! < xHat[i]!)) clipped++;
  return errorSums(x, xHat, clipped);
}

/** The output SNR of each reconstruction of x on H: 10·log10(tr(W·H·Wᵀ) / tr(ΔW·H·ΔWᵀ)). */
export function outputSnrs(x: Float32Array, shape: Shape, kAxis: 0 | 1, h: Float64Array, reconstructions: readonly Float32Array[]): Array<number | null> {
  const k = shape[kAxis]!;
  const outs = shape[1 - kAxis]!;
  const w = asOutIn(x, shape, kAxis);
  const ds = reconstructions.map((r) => {
    const d = Float32Array.from(asOutIn(r, shape, kAxis));
    for (let i = 0; i < d.length; i++) d[i] = w[i]! - d[i]!;
    return d;
  });
  const [signal, ...noise] = quadraticForms([w, ...ds], outs, k, h);
  return noise.map((n) => snrDb(signal!, n));
}

export function quantizeDataAware(x: Float32Array, shape: Shape, spec: QuantSpec, method: TensorDataMethod, h: Float64Array, opts: GptqTensorOptions = {}): DataAwareResult {
  const kAxis = inputAxis(shape, spec, method);
  const k = shape[kAxis]!;
  const outs = shape[1 - kAxis]!;
  const rtnParams = calibrate(x, shape, { ...spec, method: 'rtn' });
  const rtn = quantizeWith(x, rtnParams);
  let res: DataAwareResult;
  if (method === 'imatrix') {
    const params = calibrate(x, shape, { ...spec, method: 'lsq', weights: elementImportance(shape, kAxis, h) });
    const { q, sums } = quantizeWith(x, params);
    res = { params, q, sums, outputSnrDb: null, rtnOutputSnrDb: null };
  } else {
    const ip = intParamsOf(spec.bits, spec.scheme);
    if (spec.bits > 8) throw new Errors.Option(`method gptq takes bits 2..8, got: ${spec.bits}`);
    const plan = planParams(shape, spec.granularity, spec.axis, spec.groupSize);
    const groupSize = spec.granularity === 'per_group' ? spec.groupSize : k;
    const g = gptq(asOutIn(x, shape, kAxis), outs, k, h, {
      bits: spec.bits,
      scheme: spec.scheme,
      groupSize,
      damp: opts.damp ?? GPTQ_DEFAULTS.damp,
      blockSize: opts.blockSize ?? GPTQ_DEFAULTS.blockSize,
      actOrder: opts.actOrder ?? GPTQ_DEFAULTS.actOrder,
    });
    const scale = new Float32Array(plan.count);
    const zeroPoint = new Int32Array(plan.count);
    const q = INT_DTYPE_INFO[ip.dtype].create(x.length);
    // GPTQ's [out, groups] parameters and [out, in] codes back into the tensor's own layout.
    for (let o = 0; o < outs; o++) {
      for (let b = 0; b < g.groups; b++) {
        const at = kAxis === 1 ? o * g.groups + b : b * outs + o;
        scale[at] = g.scales[o * g.groups + b]!;
        zeroPoint[at] = g.zeroPoints[o * g.groups + b]!;
      }
      for (let j = 0; j < k; j++) q[kAxis === 1 ? o * k + j : j * outs + o] = g.codes[o * k + j]!;
    }
    const params: QuantParams = { ...ip, plan, scale, zeroPoint };
    const xHat = dequantizeWith(q, params);
    res = { params, q, sums: sumsOf(x, xHat, q, params), outputSnrDb: null, rtnOutputSnrDb: null, damp: g.damp };
  }
  // The output error both ways, on the same H: what the method is for.
  const [own, base] = outputSnrs(x, shape, kAxis, h, [dequantizeWith(res.q, res.params), dequantizeWith(rtn.q, rtnParams)]);
  res.outputSnrDb = own!;
  res.rtnOutputSnrDb = base!;
  return res;
}
