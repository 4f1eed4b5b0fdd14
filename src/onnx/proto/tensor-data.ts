import { Errors } from '../../errors.js';
import { bfloat16ToFloat, halfToFloat } from '../../core/float16.js';
import { widenKernel } from '../../core/kernels/widen.js';
import { DATA_LOCATION_EXTERNAL, DataType, dataTypeName, type OnnxTensor } from './model.js';

// Reading a float initializer's values wherever the model keeps them: raw_data (a view
// into the upload at any byte offset, so it is copied into an aligned array), float_data,
// or an external data file. float16 and bfloat16 values are widened to float32 (exactly).

/** Reads byte ranges of the external data files a model refers to. */
export interface ExternalData {
  read(location: string, offset: number, length: number): Uint8Array;
  /** Reads dst.length bytes at offset straight into dst (a file into a weight's scratch, without a buffer between). */
  readInto?(location: string, offset: number, dst: Uint8Array): void;
}

export interface ExternalRef {
  location: string;
  offset: number;
  length: number | undefined;
}

function onnxError(message: string): never {
  throw new Errors.Onnx(message);
}

/**
 * A location must stay inside the model's directory: relative, no '..', no drive or root
 * (onnxruntime refuses the same), so a model cannot make us read /etc/passwd.
 */
export function checkLocation(location: string, tensorName: string): string {
  const parts = location.split(/[\\/]/);
  if (location === '' || location.startsWith('/') || location.startsWith('\\') || /^[a-zA-Z]:/.test(location) || parts.includes('..')) {
    onnxError(`initializer '${tensorName}': external data location '${location}' must be a relative path inside the model's directory`);
  }
  return location;
}

function nonNegativeInt(text: string, what: string, tensorName: string): number {
  if (!/^\d{1,16}$/.test(text)) onnxError(`initializer '${tensorName}': external data ${what} '${text}' is not a non-negative integer`);
  return Number(text);
}

export function externalRef(t: OnnxTensor): ExternalRef {
  let location: string | undefined;
  let offset = 0;
  let length: number | undefined;
  for (const { key, value } of t.externalData) {
    if (key === 'location') location = checkLocation(value, t.name);
    else if (key === 'offset') offset = nonNegativeInt(value, 'offset', t.name);
    else if (key === 'length') length = nonNegativeInt(value, 'length', t.name);
  }
  if (location === undefined) onnxError(`initializer '${t.name}' has data_location EXTERNAL but no 'location' key`);
  return { location, offset, length };
}

export function isExternal(t: OnnxTensor): boolean {
  return t.dataLocation === DATA_LOCATION_EXTERNAL;
}

export function elementCount(t: OnnxTensor): number {
  let n = 1;
  for (const d of t.dims) {
    if (!Number.isSafeInteger(d) || d < 0) onnxError(`tensor '${t.name}' has an invalid dimension ${d}`);
    n *= d;
  }
  if (!Number.isSafeInteger(n)) onnxError(`tensor '${t.name}' declares more elements than can be addressed`);
  return n;
}

/** The float types whose weights are quantized, and the bytes per element each takes. */
export const WEIGHT_FLOAT_TYPES: ReadonlyMap<number, number> = new Map([
  [DataType.float32, 4],
  [DataType.float16, 2],
  [DataType.bfloat16, 2],
]);

/** The bytes of a float tensor's values, wherever they live (not yet aligned). */
function floatBytes(t: OnnxTensor, n: number, external: ExternalData | undefined, size = 4): Uint8Array {
  const need = size * n;
  const type = dataTypeName(t.dataType);
  if (isExternal(t)) {
    const ref = externalRef(t);
    if (ref.length !== undefined && ref.length !== need) {
      onnxError(`initializer '${t.name}': external data length ${ref.length} does not match ${n} ${type} values (${need} bytes)`);
    }
    if (!external) onnxError(`initializer '${t.name}' lives in external file '${ref.location}', which was not uploaded`);
    return external.read(ref.location, ref.offset, need);
  }
  if (t.rawData && t.rawData.length > 0) {
    if (t.rawData.length !== need) onnxError(`tensor '${t.name}': raw_data holds ${t.rawData.length} bytes; ${n} ${type} values need ${need}`);
    return t.rawData;
  }
  // float16/bfloat16 outside raw_data live in int32_data, one value per varint: not read.
  if (size !== 4) onnxError(`tensor '${t.name}': ${type} values outside raw_data (int32_data) are not read`);
  const runs = t.floatData ?? [];
  const have = runs.reduce((s, r) => s + r.length, 0);
  if (have !== need) onnxError(`tensor '${t.name}': float_data holds ${have / 4} values; its dims [${t.dims.join(', ')}] need ${n}`);
  if (runs.length === 1) return runs[0]!;
  const out = new Uint8Array(need);
  let at = 0;
  for (const r of runs) {
    out.set(r, at);
    at += r.length;
  }
  return out;
}

/** Fills dst with the tensor's n stored bytes, read into it directly when the external data can. */
function floatBytesInto(t: OnnxTensor, n: number, external: ExternalData | undefined, size: number, dst: Uint8Array): void {
  if (isExternal(t) && external?.readInto) {
    const ref = externalRef(t);
    if (ref.length !== undefined && ref.length !== size * n) floatBytes(t, n, external, size); // throws the length error
    external.readInto(ref.location, ref.offset, dst);
  } else copyBytes(dst, floatBytes(t, n, external, size).subarray(0, size * n));
}

const STAGE_BYTES = 1 << 20;
let stage: Uint8Array | undefined;

/**
 * dst.set(src), except that V8 copies into shared memory (a kernel arena) byte by byte from
 * a source not 8-byte aligned, at a fifth of the speed or less (raw_data sits anywhere in a
 * model): such a source goes through an ordinary buffer a MiB at a time.
 */
function copyBytes(dst: Uint8Array, src: Uint8Array): void {
  if (!(dst.buffer instanceof SharedArrayBuffer) || (src.byteOffset % 8 === 0 && dst.byteOffset % 8 === 0)) {
    dst.set(src);
    return;
  }
  stage ??= new Uint8Array(STAGE_BYTES);
  for (let at = 0; at < src.length; at += STAGE_BYTES) {
    const n = Math.min(STAGE_BYTES, src.length - at);
    stage.set(src.subarray(at, at + n));
    dst.set(stage.subarray(0, n), at);
  }
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
let halfTable: Float32Array | undefined;

/**
 * A float32, float16 or bfloat16 tensor's values written into `into` (its length the
 * tensor's element count), the same values readFloat returns; `room` (2 bytes a value,
 * 2-byte aligned) holds a narrow type's bytes before they widen. The model path's weight
 * scratch: no buffer per weight, and a file's bytes land where the kernels read them.
 */
export function readFloatInto(t: OnnxTensor, external: ExternalData | undefined, into: Float32Array, room: Uint8Array): void {
  const size = WEIGHT_FLOAT_TYPES.get(t.dataType);
  if (size === undefined) onnxError(`tensor '${t.name}' is ${dataTypeName(t.dataType)}, not a float type that is quantized`);
  const n = elementCount(t);
  if (into.length !== n || room.length < 2 * n || room.byteOffset % 2 !== 0) throw new RangeError(`readFloatInto: room for ${into.length} values given, '${t.name}' has ${n}`);
  if (size === 4) {
    floatBytesInto(t, n, external, 4, new Uint8Array(into.buffer, into.byteOffset, 4 * n));
    return;
  }
  const raw = room.subarray(0, 2 * n);
  floatBytesInto(t, n, external, 2, raw);
  if (!LITTLE_ENDIAN) {
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const widen = t.dataType === DataType.float16 ? halfToFloat : bfloat16ToFloat;
    for (let i = 0; i < n; i++) into[i] = widen(view.getUint16(2 * i, true));
    return;
  }
  const h = new Uint16Array(raw.buffer, raw.byteOffset, n);
  // In a kernel arena (the weight scratch) the kernel widens all but the last few.
  const done = widenKernel(h, into, t.dataType === DataType.bfloat16);
  if (t.dataType === DataType.bfloat16) {
    // bfloat16 is float32's upper half.
    const bits = new Uint32Array(into.buffer, into.byteOffset, n);
    for (let i = done; i < n; i++) bits[i] = h[i]! << 16;
    return;
  }
  // Every half's float32, looked up: a quarter of the per-value arithmetic's time.
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) halfTable[i] = halfToFloat(i);
  }
  const table = halfTable;
  for (let i = done; i < n; i++) into[i] = table[h[i]!]!;
}

/** A float32 tensor's values as an aligned Float32Array of its own. */
export function readFloat32(t: OnnxTensor, external?: ExternalData): Float32Array {
  if (t.dataType !== DataType.float32) onnxError(`tensor '${t.name}' is ${dataTypeName(t.dataType)}, not float32`);
  const n = elementCount(t);
  const bytes = floatBytes(t, n, external);
  const out = new Float32Array(n);
  new Uint8Array(out.buffer).set(bytes.subarray(0, 4 * n));
  return out;
}

/** A float32, float16 or bfloat16 tensor's values as float32 (the narrow types widen exactly). */
export function readFloat(t: OnnxTensor, external?: ExternalData): Float32Array {
  if (t.dataType === DataType.float32) return readFloat32(t, external);
  const size = WEIGHT_FLOAT_TYPES.get(t.dataType);
  if (size === undefined) onnxError(`tensor '${t.name}' is ${dataTypeName(t.dataType)}, not a float type that is quantized`);
  const n = elementCount(t);
  const bytes = floatBytes(t, n, external, size);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const widen = t.dataType === DataType.float16 ? halfToFloat : bfloat16ToFloat;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = widen(view.getUint16(2 * i, true));
  return out;
}

/** Whether the values can be read (float16/bfloat16 need raw_data or external data). */
export function floatReadable(t: OnnxTensor): boolean {
  return t.dataType === DataType.float32 || isExternal(t) || (t.rawData !== undefined && t.rawData.length > 0) || elementCount(t) === 0;
}

/** Bytes the tensor's data takes in the model (inline or external), for size reports. */
export function storedBytes(t: OnnxTensor): number {
  if (isExternal(t)) return externalRef(t).length ?? 0;
  if (t.rawData) return t.rawData.length;
  return (t.floatData ?? []).reduce((s, r) => s + r.length, 0);
}
