import { performance } from 'node:perf_hooks';
import { encodeSafetensors, readSafetensorsHeader, type SafetensorsOutput, type SafetensorsTensor } from '../codecs/safetensors.js';
import type { CalibrationMethod, Scheme } from '../core/calibrate.js';
import type { FloatDType } from '../core/dtypes.js';
import { reportFromSums } from '../core/metrics.js';
import { quantize } from '../core/quantize.js';
import type { Limits } from '../core/tensor.js';
import { decodeRaw } from '../core/tensor.js';
import { Errors } from '../errors.js';
import { wildcard } from '../onnx/weights/options.js';
import { packColumns, packRows } from './pack-quantized.js';

// A safetensors checkpoint → the same checkpoint in compressed-tensors' pack-quantized layout,
// which vLLM loads (see README, safetensors checkpoints): for each quantized `<module>.weight`
// [out, in], `<module>.weight_packed` int32 [out, ceil(in / (32/bits))], `<module>.weight_scale`
// [out, groups] (1 group per channel), `<module>.weight_zero_point` int32 packed down the
// columns [ceil(out / (32/bits)), groups] when asymmetric, and `<module>.weight_shape` int64
// [2]. Every other tensor is copied as it was; the config goes into __metadata__.

export const WEIGHT_BITS = [4, 8] as const;
export const WEIGHT_GRANULARITIES = ['per_channel', 'per_group'] as const;

export interface CheckpointOptions {
  bits: (typeof WEIGHT_BITS)[number];
  scheme: Scheme;
  granularity: (typeof WEIGHT_GRANULARITIES)[number];
  group_size: number;
  calibration: CalibrationMethod;
  percentile: number;
  include: string[];
  exclude: string[];
}

const FLOAT_DTYPES: Record<string, FloatDType> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

export interface CheckpointRow {
  name: string;
  module: string;
  shape: number[];
  dtype: string;
  format: 'pack-quantized';
  bits: number;
  granularity: string;
  group_size: number | null;
  scale_count: number;
  original_bytes: number;
  quantized_bytes: number;
  max_error: number;
  mean_error: number;
  mse: number;
  snr_db: number | null;
  clipped: number;
}

export interface CheckpointReport {
  summary: {
    format: 'pack-quantized';
    bits: number;
    scheme: Scheme;
    granularity: string;
    group_size: number | null;
    calibration: CalibrationMethod;
    tensors_quantized: number;
    tensors_skipped: number;
    tensors_copied: number;
    original_bytes: number;
    quantized_bytes: number;
    compression_ratio: number;
    weights_original_bytes: number;
    weights_quantized_bytes: number;
    worst_tensor: { name: string; snr_db: number | null } | null;
    quantize_ms: number;
  };
  tensors: CheckpointRow[];
  skipped: { name: string; reason: string }[];
  /** What goes into config.json's `quantization_config` for vLLM / transformers. */
  quantization_config: Record<string, unknown>;
}

const OBSERVERS: Record<CalibrationMethod, string | null> = { minmax: 'minmax', mse: 'mse', percentile: null };

export function quantizationConfig(o: CheckpointOptions, targets: string[]): Record<string, unknown> {
  return {
    quant_method: 'compressed-tensors',
    format: 'pack-quantized',
    quantization_status: 'compressed',
    config_groups: {
      group_0: {
        targets,
        weights: {
          num_bits: o.bits,
          type: 'int',
          symmetric: o.scheme === 'symmetric',
          strategy: o.granularity === 'per_group' ? 'group' : 'channel',
          group_size: o.granularity === 'per_group' ? o.group_size : null,
          block_structure: null,
          dynamic: false,
          actorder: null,
          observer: OBSERVERS[o.calibration],
          observer_kwargs: {},
        },
        input_activations: null,
        output_activations: null,
        format: 'pack-quantized',
      },
    },
    ignore: [],
    kv_cache_scheme: null,
    global_compression_ratio: null,
  };
}

/** Why a tensor of rank ≥ 2 stays as it is, or undefined when it is quantized. */
function skipReason(t: SafetensorsTensor, o: CheckpointOptions, includes: { p: string; re: RegExp }[], excludes: { p: string; re: RegExp }[]): string | undefined {
  if (!includes.some(({ re }) => re.test(t.name))) return `not matched by include (${o.include.join(', ')})`;
  const hit = excludes.find(({ re }) => re.test(t.name));
  if (hit) return `excluded by '${hit.p}'`;
  if (!FLOAT_DTYPES[t.dtype]) return `dtype ${t.dtype}: only F32, F16 and BF16 are quantized`;
  if (t.shape.length !== 2) return `rank ${t.shape.length}: the pack-quantized layout holds 2-D (Linear) weights`;
  if (!t.name.endsWith('.weight')) return `not a <module>.weight: compressed-tensors names the packed tensor <module>.weight_packed`;
  if (o.granularity === 'per_group' && t.shape[1]! % o.group_size !== 0) return `in_features ${t.shape[1]} is not a multiple of group_size ${o.group_size}`;
  if (t.shape[0] === 0 || t.shape[1] === 0) return 'empty';
  return undefined;
}

const le = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function quantizeTensor(bytes: Uint8Array, t: SafetensorsTensor, o: CheckpointOptions, limits: Limits): { outputs: SafetensorsOutput[]; row: CheckpointRow } {
  const [rows, cols] = t.shape as [number, number];
  const { data } = decodeRaw(bytes.subarray(t.begin, t.end), FLOAT_DTYPES[t.dtype]!, t.shape, limits, `tensor '${t.name}'`);
  const perGroup = o.granularity === 'per_group';
  const spec = { bits: o.bits, scheme: o.scheme, granularity: o.granularity, axis: perGroup ? 1 : 0, groupSize: o.group_size, calibration: o.calibration, percentile: o.percentile };
  const { params, q, sums } = quantize(data, t.shape, spec);
  const offset = 2 ** (o.bits - 1);
  // The format stores q + 2^(bits-1): signed (symmetric) integers shifted up; the unsigned
  // asymmetric integers are already q_signed + 2^(bits-1) for q_signed = q - 2^(bits-1).
  let unsigned: ArrayLike<number> = q;
  if (o.scheme === 'symmetric') {
    const u = new Uint8Array(q.length);
    for (let i = 0; i < q.length; i++) u[i] = q[i]! + offset;
    unsigned = u;
  }
  const groups = perGroup ? cols / o.group_size : 1;
  const module = t.name.slice(0, -'.weight'.length);
  const packed = packRows(unsigned, rows, cols, o.bits);
  const outputs: SafetensorsOutput[] = [
    { name: `${module}.weight_packed`, dtype: 'I32', shape: [rows, packed.length / rows], data: le(packed) },
    { name: `${module}.weight_scale`, dtype: 'F32', shape: [rows, groups], data: le(params.scale) },
  ];
  if (o.scheme === 'asymmetric') {
    const zp = packColumns(params.zeroPoint, rows, groups, o.bits);
    outputs.push({ name: `${module}.weight_zero_point`, dtype: 'I32', shape: [zp.length / groups, groups], data: le(zp) });
  }
  outputs.push({ name: `${module}.weight_shape`, dtype: 'I64', shape: [2], data: le(new BigInt64Array([BigInt(rows), BigInt(cols)])) });
  const quantizedBytes = outputs.reduce((s, x) => s + x.data.length, 0);
  const err = reportFromSums(sums);
  const row: CheckpointRow = {
    name: t.name,
    module,
    shape: t.shape,
    dtype: t.dtype,
    format: 'pack-quantized',
    bits: o.bits,
    granularity: o.granularity,
    group_size: perGroup ? o.group_size : null,
    scale_count: params.scale.length,
    original_bytes: t.end - t.begin,
    quantized_bytes: quantizedBytes,
    max_error: err.max_error,
    mean_error: err.mean_error,
    mse: err.mse,
    snr_db: err.snr_db,
    clipped: err.clipped,
  };
  return { outputs, row };
}

export interface CheckpointResult {
  file: { pieces: Uint8Array[]; length: number };
  report: CheckpointReport;
}

/** Quantizes a whole .safetensors file in memory; onTensor is called between tensors (cancellation, progress). */
export function quantizeCheckpoint(bytes: Uint8Array, o: CheckpointOptions, limits: Limits, onTensor: (done: number, total: number) => void = () => {}): CheckpointResult {
  const t0 = performance.now();
  const header = readSafetensorsHeader(bytes);
  const includes = o.include.map((p) => ({ p, re: wildcard(p) }));
  const excludes = o.exclude.map((p) => ({ p, re: wildcard(p) }));
  const plan = header.tensors.map((t) => ({ t, reason: t.shape.length >= 2 ? skipReason(t, o, includes, excludes) : 'rank < 2' }));
  const total = plan.filter((p) => p.reason === undefined).length;
  const outputs: SafetensorsOutput[] = [];
  const rows: CheckpointRow[] = [];
  const skipped: { name: string; reason: string }[] = [];
  const names = new Set(header.tensors.map((t) => t.name));
  for (const { t, reason } of plan) {
    if (reason !== undefined) {
      if (reason !== 'rank < 2') skipped.push({ name: t.name, reason });
      outputs.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: bytes.subarray(t.begin, t.end) });
      continue;
    }
    const q = quantizeTensor(bytes, t, o, limits);
    const clash = q.outputs.find((x) => names.has(x.name));
    if (clash) throw new Errors.Safetensors(`safetensors: tensor '${t.name}' would be written as '${clash.name}', which the checkpoint already holds (already quantized?)`);
    outputs.push(...q.outputs);
    rows.push(q.row);
    onTensor(rows.length, total);
  }
  rows.sort((a, b) => (a.snr_db ?? Infinity) - (b.snr_db ?? Infinity));
  const config = quantizationConfig(
    o,
    rows.map((r) => r.module),
  );
  const metadata = { ...(header.metadata ?? {}), format: header.metadata?.format ?? 'pt', quantization_config: JSON.stringify(config) };
  const file = encodeSafetensors(outputs, metadata);
  const worst = rows.find((r) => r.snr_db !== null);
  const weightsOriginal = rows.reduce((s, r) => s + r.original_bytes, 0);
  const weightsQuantized = rows.reduce((s, r) => s + r.quantized_bytes, 0);
  const report: CheckpointReport = {
    summary: {
      format: 'pack-quantized',
      bits: o.bits,
      scheme: o.scheme,
      granularity: o.granularity,
      group_size: o.granularity === 'per_group' ? o.group_size : null,
      calibration: o.calibration,
      tensors_quantized: rows.length,
      tensors_skipped: skipped.length,
      tensors_copied: header.tensors.length - rows.length,
      original_bytes: bytes.length,
      quantized_bytes: file.length,
      compression_ratio: bytes.length / file.length,
      weights_original_bytes: weightsOriginal,
      weights_quantized_bytes: weightsQuantized,
      worst_tensor: worst ? { name: worst.name, snr_db: worst.snr_db } : null,
      quantize_ms: Math.round(performance.now() - t0),
    },
    tensors: rows,
    skipped,
    quantization_config: config,
  };
  return { file, report };
}
