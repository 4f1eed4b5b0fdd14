import { Errors } from '../errors.js';
import { FLOAT_BYTES, type FloatDType } from './dtypes.js';
import { bfloat16ToFloat, halfToFloat } from './float16.js';
import { countNonFinite } from './kernels/calibrate.js';
import { checkElementLimits, stridesOf, type Shape } from './shape.js';

export interface Limits {
  maxElements: number;
  maxDims: number;
}

/** A float32 tensor in C order: what every input encoding is decoded to. */
export interface Tensor {
  data: Float32Array;
  shape: number[];
}

function multiIndex(flat: number, shape: Shape): string {
  const strides = stridesOf(shape);
  return `[${strides.map((s, i) => Math.floor(flat / s) % shape[i]!).join(', ')}]`;
}

/** NaN or ±Inf anywhere is a 400 that says where the first one is. */
export function assertFinite(x: Float32Array, shape: Shape, field: string): void {
  // The kernel pass is ~6x faster than this loop, which then only runs to name the culprit.
  if (countNonFinite(x) === 0) return;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    // v - v is NaN for NaN and ±Inf alike, and 0 for every finite value.
    if (v - v !== 0) {
      const what = Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity';
      throw new Errors.NonFinite(`${field} contains ${what} at flat index ${i} (index ${multiIndex(i, shape)}); only finite values can be quantized`);
    }
  }
}

/**
 * Little-endian bytes of a float dtype → float32. float32 input that is 4-byte aligned is
 * used in place (the body buffer was transferred to this thread, nobody else holds it).
 */
export function decodeRaw(bytes: Uint8Array, dtype: FloatDType, shape: number[], limits: Limits, field = 'tensor', finite = true): Tensor {
  const n = checkElementLimits(shape, limits, `${field}.shape`);
  const width = FLOAT_BYTES[dtype];
  if (bytes.byteLength !== n * width) {
    throw new Errors.TensorShape(
      `${field}: shape [${shape.join(', ')}] needs ${n} ${dtype} values (${n * width} bytes), but ${bytes.byteLength} bytes were sent`,
    );
  }
  let data: Float32Array;
  if (dtype === 'float32' && bytes.byteOffset % 4 === 0) {
    data = new Float32Array(bytes.buffer, bytes.byteOffset, n);
  } else {
    data = new Float32Array(n);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    switch (dtype) {
      case 'float32':
        for (let i = 0; i < n; i++) data[i] = dv.getFloat32(i * 4, true);
        break;
      case 'float64':
        for (let i = 0; i < n; i++) data[i] = dv.getFloat64(i * 8, true);
        break;
      case 'float16':
        for (let i = 0; i < n; i++) data[i] = halfToFloat(dv.getUint16(i * 2, true));
        break;
      case 'bfloat16':
        for (let i = 0; i < n; i++) data[i] = bfloat16ToFloat(dv.getUint16(i * 2, true));
        break;
    }
  }
  if (finite) assertFinite(data, shape, field);
  return { data, shape };
}

const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

export function decodeBase64(b64: string, dtype: FloatDType, shape: number[], limits: Limits, field = 'tensor', finite = true): Tensor {
  const n = checkElementLimits(shape, limits, `${field}.shape`);
  const clean = b64.replace(/\s+/g, '');
  if (clean.length % 4 !== 0 || !BASE64_RE.test(clean)) {
    throw new Errors.Base64(`${field}.b64 is not valid base64 (length ${clean.length}, must be a multiple of 4 using A-Z a-z 0-9 + / and = padding)`);
  }
  const expected = n * FLOAT_BYTES[dtype];
  const decodedLength = (clean.length / 4) * 3 - (clean.endsWith('==') ? 2 : clean.endsWith('=') ? 1 : 0);
  if (decodedLength !== expected) {
    throw new Errors.Base64(
      `${field}.b64 decodes to ${decodedLength} bytes, but shape [${shape.join(', ')}] of ${dtype} needs ${expected} bytes`,
    );
  }
  // An ordinary buffer, not a kernel arena: the worker allocating it is what prompts V8 to
  // collect the request's big base64 strings (arenas are not counted as external memory),
  // and the kernels' staging costs little next to the JSON and base64 work of this path.
  const buf = Buffer.from(clean, 'base64');
  return decodeRaw(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), dtype, shape, limits, field, finite);
}

/** Infers the shape of nested arrays; ragged nesting is an error that names the path. */
function inferShape(data: unknown[]): number[] {
  const shape: number[] = [];
  let level: unknown = data;
  while (Array.isArray(level)) {
    shape.push(level.length);
    if (level.length === 0) break;
    level = level[0];
  }
  return shape.length ? shape : [0];
}

/** JSON data (flat with a shape, or nested) → float32, checking every element's type and the nesting. */
export function decodeJsonData(data: unknown[], declared: number[] | undefined, limits: Limits, field = 'tensor'): Tensor {
  const nested = data.length > 0 && Array.isArray(data[0]);
  const inferred = nested ? inferShape(data) : [data.length];
  const shape = declared ?? inferred;
  const n = checkElementLimits(shape, limits, declared ? `${field}.shape` : `${field}.data`);
  const out = new Float32Array(n);
  let pos = 0;
  const walk = (arr: unknown[], depth: number, path: number[]): void => {
    if (arr.length !== inferred[depth]) {
      throw new Errors.TensorData(
        `${field}.data is ragged: ${field}.data[${path.join('][')}] has ${arr.length} elements, expected ${inferred[depth]} like its siblings`,
      );
    }
    const leaf = depth === inferred.length - 1;
    for (let i = 0; i < arr.length; i++) {
      const v = arr[i];
      if (leaf) {
        if (typeof v !== 'number') {
          const where = [...path, i].join('][');
          throw new Errors.TensorData(
            `${field}.data[${where}] is ${v === null ? 'null' : Array.isArray(v) ? 'an array (ragged nesting)' : `a ${typeof v}`}; every element must be a number`,
          );
        }
        out[pos++] = v;
      } else {
        if (!Array.isArray(v)) {
          throw new Errors.TensorData(`${field}.data[${[...path, i].join('][')}] is not an array; nested data must be rectangular`);
        }
        walk(v, depth + 1, [...path, i]);
      }
    }
  };
  if (n === 0) throw new Errors.TensorShape(`${field} is empty; the tensor must have at least one element`);
  if (declared && nested) {
    if (inferred.reduce((a, b) => a * b, 1) !== n) {
      throw new Errors.TensorShape(`${field}.shape [${declared.join(', ')}] has ${n} elements but the nested data has shape [${inferred.join(', ')}]`);
    }
  } else if (declared && data.length !== n) {
    throw new Errors.TensorShape(`${field}.shape [${declared.join(', ')}] has ${n} elements but ${field}.data has ${data.length}`);
  }
  walk(data, 0, []);
  // Out-of-range doubles (e.g. 1e39) overflow to ±Infinity in float32 and are caught here too.
  assertFinite(out, shape, `${field}.data`);
  return { data: out, shape };
}
