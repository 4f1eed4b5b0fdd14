import { packedBytes } from '../../core/dtypes.js';
import type { QuantParams, QuantSpec } from '../../core/quantize.js';
import { nest } from '../../core/shape.js';
import type { QuantizeOptions } from '../messages.js';
import { isTensorDataMethod } from '../../core/methods/data-aware.js';

/**
 * The spec the core runs, with the axis default that depends on the granularity. A
 * data-aware method (imatrix, gptq) is left out of it: runQuantize runs those itself.
 */
export function specOf(o: Omit<QuantizeOptions, 'include_values' | 'compare_methods' | 'histogram_bins'>): QuantSpec {
  return {
    bits: o.bits,
    scheme: o.scheme,
    granularity: o.granularity,
    axis: o.axis ?? (o.granularity === 'per_group' ? -1 : 0),
    groupSize: o.group_size,
    calibration: o.calibration,
    percentile: o.percentile,
    method: isTensorDataMethod(o.method) ? undefined : o.method,
  };
}

/** Zero points are stored when asymmetric, or when the caller gave them. */
export function sizeReport(params: QuantParams, n: number, zeroPointGiven = false) {
  const zp = params.scheme === 'asymmetric' || zeroPointGiven ? packedBytes(params.dtype, params.scale.length) : 0;
  const quantizedBytes = packedBytes(params.dtype, n) + 4 * params.scale.length + zp;
  return { original_bytes: 4 * n, quantized_bytes: quantizedBytes, compression_ratio: (4 * n) / quantizedBytes };
}

/** The option echo every response starts with (axis and group_size null where they do not apply). */
export function optionsEcho(spec: QuantSpec, params: QuantParams) {
  return {
    bits: spec.bits,
    scheme: spec.scheme,
    granularity: spec.granularity,
    axis: spec.granularity === 'per_tensor' ? null : params.plan.axis,
    group_size: spec.granularity === 'per_group' ? spec.groupSize : null,
    calibration: { method: spec.calibration, percentile: spec.calibration === 'percentile' ? spec.percentile : null },
    method: spec.method ?? 'rtn',
  };
}

/** Upper bound of the JSON characters scale and zero_point take (a float32 prints in ≤ 16, a zero point in ≤ 6, plus separators). */
export function paramsJsonChars(count: number): number {
  return count * 26;
}

/** scale / zero_point as a number per tensor, else nested arrays in the parameter shape. */
export function paramsJson(params: QuantParams): { scale: unknown; zero_point: unknown } {
  return { scale: nest(params.scale, params.plan.paramShape), zero_point: nest(params.zeroPoint, params.plan.paramShape) };
}

export function jsonBody(value: unknown): Uint8Array {
  const buf = Buffer.from(JSON.stringify(value));
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/**
 * jsonBody, with the string `placeholder` (which must occur once) replaced by `raw`, a string
 * that needs no JSON escaping (base64). Big payloads are spliced in as bytes: JSON.stringify
 * would scan them for escapes and Buffer.from re-encode them, two more passes over megabytes.
 */
export function jsonBodyWithRaw(value: unknown, placeholder: string, raw: string): Uint8Array {
  const text = JSON.stringify(value);
  const token = JSON.stringify(placeholder);
  const at = text.indexOf(token);
  if (at < 0 || text.indexOf(token, at + 1) >= 0) throw new Error('jsonBodyWithRaw: the placeholder must occur exactly once');
  const head = text.slice(0, at + 1);
  const tail = text.slice(at + token.length - 1);
  const out = Buffer.allocUnsafe(Buffer.byteLength(head) + raw.length + Buffer.byteLength(tail));
  let o = out.write(head);
  o += out.write(raw, o, 'latin1');
  out.write(tail, o);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** The bytes of a typed array, without a copy. */
export function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
