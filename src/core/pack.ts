import { INT_DTYPE_INFO, packedBytes, type IntDType, type UnpackedArray } from './dtypes.js';
import { packKernel, unpackKernel } from './kernels/pack.js';
import { arenaAlloc } from './kernels/arenas.js';
import { packReference } from './reference/pack.js';

// LSB-first packing: element i takes the lowest free bits of its byte first (the ONNX
// int4 layout: element 0 in the low nibble), two's complement inside the field.
// 2- and 4-bit containers go through the WebAssembly kernel; the plain loops it must match
// are in reference/pack.ts.

/** Packs one integer per element into the container's storage bytes (little-endian for 16-bit). */
export function pack(values: UnpackedArray, dtype: IntDType): Uint8Array {
  const bits = INT_DTYPE_INFO[dtype].storageBits;
  if (bits >= 8) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  // Values held in a wider container than the dtype's own (a scratch array) take the plain loop.
  if (values.BYTES_PER_ELEMENT !== 1) return packReference(values, dtype);
  // Beside the values in their arena when there is room.
  const bytes = packedBytes(dtype, values.length);
  const out = arenaAlloc(values, bytes) ?? new Uint8Array(bytes);
  packKernel(values as Int8Array | Uint8Array, bits as 2 | 4, out);
  return out;
}

/** Inverse of pack: n elements out of packed storage bytes. */
export function unpack(bytes: Uint8Array, n: number, dtype: IntDType): UnpackedArray {
  const info = INT_DTYPE_INFO[dtype];
  const bits = info.storageBits;
  const need = packedBytes(dtype, n);
  if (bytes.length < need) throw new RangeError(`${dtype} data holds ${bytes.length} bytes; ${n} elements need ${need}`);
  const out = info.create(n);
  if (bits >= 8) {
    new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(bytes.subarray(0, need));
    return out;
  }
  unpackKernel(bytes, n, bits as 2 | 4, info.signed, out as Int8Array | Uint8Array);
  return out;
}
