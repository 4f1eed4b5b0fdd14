import { INT_DTYPE_INFO, packedBytes, type IntDType, type UnpackedArray } from '../dtypes.js';

// The reference packing loops (the oracle for src/core/kernels/pack.ts): element i takes the
// lowest free bits of its byte first, two's complement inside the field.

export function packReference(values: UnpackedArray, dtype: IntDType): Uint8Array {
  const bits = INT_DTYPE_INFO[dtype].storageBits;
  if (bits >= 8) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const n = values.length;
  const out = new Uint8Array(packedBytes(dtype, n));
  const perByte = 8 / bits;
  const mask = (1 << bits) - 1;
  for (let i = 0; i < n; i++) {
    out[(i / perByte) | 0]! |= (values[i]! & mask) << ((i % perByte) * bits);
  }
  return out;
}

export function unpackReference(bytes: Uint8Array, n: number, dtype: IntDType): UnpackedArray {
  const info = INT_DTYPE_INFO[dtype];
  const bits = info.storageBits;
  const need = packedBytes(dtype, n);
  if (bytes.length < need) throw new RangeError(`${dtype} data holds ${bytes.length} bytes; ${n} elements need ${need}`);
  const out = info.create(n);
  if (bits >= 8) {
    new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(bytes.subarray(0, need));
    return out;
  }
  const perByte = 8 / bits;
  const mask = (1 << bits) - 1;
  const signBit = 1 << (bits - 1);
  for (let i = 0; i < n; i++) {
    let v = (bytes[(i / perByte) | 0]! >> ((i % perByte) * bits)) & mask;
    if (info.signed && v & signBit) v -= 1 << bits;
    out[i] = v;
  }
  return out;
}
