import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { encodeNpy, npyHeaderBytes, parseNpyHeader, readNpy, readNpyArray } from '../../src/codecs/npy.js';

// Compiled to dist/test/core/codecs; the fixtures stay in the source tree.
const FIXTURES = new URL('../../../test/fixtures/npy/', import.meta.url);
const fixture = (name: string): Uint8Array => new Uint8Array(readFileSync(new URL(name, FIXTURES)));

type JsonNumber = number | 'NaN' | 'Infinity' | '-Infinity';
interface Expected {
  readers: Record<string, { shape: number[]; descr: string; fortranOrder: boolean; version: number[]; values: JsonNumber[] }>;
  writers: Record<string, { shape: number[]; descr: string; values: number[] }>;
}
const expected = JSON.parse(readFileSync(new URL('expected.json', FIXTURES), 'utf8')) as Expected;
const fromJson = (v: JsonNumber): number => (typeof v === 'number' ? v : Number(v));

const LIMITS = { maxElements: 1_000_000, maxDims: 8 };
const DTYPE_OF: Record<string, string> = { f2: 'float16', f4: 'float32', f8: 'float64' };

/** Bitwise equality, so -0 and NaN are compared exactly too. */
function assertSameFloats(actual: Float32Array, wanted: readonly number[]): void {
  assert.equal(actual.length, wanted.length);
  const got = Array.from(actual);
  // actual may be a view into the file (readNpy does not copy aligned little-endian float32).
  assert.deepEqual(new Uint32Array(actual.buffer, actual.byteOffset, actual.length), new Uint32Array(Float32Array.from(wanted).buffer), `got ${got}`);
}

/** A .npy file around an arbitrary header text, padded the way numpy pads. */
function rawNpy(dict: string, data: Uint8Array = new Uint8Array(0), version = 1): Uint8Array {
  const prefix = version === 1 ? 10 : 12;
  const text = new TextEncoder().encode(dict);
  const headerLen = text.length + 1 + (64 - ((prefix + text.length + 1) % 64));
  const out = new Uint8Array(prefix + headerLen + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const view = new DataView(out.buffer);
  if (version === 1) view.setUint16(8, headerLen, true);
  else view.setUint32(8, headerLen, true);
  out.fill(0x20, prefix, prefix + headerLen - 1);
  out.set(text, prefix);
  out[prefix + headerLen - 1] = 0x0a;
  out.set(data, prefix + headerLen);
  return out;
}

const dict = (descr: string, shape: string, fortran = 'False') =>
  `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': ${shape}, }`;

function assertQuantError(fn: () => unknown, code: string, message?: RegExp | string): void {
  assert.throws(fn, (err: unknown) => {
    const e = err as { code?: string; message: string };
    assert.equal(e.code, code, `wrong error: ${String(err)}`);
    if (typeof message === 'string') assert.equal(e.message, message);
    else if (message) assert.match(e.message, message);
    return true;
  });
}
const npyError = (fn: () => unknown, message?: RegExp | string) => assertQuantError(fn, 'QUANT_ERR_NPY', message);

describe('readNpy on files numpy wrote', () => {
  for (const [name, want] of Object.entries(expected.readers)) {
    it(`${name}: ${want.descr} shape (${want.shape.join(', ')})${want.fortranOrder ? ' Fortran order' : ''}`, () => {
      const { header, data } = readNpy(fixture(name), LIMITS);
      assert.deepEqual(header.shape, want.shape);
      assert.equal(header.dtype, DTYPE_OF[want.descr.slice(1)]);
      assert.equal(header.littleEndian, !want.descr.startsWith('>'));
      assert.equal(header.fortranOrder, want.fortranOrder);
      assert.equal(header.version, want.version[0]);
      assert.equal(header.dataOffset % 64, 0);
      assertSameFloats(data, want.values.map(fromJson));
    });
  }

  it('reads Python 2 long literals, double quotes and odd spacing in the header', () => {
    const data = new Uint8Array(new Float32Array([1, 2, 3, 4, 5, 6]).buffer);
    const file = rawNpy(`{"descr":"<f4",  "shape":(2L,3L),"fortran_order":False}`, data);
    const { header, data: out } = readNpy(file, LIMITS);
    assert.deepEqual(header.shape, [2, 3]);
    assertSameFloats(out, [1, 2, 3, 4, 5, 6]);
  });

  it('reads data whose offset is not aligned within the ArrayBuffer', () => {
    const file = fixture('f64.npy');
    const shifted = new Uint8Array(file.length + 3).subarray(3);
    shifted.set(file);
    assertSameFloats(readNpy(shifted, LIMITS).data, expected.readers['f64.npy']!.values.map(fromJson));
  });
});

describe('encodeNpy matches numpy byte for byte', () => {
  const arrays: Record<string, (v: number[]) => ArrayBufferView> = {
    '|i1': (v) => Int8Array.from(v),
    '|u1': (v) => Uint8Array.from(v),
    '<i2': (v) => Int16Array.from(v),
    '<u2': (v) => Uint16Array.from(v),
    '<f4': (v) => Float32Array.from(v),
  };
  for (const [name, want] of Object.entries(expected.writers)) {
    it(`${name}: ${want.descr} shape (${want.shape.join(', ')})`, () => {
      const file = fixture(name);
      const data = arrays[want.descr]!(want.values);
      assert.deepEqual(encodeNpy(data, want.descr, want.shape), file);
      const header = npyHeaderBytes(want.descr, want.shape);
      assert.deepEqual(header, file.subarray(0, header.length));
      assert.equal(file.length - header.length, data.byteLength);
    });
  }

  it('switches to format 2.0 when the header outgrows 65535 bytes', () => {
    const shape = new Array<number>(30000).fill(1);
    const header = npyHeaderBytes('<f4', shape);
    assert.equal(header[6], 2);
    const len = new DataView(header.buffer).getUint32(8, true);
    assert.equal(12 + len, header.length);
    assert.equal(header.length % 64, 0);
    assert.equal(header[header.length - 1], 0x0a);
  });

  it('encodes a view into a larger buffer without the bytes around it', () => {
    const backing = new Int16Array([99, 1, -2, 3, 99]);
    assert.deepEqual(encodeNpy(backing.subarray(1, 4), '<i2', [3]), encodeNpy(Int16Array.from([1, -2, 3]), '<i2', [3]));
  });

  it('rejects data whose length does not match the shape, and bad shapes or descrs', () => {
    assertQuantError(() => encodeNpy(new Float32Array(5), '<f4', [2, 3]), 'QUANT_ERR_TENSOR_DATA', /needs 24 bytes but the data has 20/);
    assertQuantError(() => encodeNpy(new Float32Array(0), '<f4', [-1]), 'QUANT_ERR_TENSOR_SHAPE', /shape\[0\]/);
    assertQuantError(() => npyHeaderBytes("<f4'", [1]), 'QUANT_ERR_DTYPE');
  });
});

describe('round trips (property)', () => {
  const shapeAndCount = fc
    .array(fc.integer({ min: 1, max: 5 }), { maxLength: 4 })
    .map((shape) => ({ shape, n: shape.reduce((a, b) => a * b, 1) }));

  it('float32 arrays survive encodeNpy -> readNpy bit for bit, in C and Fortran order', () => {
    fc.assert(
      fc.property(
        shapeAndCount.chain(({ shape, n }) =>
          fc.tuple(fc.constant(shape), fc.float32Array({ minLength: n, maxLength: n })),
        ),
        ([shape, values]) => {
          const c = encodeNpy(values, '<f4', shape);
          assert.equal(npyHeaderBytes('<f4', shape).length % 64, 0);
          const data = readNpy(c, LIMITS).data;
          assert.deepEqual(new Uint32Array(data.buffer, data.byteOffset, data.length), new Uint32Array(values.buffer));

          // Same values laid out in Fortran order under a header that says so.
          const f = new Float32Array(values.length);
          const cStrides = shape.map((_, k) => shape.slice(k + 1).reduce((a, b) => a * b, 1));
          const fStrides = shape.map((_, k) => shape.slice(0, k).reduce((a, b) => a * b, 1));
          for (let i = 0; i < values.length; i++) {
            const fi = shape.reduce((acc, d, k) => acc + (Math.floor(i / cStrides[k]!) % d) * fStrides[k]!, 0);
            f[fi] = values[i]!;
          }
          const text = new TextDecoder().decode(npyHeaderBytes('<f4', shape).subarray(10)).trimEnd();
          const fortran = rawNpy(text.replace('False', 'True '), new Uint8Array(f.buffer));
          const read = readNpy(fortran, LIMITS);
          assert.equal(read.header.fortranOrder, true);
          assert.deepEqual(new Uint32Array(read.data.buffer, read.data.byteOffset, read.data.length), new Uint32Array(values.buffer));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('float64 (little and big endian) reads as Math.fround of each value', () => {
    fc.assert(
      fc.property(fc.float64Array({ maxLength: 50 }), fc.boolean(), (values, big) => {
        const bytes = new Uint8Array(values.length * 8);
        const view = new DataView(bytes.buffer);
        values.forEach((v, i) => view.setFloat64(i * 8, v, !big));
        const { data } = readNpy(rawNpy(dict(big ? '>f8' : '<f8', `(${values.length},)`), bytes), LIMITS);
        assert.deepEqual(data, Float32Array.from(values, Math.fround));
      }),
      { numRuns: 200 },
    );
  });
});

describe('bad input', () => {
  const good = fixture('f32_c_2d.npy');

  it('refuses empty, short and non-NPY buffers', () => {
    npyError(() => parseNpyHeader(new Uint8Array(0), LIMITS), 'NPY file is too short: 0 bytes, but the magic string and version alone take 8');
    npyError(() => parseNpyHeader(good.subarray(0, 9), LIMITS), /truncated inside the 2-byte header length/);
    npyError(() => readNpy(new TextEncoder().encode('PK\x03\x04 this is a zip'), LIMITS), /does not start with the magic string/);
  });

  it('refuses unknown format versions', () => {
    for (const [major, minor] of [[4, 0], [1, 1], [0, 0]]) {
      const file = good.slice();
      file[6] = major!;
      file[7] = minor!;
      npyError(() => parseNpyHeader(file, LIMITS), `NPY format version ${major}.${minor} is not supported; only 1.0, 2.0 and 3.0 are`);
    }
  });

  it('refuses a truncated header and a header length beyond the buffer', () => {
    npyError(() => parseNpyHeader(good.subarray(0, 40), LIMITS), 'NPY header is truncated: it declares 118 bytes but only 30 bytes follow');
    const v1 = good.slice();
    new DataView(v1.buffer).setUint16(8, 0xffff, true);
    npyError(() => readNpy(v1, LIMITS), /declares 65535 bytes but only 166 bytes follow/);
    const v2 = rawNpy(dict('<f4', '(1,)'), new Uint8Array(4), 2);
    new DataView(v2.buffer).setUint32(8, 0xfffffff0, true);
    npyError(() => readNpy(v2, LIMITS), /declares 4294967280 bytes/);
  });

  it('refuses headers longer than numpy would read', () => {
    const file = rawNpy(dict('<f4', '(1,)') + ' '.repeat(20000), new Uint8Array(4), 2);
    npyError(() => parseNpyHeader(file, LIMITS), /NPY header is \d+ bytes; more than 10000 is refused/);
  });

  it('refuses headers that are not a dict literal, or not valid Python at all', () => {
    npyError(() => parseNpyHeader(rawNpy('[1, 2]'), LIMITS), 'NPY header is not a dict: it is a list');
    npyError(() => parseNpyHeader(rawNpy("'<f4'"), LIMITS), "NPY header is not a dict: it is the string '<f4'");
    npyError(() => parseNpyHeader(rawNpy("{'descr': '<f4', 'shape': (2,"), LIMITS), /not a valid Python literal: unexpected end of header/);
    npyError(() => parseNpyHeader(rawNpy("__import__('os').system('true')"), LIMITS), /unexpected name '__import__'/);
    npyError(() => parseNpyHeader(rawNpy("{'descr': '<f4'} {}"), LIMITS), /unexpected '\{' after the dict/);
    npyError(() => parseNpyHeader(rawNpy("{'descr': '<f4}"), LIMITS), /unterminated string/);
    npyError(() => parseNpyHeader(rawNpy('{1: 2}'), LIMITS), /dict keys must be strings, got the int 1/);
    npyError(() => parseNpyHeader(rawNpy('('.repeat(40)), LIMITS), /nesting deeper than 16 levels/);
  });

  it('refuses missing and unexpected keys', () => {
    npyError(() => parseNpyHeader(rawNpy("{'descr': '<f4', 'fortran_order': False}"), LIMITS), "NPY header is missing the key(s) 'shape'");
    npyError(() => parseNpyHeader(rawNpy('{}'), LIMITS), "NPY header is missing the key(s) 'descr', 'fortran_order', 'shape'");
    npyError(
      () => parseNpyHeader(rawNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", new Uint8Array(4)), LIMITS),
      /unexpected key\(s\) 'x'/,
    );
  });

  it('names each unsupported dtype', () => {
    const cases: Array<[string, string]> = [
      ['|O', 'Python object'],
      ['<c8', 'complex'],
      ['<i4', 'signed integer'],
      ['|u1', 'unsigned integer'],
      ['|b1', 'bool'],
      ['<U3', 'unicode string'],
      ['|S5', 'byte string'],
      ['|V2', 'void / raw or structured record'],
      ['<M8[ns]', 'datetime'],
      ['<f16', 'a 128-bit float'],
    ];
    for (const [descr, what] of cases) {
      npyError(
        () => readNpy(rawNpy(dict(descr, '(1,)'), new Uint8Array(16)), LIMITS),
        `NPY header: unsupported dtype '${descr}' (${what}); only float16, float32 and float64 are accepted`,
      );
    }
    npyError(() => parseNpyHeader(rawNpy(dict('bogus', '(1,)')), LIMITS), /'bogus' is not a valid dtype descriptor/);
    npyError(
      () => parseNpyHeader(rawNpy("{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (1,)}"), LIMITS),
      /structured dtypes/,
    );
    npyError(() => parseNpyHeader(rawNpy("{'descr': 4, 'fortran_order': False, 'shape': (1,)}"), LIMITS), /'descr' must be a dtype string, got the int 4/);
  });

  it('refuses malformed fortran_order and shape values', () => {
    npyError(() => parseNpyHeader(rawNpy(dict('<f4', '(1,)', '1')), LIMITS), "NPY header: 'fortran_order' must be True or False, got the int 1");
    npyError(() => parseNpyHeader(rawNpy(dict('<f4', '[2, 3]')), LIMITS), "NPY header: 'shape' must be a tuple of ints, got a list");
    npyError(() => parseNpyHeader(rawNpy(dict('<f4', '(3)')), LIMITS), "NPY header: 'shape' must be a tuple of ints, got the int 3");
    npyError(() => parseNpyHeader(rawNpy(dict('<f4', '(2.5,)')), LIMITS), 'NPY header: shape[0] must be an int, got the float 2.5');
    npyError(() => parseNpyHeader(rawNpy(dict('<f4', '(2, -3)')), LIMITS), 'NPY header: shape[1] is -3; dimensions must be non-negative');
  });

  it('applies MAX_DIMS and MAX_ELEMENTS before allocating anything', () => {
    assertQuantError(
      () => parseNpyHeader(rawNpy(dict('<f4', `(${'1, '.repeat(9)})`)), LIMITS),
      'QUANT_ERR_TENSOR_SHAPE',
      'NPY shape has 9 dimensions; the limit is MAX_DIMS=8',
    );
    // 10^11 float32 would be 400 GB: reaching the allocation would throw a RangeError instead.
    const huge = rawNpy(dict('<f4', '(100000, 1000000)'), new Uint8Array(8));
    assert.throws(
      () => readNpy(huge, LIMITS),
      (err: { code?: string; statusCode?: number; message: string }) =>
        err.code === 'QUANT_ERR_TOO_MANY_ELEMENTS' &&
        err.statusCode === 413 &&
        err.message === 'NPY shape (100000, 1000000) declares 100000000000 elements; the limit is MAX_ELEMENTS=1000000',
    );
    // With a generous limit the length check still comes before the allocation.
    npyError(() => readNpy(huge, { maxElements: 1e12, maxDims: 8 }), /header declares 100000000000 elements \(400000000000 bytes\) but 8 bytes follow/);
    const absurd = rawNpy(dict('<f4', `(${'9'.repeat(400)},)`));
    assertQuantError(() => readNpy(absurd, LIMITS), 'QUANT_ERR_TOO_MANY_ELEMENTS', /limit is MAX_ELEMENTS/);
    npyError(() => readNpy(rawNpy(dict('<f4', `(0, ${'9'.repeat(30)})`)), LIMITS), /shape\[1\] is 9{30}, too large/);
  });

  it('refuses truncated data and trailing bytes', () => {
    npyError(() => readNpy(good.subarray(0, good.length - 4), LIMITS), 'NPY data is truncated: header declares 12 elements (48 bytes) but 44 bytes follow');
    const longer = new Uint8Array(good.length + 3);
    longer.set(good);
    npyError(() => readNpy(longer, LIMITS), 'NPY data has 3 unexpected trailing bytes after the 12 elements (48 bytes) the header declares');
  });

  it('refuses a format 3.0 header that is not UTF-8', () => {
    const file = rawNpy(dict('<f4', '(1,)'), new Uint8Array(4), 3);
    file[20] = 0xff;
    npyError(() => parseNpyHeader(file, LIMITS), 'NPY header (format 3.0) is not valid UTF-8');
  });
});

describe('fuzzing: only QUANT_ERR_* errors escape', () => {
  function onlyQuantErrors(bytes: Uint8Array): void {
    for (const fn of [parseNpyHeader, readNpy]) {
      try {
        fn(bytes, LIMITS);
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (typeof code !== 'string' || !code.startsWith('QUANT_ERR_')) throw err;
      }
    }
  }
  const magic = new Uint8Array([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);

  it('random bytes, with and without a valid magic and version', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.constantFrom(0, 1, 2, 3), (tail, version) => {
        onlyQuantErrors(tail);
        const withMagic = new Uint8Array(8 + tail.length);
        withMagic.set(magic);
        withMagic[6] = version;
        withMagic.set(tail, 8);
        onlyQuantErrors(withMagic);
      }),
      { numRuns: 2000 },
    );
  });

  it('random mutations and truncations of valid files', () => {
    const files = ['f32_c_2d.npy', 'f16.npy', 'f64_be_fortran_2d.npy', 'f32_v3.npy', 'f32_0d.npy'].map(fixture);
    fc.assert(
      fc.property(
        fc.constantFrom(...files),
        fc.array(fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 6 }),
        fc.option(fc.nat()),
        (file, edits, cut) => {
          const mutated = file.slice(0, cut === null ? file.length : cut % (file.length + 1));
          // Most edits land in the header, where the parsing happens.
          for (const { at, byte } of edits) if (mutated.length) mutated[at % Math.min(mutated.length, 128)] = byte;
          onlyQuantErrors(mutated);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('header text built from Python-literal tokens', () => {
    const token = fc.constantFrom('{', '}', '(', ')', '[', ']', ',', ':', ' ', "'descr'", "'shape'", "'fortran_order'", "'<f4'", '"<f2"',
      'True', 'False', 'None', '1', '-1', '0', '2L', '1e5', '3.5', "'", '\\', '\n', 'x');
    fc.assert(
      fc.property(fc.array(token, { maxLength: 40 }), fc.uint8Array({ maxLength: 64 }), (tokens, data) => {
        onlyQuantErrors(rawNpy(tokens.join(''), data));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('zero copy', () => {
  it('reads aligned little-endian float32 in C order as a view of the file, anything else as a copy', () => {
    const values = Float32Array.of(1.5, -2, 3.25, 0);
    const file = encodeNpy(values, '<f4', [2, 2]);
    const view = readNpy(file, LIMITS).data;
    assert.equal(view.buffer, file.buffer);
    assert.deepEqual(Array.from(view), Array.from(values));
    // At an odd offset the data cannot be viewed as float32: it is copied.
    const shifted = new Uint8Array(file.length + 1);
    shifted.set(file, 1);
    const copied = readNpy(shifted.subarray(1), LIMITS).data;
    assert.notEqual(copied.buffer, shifted.buffer);
    assert.deepEqual(Array.from(copied), Array.from(values));
  });
});

describe('readNpyArray (every numeric dtype, for calibration data)', () => {
  it('reads integer and bool arrays as little-endian C-order bytes, from either byte order and Fortran order', () => {
    const le = readNpyArray(encodeNpy(BigInt64Array.from([1n, -2n, 3n]), '<i8', [3]), LIMITS);
    assert.equal(le.header.dtype, 'int64');
    assert.deepEqual(Array.from(new BigInt64Array(le.bytes.buffer)), [1n, -2n, 3n]);
    const be = new Uint8Array(8);
    new DataView(be.buffer).setInt32(0, -5, false);
    new DataView(be.buffer).setInt32(4, 70000, false);
    const got = readNpyArray(rawNpy("{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }", be), LIMITS);
    assert.deepEqual(Array.from(new Int32Array(got.bytes.buffer)), [-5, 70000]);
    // Fortran [[1, 2, 3], [4, 5, 6]] is stored column by column: 1 4 2 5 3 6.
    const f = readNpyArray(rawNpy("{'descr': '<u2', 'fortran_order': True, 'shape': (2, 3), }", new Uint8Array(Uint16Array.from([1, 4, 2, 5, 3, 6]).buffer)), LIMITS);
    assert.deepEqual(Array.from(new Uint16Array(f.bytes.buffer)), [1, 2, 3, 4, 5, 6]);
    const b = readNpyArray(rawNpy("{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", Uint8Array.from([1, 0, 1])), LIMITS);
    assert.equal(b.header.dtype, 'bool');
    assert.deepEqual(Array.from(b.bytes), [1, 0, 1]);
  });

  it('still refuses what onnxruntime cannot take, and readNpy still takes floats only', () => {
    assert.throws(() => readNpyArray(rawNpy("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", new Uint8Array(8)), LIMITS), /unsupported dtype '<c8'.*only bool, int8/);
    assert.throws(() => readNpy(encodeNpy(new Int32Array(2), '<i4', [2]), LIMITS), /unsupported dtype '<i4'.*only float16, float32 and float64/);
  });
});
