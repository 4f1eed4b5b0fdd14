import { performance } from 'node:perf_hooks';
import { bfloat16ToFloat, floatToBfloat16, floatToHalf, halfToFloat } from '../core/float16.js';
import { reportFromSums } from '../core/metrics.js';
import { calibrate, quantize, quantizeWith, type ErrorSums, type QuantParams, type QuantSpec } from '../core/quantize.js';
import type { Limits } from '../core/tensor.js';
import { decodeRaw } from '../core/tensor.js';
import type { UnpackedArray } from '../core/dtypes.js';
import { FLOAT_DTYPES, groupsOf, type CheckpointOptions, type PlannedTensor } from './layout.js';
import { packColumns, packRows } from './pack-quantized.js';

// One planned weight → its pack-quantized tensors and its report row.

export interface CheckpointRow {
  name: string;
  module: string;
  /** The shard that holds it (sharded checkpoints). */
  file?: string | undefined;
  shape: number[];
  dtype: string;
  format: 'pack-quantized';
  bits: number;
  granularity: string;
  group_size: number | null;
  scale_count: number;
  /** weight_scale's dtype: the weight's own. */
  scale_dtype: string;
  original_bytes: number;
  quantized_bytes: number;
  max_error: number;
  mean_error: number;
  mse: number;
  snr_db: number | null;
  clipped: number;
}

export interface TensorTimes {
  decode: number;
  quantize: number;
}

const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Smallest and largest positive values of each 16-bit dtype: a scale rounds to neither 0 nor Inf. */
const TINY: Record<string, number> = { F16: 2 ** -24, BF16: bfloat16ToFloat(1) };
const HUGE: Record<string, number> = { F16: 65504, BF16: bfloat16ToFloat(0x7f7f) };

/**
 * The scales as the checkpoint stores them: float32 as they are, F16/BF16 rounded to nearest
 * even (never to 0 or Inf). Returns the values the
 * loader will multiply by and their bytes.
 */
function storedScales(scale: Float32Array, dtype: string): { values: Float32Array; bytes: Uint8Array } {
  if (dtype === 'F32') return { values: scale, bytes: bytesOf(scale) };
  const bits = new Uint16Array(scale.length);
  const values = new Float32Array(scale.length);
  const [encode, decode] = dtype === 'F16' ? [floatToHalf, halfToFloat] : [floatToBfloat16, bfloat16ToFloat];
  for (let i = 0; i < scale.length; i++) {
    let v = decode(encode(scale[i]!));
    if (!(v > 0)) v = TINY[dtype]!;
    else if (!Number.isFinite(v)) v = HUGE[dtype]!;
    bits[i] = encode(v);
    values[i] = v;
  }
  return { values, bytes: bytesOf(bits) };
}

/**
 * Scales, zero points and integers for a 2-D weight as the checkpoint stores them: the scale
 * fitted in float32, then rounded to the weight's dtype, then the integers fitted to it.
 */
export function fitTensor(data: Float32Array, dtype: string, shape: number[], o: CheckpointOptions): { params: QuantParams; q: UnpackedArray; sums: ErrorSums; scaleBytes: Uint8Array } {
  const perGroup = o.granularity === 'per_group';
  const spec: QuantSpec = { bits: o.bits, scheme: o.scheme, granularity: o.granularity, axis: perGroup ? 1 : 0, groupSize: o.group_size, calibration: o.calibration, percentile: o.percentile };
  if (dtype === 'F32') {
    const { params, q, sums } = quantize(data, shape, spec);
    return { params, q, sums, scaleBytes: bytesOf(params.scale) };
  }
  const fitted = calibrate(data, shape, spec);
  const stored = storedScales(fitted.scale, dtype);
  const params = { ...fitted, scale: stored.values };
  const { q, sums } = quantizeWith(data, params);
  return { params, q, sums, scaleBytes: stored.bytes };
}

/** `bytes` are the tensor's own bytes (its data_offsets range). Returns one buffer per planned output. */
export function quantizeTensor(bytes: Uint8Array, p: PlannedTensor, o: CheckpointOptions, limits: Limits, times: TensorTimes): { data: Uint8Array[]; row: CheckpointRow } {
  const { t } = p;
  const [rows, cols] = t.shape as [number, number];
  let t0 = performance.now();
  const { data } = decodeRaw(bytes, FLOAT_DTYPES[t.dtype]!, t.shape, limits, `tensor '${t.name}'`);
  let t1 = performance.now();
  times.decode += t1 - t0;
  t0 = t1;
  const perGroup = o.granularity === 'per_group';
  const { params, q, sums, scaleBytes } = fitTensor(data, t.dtype, t.shape, o);
  // The layout stores q + 2^(bits-1) for signed q. Symmetric q is signed; asymmetric q is
  // already unsigned (q_signed + 2^(bits-1) for the signed range compressed-tensors uses), and
  // so are its zero points.
  const offset = 2 ** (o.bits - 1);
  let unsigned: ArrayLike<number> = q;
  if (o.scheme === 'symmetric') {
    const u = new Uint8Array(q.length);
    for (let i = 0; i < q.length; i++) u[i] = q[i]! + offset;
    unsigned = u;
  }
  const groups = groupsOf(cols, o);
  const out: Uint8Array[] = [bytesOf(packRows(unsigned, rows, cols, o.bits)), scaleBytes];
  if (o.scheme === 'asymmetric') out.push(bytesOf(packColumns(params.zeroPoint, rows, groups, o.bits)));
  out.push(bytesOf(new BigInt64Array([BigInt(rows), BigInt(cols)])));
  t1 = performance.now();
  times.quantize += t1 - t0;
  const err = reportFromSums(sums);
  const row: CheckpointRow = {
    name: t.name,
    module: p.module!,
    shape: t.shape,
    dtype: t.dtype,
    format: 'pack-quantized',
    bits: o.bits,
    granularity: o.granularity,
    group_size: perGroup ? o.group_size : null,
    scale_count: params.scale.length,
    scale_dtype: t.dtype,
    original_bytes: t.end - t.begin,
    quantized_bytes: out.reduce((s, x) => s + x.length, 0),
    max_error: err.max_error,
    mean_error: err.mean_error,
    mse: err.mse,
    snr_db: err.snr_db,
    clipped: err.clipped,
  };
  return { data: out, row };
}
