import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import { pack, unpack } from '../../src/core/pack.js';
import { INT_DTYPES, INT_DTYPE_INFO, containerFor, intRange, packedBytes, type IntDType } from '../../src/core/dtypes.js';

const FC = { seed: 42, numRuns: 200 };

function rangeOf(dtype: IntDType): { lo: number; hi: number } {
  const { storageBits, signed } = INT_DTYPE_INFO[dtype];
  return signed ? { lo: -(2 ** (storageBits - 1)), hi: 2 ** (storageBits - 1) - 1 } : { lo: 0, hi: 2 ** storageBits - 1 };
}

function typed(dtype: IntDType, values: number[]) {
  const a = INT_DTYPE_INFO[dtype].create(values.length);
  a.set(values);
  return a;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

test('containers, integer ranges and packed sizes', () => {
  const want: Array<[number, IntDType, IntDType]> = [
    [2, 'int2', 'uint2'],
    [3, 'int4', 'uint4'],
    [4, 'int4', 'uint4'],
    [5, 'int8', 'uint8'],
    [8, 'int8', 'uint8'],
    [9, 'int16', 'uint16'],
    [12, 'int16', 'uint16'],
    [16, 'int16', 'uint16'],
  ];
  for (const [bits, s, u] of want) {
    assert.equal(containerFor(bits, true), s);
    assert.equal(containerFor(bits, false), u);
  }
  assert.deepEqual(intRange(2, true), { qMin: -2, qMax: 1 });
  assert.deepEqual(intRange(2, false), { qMin: 0, qMax: 3 });
  assert.deepEqual(intRange(3, true), { qMin: -4, qMax: 3 });
  assert.deepEqual(intRange(8, true), { qMin: -128, qMax: 127 });
  assert.deepEqual(intRange(8, false), { qMin: 0, qMax: 255 });
  assert.deepEqual(intRange(12, false), { qMin: 0, qMax: 4095 });
  assert.deepEqual(intRange(16, true), { qMin: -32768, qMax: 32767 });
  assert.deepEqual(intRange(16, false), { qMin: 0, qMax: 65535 });
  // Every bit width's range fits its container.
  for (let bits = 2; bits <= 16; bits++) {
    for (const signed of [true, false]) {
      const { qMin, qMax } = intRange(bits, signed);
      const r = rangeOf(containerFor(bits, signed));
      assert.ok(r.lo <= qMin && qMax <= r.hi, `${bits} bits ${signed}`);
    }
  }
  assert.equal(packedBytes('int2', 0), 0);
  assert.equal(packedBytes('int2', 5), 2);
  assert.equal(packedBytes('uint4', 3), 2);
  assert.equal(packedBytes('int8', 3), 3);
  assert.equal(packedBytes('uint16', 3), 6);
});

test('known packed bytes: LSB first, two’s complement in the field, little-endian 16-bit', () => {
  const cases: Array<[IntDType, number[], string]> = [
    ['int4', [1, -1], 'f1'],
    ['int4', [-8, 7], '78'],
    ['int4', [7, -8, 3], '8703'],
    ['uint4', [1, 2, 3], '2103'],
    ['uint4', [15, 0], '0f'],
    ['int2', [0, 1, -2, -1], 'e4'],
    ['int2', [-1], '03'],
    ['int2', [1, 1, 1, 1, -2], '5502'],
    ['uint2', [3, 0, 0, 0, 1], '0301'],
    ['uint2', [0, 1, 2, 3], 'e4'],
    ['int8', [-1, 127, -128, 0], 'ff7f8000'],
    ['uint8', [255, 1], 'ff01'],
    ['int16', [1, -2, -32768, 32767], '0100feff0080ff7f'],
    ['uint16', [0x1234, 65535], '3412ffff'],
    ['int4', [], ''],
  ];
  for (const [dtype, values, want] of cases) {
    const q = typed(dtype, values);
    assert.equal(hex(pack(q, dtype)), want, `${dtype} ${values}`);
    assert.deepEqual(Array.from(unpack(Buffer.from(want, 'hex'), values.length, dtype)), values, `${dtype} ${want}`);
  }
});

test('unpack(pack(q)) is the identity for every container and length', () => {
  for (const dtype of INT_DTYPES) {
    const { lo, hi } = rangeOf(dtype);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: lo, max: hi }), { maxLength: 67 }), (values) => {
        const q = typed(dtype, values);
        const bytes = pack(q, dtype);
        assert.equal(bytes.length, packedBytes(dtype, values.length));
        const back = unpack(bytes, values.length, dtype);
        assert.equal(back.constructor, q.constructor);
        assert.deepEqual(Array.from(back), values);
        // Padding bits of the last byte are zero.
        const bits = INT_DTYPE_INFO[dtype].storageBits;
        const used = (values.length * bits) % 8;
        if (used) assert.equal(bytes[bytes.length - 1]! >> used, 0);
      }),
      FC,
    );
  }
});

test('pack(unpack(bytes)) gives the bytes back (every bit pattern is a valid element)', () => {
  for (const dtype of INT_DTYPES) {
    const bits = INT_DTYPE_INFO[dtype].storageBits;
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
        const n = Math.floor((bytes.length * 8) / bits);
        assert.equal(hex(pack(unpack(bytes, n, dtype), dtype)), hex(bytes.subarray(0, packedBytes(dtype, n))));
      }),
      FC,
    );
  }
});

test('pack and unpack handle views at odd byte offsets', () => {
  const backing = new Uint8Array(9);
  backing.set([0xaa, 0x01, 0x00, 0xfe, 0xff, 0x00, 0x80, 0xff, 0x7f]);
  const view = backing.subarray(1); // byteOffset 1: not 2-byte aligned
  assert.deepEqual(Array.from(unpack(view, 4, 'int16')), [1, -2, -32768, 32767]);
  assert.deepEqual(Array.from(unpack(view, 2, 'uint16')), [1, 65534]);
  // A subarray of values packs only its own elements.
  const all = Int16Array.of(9, 1, -2, 9);
  assert.equal(hex(pack(all.subarray(1, 3), 'int16')), '0100feff');
  const nibbles = Int8Array.of(5, 1, -1, 5);
  assert.equal(hex(pack(nibbles.subarray(1, 3), 'int4')), 'f1');
});

test('unpack refuses too few bytes and ignores extra ones', () => {
  assert.throws(() => unpack(new Uint8Array(1), 3, 'int4'), RangeError);
  assert.throws(() => unpack(new Uint8Array(3), 2, 'int16'), RangeError);
  assert.throws(() => unpack(new Uint8Array(1), 5, 'uint2'), RangeError);
  assert.deepEqual(Array.from(unpack(Uint8Array.of(0xf1, 0xff), 2, 'int4')), [1, -1]);
  assert.deepEqual(Array.from(unpack(Uint8Array.of(0xe4, 0xff), 3, 'int2')), [0, 1, -2]);
  assert.deepEqual(Array.from(unpack(new Uint8Array(0), 0, 'uint16')), []);
});
