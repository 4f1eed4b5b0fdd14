// Dtypes described twice: once for the compiler (the maps below) and once at run time
// (the tables), as onnxruntime-common does with DataTypeMap.

export const FLOAT_DTYPES = ['float32', 'float64', 'float16', 'bfloat16'] as const;
export type FloatDType = (typeof FLOAT_DTYPES)[number];

export const FLOAT_BYTES: Record<FloatDType, number> = {
  float32: 4,
  float64: 8,
  float16: 2,
  bfloat16: 2,
};

export const INT_DTYPES = ['int2', 'uint2', 'int4', 'uint4', 'int8', 'uint8', 'int16', 'uint16'] as const;
export type IntDType = (typeof INT_DTYPES)[number];

/** The typed array that holds one unpacked integer per element for each container. */
export interface UnpackedArrayMap {
  int2: Int8Array;
  uint2: Uint8Array;
  int4: Int8Array;
  uint4: Uint8Array;
  int8: Int8Array;
  uint8: Uint8Array;
  int16: Int16Array;
  uint16: Uint16Array;
}
export type UnpackedArray = UnpackedArrayMap[IntDType];

export interface IntDTypeInfo {
  /** Bits each element occupies in storage (2, 4, 8 or 16). */
  storageBits: 2 | 4 | 8 | 16;
  signed: boolean;
  /** The NumPy dtype string of the unpacked array (what .npy files carry). */
  npyDescr: '|i1' | '|u1' | '<i2' | '<u2';
  unpackedName: 'int8' | 'uint8' | 'int16' | 'uint16';
  create(n: number): UnpackedArray;
  view(buf: ArrayBufferLike, byteOffset: number, length: number): UnpackedArray;
}

const i8 = {
  npyDescr: '|i1',
  unpackedName: 'int8',
  create: (n: number) => new Int8Array(n),
  view: (b: ArrayBufferLike, o: number, n: number) => new Int8Array(b, o, n),
} as const;
const u8 = {
  npyDescr: '|u1',
  unpackedName: 'uint8',
  create: (n: number) => new Uint8Array(n),
  view: (b: ArrayBufferLike, o: number, n: number) => new Uint8Array(b, o, n),
} as const;

export const INT_DTYPE_INFO: Record<IntDType, IntDTypeInfo> = {
  int2: { storageBits: 2, signed: true, ...i8 },
  uint2: { storageBits: 2, signed: false, ...u8 },
  int4: { storageBits: 4, signed: true, ...i8 },
  uint4: { storageBits: 4, signed: false, ...u8 },
  int8: { storageBits: 8, signed: true, ...i8 },
  uint8: { storageBits: 8, signed: false, ...u8 },
  int16: {
    storageBits: 16,
    signed: true,
    npyDescr: '<i2',
    unpackedName: 'int16',
    create: (n) => new Int16Array(n),
    view: (b, o, n) => new Int16Array(b, o, n),
  },
  uint16: {
    storageBits: 16,
    signed: false,
    npyDescr: '<u2',
    unpackedName: 'uint16',
    create: (n) => new Uint16Array(n),
    view: (b, o, n) => new Uint16Array(b, o, n),
  },
};

export const MIN_BITS = 2;
export const MAX_BITS = 16;

/** The storage container for a bit width: 2 → int2, 3-4 → int4, 5-8 → int8, 9-16 → int16. */
export function containerFor(bits: number, signed: boolean): IntDType {
  const width = bits <= 2 ? 2 : bits <= 4 ? 4 : bits <= 8 ? 8 : 16;
  return `${signed ? 'int' : 'uint'}${width}` as IntDType;
}

/** Integer range of a bit width: symmetric is signed two's complement, asymmetric unsigned. */
export function intRange(bits: number, signed: boolean): { qMin: number; qMax: number } {
  return signed
    ? { qMin: -(2 ** (bits - 1)), qMax: 2 ** (bits - 1) - 1 }
    : { qMin: 0, qMax: 2 ** bits - 1 };
}

/** Bytes that n elements take in a container once packed. */
export function packedBytes(dtype: IntDType, n: number): number {
  return Math.ceil((n * INT_DTYPE_INFO[dtype].storageBits) / 8);
}
