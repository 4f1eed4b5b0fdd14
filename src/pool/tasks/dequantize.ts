import { npyHeaderBytes, readNpyNumeric } from '../../codecs/npy.js';
import { containerFor, INT_DTYPE_INFO, INT_DTYPES, intRange, packedBytes, type IntDType, type UnpackedArray } from '../../core/dtypes.js';
import { givenParams, type GivenArray } from '../../core/given.js';
import { unpack } from '../../core/pack.js';
import { dequantizeWith, type Granularity } from '../../core/quantize.js';
import { checkElementLimits } from '../../core/shape.js';
import type { Scheme } from '../../core/calibrate.js';
import { Errors } from '../../errors.js';
import type { DequantizeNpz, DequantizePayload, Task, TaskLimits, TaskReply } from '../messages.js';
import { npzMembers } from './decode-input.js';
import { givenArrayOf, givenArrayOfNpy } from './given-params.js';
import { jsonBodyWithRaw } from './report.js';

// ONNX DequantizeLinear: x = (q - zero_point) * scale in float32, per tensor, per axis or
// blocked (per_group), from what /v1/quantize returned (JSON or .npz) or from integers and
// parameters the caller has (a deployed model's, say).

/** Stands in for the base64 data while the rest of the reply is serialised. */
const RAW = '\u0000dequantized-data\u0000';

interface Dequantization {
  shape: number[];
  bits: number;
  scheme: Scheme;
  granularity: Granularity;
  axis: number | null | undefined;
  groupSize: number | null | undefined;
  dtype: IntDType;
  q: ArrayLike<number>;
  scale: GivenArray;
  zeroPoint?: GivenArray | undefined;
}

/** bits and scheme default to what the container says: its full width, int → symmetric, uint → asymmetric. */
function widthOf(dtype: IntDType, bits: number | undefined, scheme: Scheme | undefined): { bits: number; scheme: Scheme } {
  const info = INT_DTYPE_INFO[dtype];
  const s = scheme ?? (info.signed ? 'symmetric' : 'asymmetric');
  const b = bits ?? info.storageBits;
  const need = containerFor(b, s === 'symmetric');
  if (need !== dtype) throw new Errors.Validation(`quantized.dtype is ${dtype}, but ${b}-bit ${s} data is stored as ${need}`);
  return { bits: b, scheme: s };
}

function fromJson(p: DequantizePayload, limits: TaskLimits): Dequantization {
  const n = checkElementLimits(p.shape, limits);
  const dtype = p.quantized.dtype as IntDType;
  const { bits, scheme } = widthOf(dtype, p.bits, p.scheme);
  let q: ArrayLike<number>;
  if (p.quantized.data !== undefined) {
    if (p.quantized.values !== undefined) throw new Errors.Validation('give quantized.data (packed base64) or quantized.values (integers), not both');
    const bytes = Buffer.from(p.quantized.data, 'base64');
    const need = packedBytes(dtype, n);
    if (bytes.length !== need) {
      throw new Errors.Base64(`quantized.data decodes to ${bytes.length} bytes; shape [${p.shape.join(', ')}] as ${dtype} needs ${need}`);
    }
    q = unpack(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length), n, dtype);
  } else if (p.quantized.values !== undefined) {
    if (p.quantized.values.length !== n) {
      throw new Errors.TensorShape(`quantized.values holds ${p.quantized.values.length} integers; shape [${p.shape.join(', ')}] needs ${n}`);
    }
    q = p.quantized.values;
  } else {
    throw new Errors.Validation('quantized needs data (packed base64, as /v1/quantize returns it) or values (the integers, flat in C order)');
  }
  const zeroPoint = p.zero_point === undefined ? undefined : givenArrayOf(p.zero_point, 'zero_point', limits);
  return { shape: p.shape, bits, scheme, granularity: p.granularity, axis: p.axis, groupSize: p.group_size, dtype, q, scale: givenArrayOf(p.scale, 'scale', limits), zeroPoint };
}

/** What report.json (written by /v1/quantize) says, where the query string leaves an option out. */
function reportOptions(bytes: Uint8Array | undefined): Record<string, unknown> {
  if (!bytes) return {};
  try {
    const r = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')) as unknown;
    return r && typeof r === 'object' && !Array.isArray(r) ? (r as Record<string, unknown>) : {};
  } catch {
    throw new Errors.Npy('report.json in the .npz body is not JSON');
  }
}

function pick<T>(query: T | undefined, report: unknown, ok: (v: unknown) => v is T): T | undefined {
  if (query !== undefined) return query;
  return ok(report) ? report : undefined;
}

const isNumber = (v: unknown): v is number => typeof v === 'number';
const isScheme = (v: unknown): v is Scheme => v === 'symmetric' || v === 'asymmetric';
const isGranularity = (v: unknown): v is Granularity => v === 'per_tensor' || v === 'per_channel' || v === 'per_group';

function fromNpz(npz: DequantizeNpz, limits: TaskLimits): Dequantization {
  const members = npzMembers({ bytes: npz.bytes }, ['quantized', 'scale', 'zero_point', 'report.json']);
  const qBytes = members.get('quantized');
  const sBytes = members.get('scale');
  if (!qBytes || !sBytes) throw new Errors.Npy('the .npz body needs the members quantized.npy and scale.npy (zero_point.npy optional), as /v1/quantize returns them');
  const report = reportOptions(members.get('report.json'));
  const ints = readNpyNumeric(qBytes, limits, 'quantized.npy');
  const reported = (report.quantized as Record<string, unknown> | undefined)?.dtype;
  const fromFile = ints.dtype === 'int8' || ints.dtype === 'uint8' || ints.dtype === 'int16' || ints.dtype === 'uint16' ? ints.dtype : undefined;
  const bitsQ = pick(npz.query.bits, report.bits, isNumber);
  const schemeQ = pick(npz.query.scheme, report.scheme, isScheme);
  let dtype: IntDType | undefined;
  if (bitsQ !== undefined) dtype = containerFor(bitsQ, (schemeQ ?? (fromFile?.startsWith('u') ? 'asymmetric' : 'symmetric')) === 'symmetric');
  else if (typeof reported === 'string' && (INT_DTYPES as readonly string[]).includes(reported)) dtype = reported as IntDType;
  else dtype = fromFile;
  if (!dtype) throw new Errors.Dtype(`quantized.npy holds ${ints.dtype}; give bits and scheme in the query string for integers in another container`);
  const { bits, scheme } = widthOf(dtype, bitsQ, schemeQ);
  const granularity = pick(npz.query.granularity, report.granularity, isGranularity) ?? 'per_tensor';
  const z = members.get('zero_point');
  return {
    shape: ints.shape,
    bits,
    scheme,
    granularity,
    axis: pick(npz.query.axis, report.axis, isNumber),
    groupSize: pick(npz.query.group_size, report.group_size, isNumber),
    dtype,
    q: ints.data,
    scale: givenArrayOfNpy(sBytes, 'scale', limits),
    zeroPoint: z ? givenArrayOfNpy(z, 'zero_point', limits) : undefined,
  };
}

/** Integers that did not come packed in their full container may be anything: each must be in range. */
function checkRange(q: ArrayLike<number>, bits: number, scheme: Scheme, packedFull: boolean): void {
  if (packedFull) return;
  const { qMin, qMax } = intRange(bits, scheme === 'symmetric');
  for (let i = 0; i < q.length; i++) {
    const v = q[i]!;
    if (!Number.isInteger(v) || v < qMin || v > qMax) {
      throw new Errors.Validation(`quantized value ${v} at flat index ${i} is outside [${qMin}, ${qMax}] for ${bits}-bit ${scheme}`);
    }
  }
}

export function runDequantize(task: Extract<Task, { op: 'dequantize' }>): TaskReply {
  if (!task.payload && !task.npz) throw new Errors.Validation('dequantize needs a JSON body or an .npz body');
  const d = task.payload ? fromJson(task.payload, task.limits) : fromNpz(task.npz!, task.limits);
  const n = checkElementLimits(d.shape, task.limits);
  // Only a bit width narrower than its container (3 bits in int4, 12 in int16) can unpack
  // to values out of range; a full container cannot.
  const packed = task.payload?.quantized.data !== undefined;
  checkRange(d.q, d.bits, d.scheme, packed && INT_DTYPE_INFO[d.dtype].storageBits === d.bits);
  const axis = d.axis ?? (d.granularity === 'per_group' ? -1 : 0);
  const params = givenParams(d.shape, { bits: d.bits, scheme: d.scheme, granularity: d.granularity, axis, groupSize: d.groupSize ?? 1 }, d.scale, d.zeroPoint);
  const q: ArrayLike<number> | UnpackedArray = d.q;
  const log = { shape: d.shape, elements: n };
  if (task.accept === 'npy') {
    // Dequantized straight into the .npy body, behind its header (64-byte aligned, so a
    // Float32Array can view the data).
    const header = npyHeaderBytes('<f4', d.shape);
    const body = new Uint8Array(header.length + 4 * n);
    body.set(header);
    dequantizeWith(q, params, new Float32Array(body.buffer, body.byteOffset + header.length, n));
    return { body, contentType: 'application/x-npy', log };
  }
  const x = dequantizeWith(q, params);
  const data = Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('base64');
  return { body: jsonBodyWithRaw({ shape: d.shape, dtype: 'float32', data: RAW }, RAW, data), contentType: 'application/json', log };
}
