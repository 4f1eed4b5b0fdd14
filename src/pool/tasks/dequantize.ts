import { npyHeaderBytes } from '../../codecs/npy.js';
import { containerFor, INT_DTYPE_INFO, intRange, packedBytes, type IntDType } from '../../core/dtypes.js';
import { unpack } from '../../core/pack.js';
import { dequantizeWith, planParams } from '../../core/quantize.js';
import { f32 } from '../../core/round.js';
import { checkElementLimits } from '../../core/shape.js';
import { decodeJsonData } from '../../core/tensor.js';
import { Errors } from '../../errors.js';
import type { Task, TaskReply } from '../messages.js';
import { jsonBodyWithRaw } from './report.js';

/** Stands in for the base64 data while the rest of the reply is serialised. */
const RAW = '\u0000dequantized-data\u0000';

function flattenParam(value: unknown, paramShape: number[], field: string, limits: Parameters<typeof decodeJsonData>[2]): Float64Array {
  if (paramShape.length === 0) {
    if (typeof value !== 'number') throw new Errors.Validation(`${field} must be a number for per_tensor granularity`);
    return Float64Array.of(value);
  }
  if (!Array.isArray(value)) throw new Errors.Validation(`${field} must be an array of shape [${paramShape.join(', ')}]`);
  const flat = decodeJsonData(value, undefined, limits, field);
  if (flat.shape.join(',') !== paramShape.join(',')) {
    throw new Errors.Validation(`${field} has shape [${flat.shape.join(', ')}]; these options need [${paramShape.join(', ')}]`);
  }
  return Float64Array.from(flat.data);
}

export function runDequantize(task: Extract<Task, { op: 'dequantize' }>): TaskReply {
  const p = task.payload;
  const n = checkElementLimits(p.shape, task.limits);
  const dtype: IntDType = containerFor(p.bits, p.scheme === 'symmetric');
  if (p.quantized.dtype !== dtype) {
    throw new Errors.Validation(`quantized.dtype is ${p.quantized.dtype}, but ${p.bits}-bit ${p.scheme} data is stored as ${dtype}`);
  }
  const axis = p.axis ?? (p.granularity === 'per_group' ? -1 : 0);
  const plan = planParams(p.shape, p.granularity, axis, p.group_size ?? 1);
  const bytes = Buffer.from(p.quantized.data, 'base64');
  const need = packedBytes(dtype, n);
  if (bytes.length !== need) {
    throw new Errors.Base64(`quantized.data decodes to ${bytes.length} bytes; shape [${p.shape.join(', ')}] as ${dtype} needs ${need}`);
  }
  const q = unpack(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length), n, dtype);
  const { qMin, qMax } = intRange(p.bits, p.scheme === 'symmetric');
  // Only a bit width narrower than its container (3 bits in int4, 12 in int16) can hold
  // values out of range; a full container cannot.
  const full = INT_DTYPE_INFO[dtype].storageBits === p.bits;
  for (let i = 0; !full && i < q.length; i++) {
    if (q[i]! < qMin || q[i]! > qMax) {
      throw new Errors.Validation(`quantized value ${q[i]} at flat index ${i} is outside [${qMin}, ${qMax}] for ${p.bits}-bit ${p.scheme}`);
    }
  }
  const scales = flattenParam(p.scale, plan.paramShape, 'scale', task.limits);
  const zps = flattenParam(p.zero_point, plan.paramShape, 'zero_point', task.limits);
  const scale = new Float32Array(scales.length);
  const zeroPoint = new Int32Array(zps.length);
  for (let i = 0; i < scales.length; i++) {
    scale[i] = f32(scales[i]!);
    if (!(scale[i]! > 0) || !Number.isFinite(scale[i]!)) throw new Errors.Validation(`scale[${i}] must be a positive finite float32, got: ${scales[i]}`);
    if (!Number.isInteger(zps[i]!) || zps[i]! < qMin || zps[i]! > qMax) {
      throw new Errors.Validation(`zero_point[${i}] must be an integer in [${qMin}, ${qMax}], got: ${zps[i]}`);
    }
    zeroPoint[i] = zps[i]!;
  }
  const log = { shape: p.shape, elements: n };
  if (task.accept === 'npy') {
    // Dequantized straight into the .npy body, behind its header (64-byte aligned, so a
    // Float32Array can view the data).
    const header = npyHeaderBytes('<f4', p.shape);
    const body = new Uint8Array(header.length + 4 * n);
    body.set(header);
    dequantizeWith(q, { plan, scale, zeroPoint }, new Float32Array(body.buffer, body.byteOffset + header.length, n));
    return { body, contentType: 'application/x-npy', log };
  }
  const x = dequantizeWith(q, { plan, scale, zeroPoint });
  const data = Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('base64');
  return { body: jsonBodyWithRaw({ shape: p.shape, dtype: 'float32', data: RAW }, RAW, data), contentType: 'application/json', log };
}
