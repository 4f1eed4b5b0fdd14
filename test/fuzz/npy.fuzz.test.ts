import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { encodeNpy, readNpy } from '../../src/codecs/npy.js';
import { FUZZ, okOr4xx } from './expect.js';

const limits = { maxElements: 1 << 16, maxDims: 8 };
const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];

function checkConsistent(result: ReturnType<typeof readNpy>) {
  const n = result.header.shape.reduce((a, b) => a * b, 1);
  assert.equal(result.data.length, n);
  assert.ok(result.header.shape.length <= limits.maxDims);
  assert.ok(n <= limits.maxElements);
}

/** A valid file: float32/float64/float16 data, C or Fortran order, 0-4 dims. */
const validNpy = fc
  .record({
    shape: fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 4 }),
    descr: fc.constantFrom('<f4', '>f4', '<f8', '<f2'),
    seed: fc.integer(),
  })
  .map(({ shape, descr, seed }) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const values = Array.from({ length: n }, (_, i) => Math.fround(Math.sin(seed + i) * 100));
    const bytes = descr.endsWith('8') ? new Float64Array(values) : descr.endsWith('2') ? halfBytes(values) : new Float32Array(values);
    const file = encodeNpy(bytes, descr === '>f4' ? '<f4' : descr, shape);
    if (descr === '>f4') swapToBigEndian(file, n);
    return { file, shape, values, descr };
  });

function halfBytes(values: number[]): Uint16Array {
  // Small integers and halves are exact in float16; keep the fuzz about parsing, not rounding.
  return new Uint16Array(values.map(() => 0x3c00)); // 1.0
}

function swapToBigEndian(file: Uint8Array, n: number) {
  const text = Buffer.from(file).toString('latin1');
  file.set(Buffer.from(text.replace("'<f4'", "'>f4'"), 'latin1'));
  const start = file.length - 4 * n;
  for (let i = start; i < file.length; i += 4) file.subarray(i, i + 4).reverse();
}

test('readNpy on random bytes: a 4xx error of ours or a consistent tensor, never anything else', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
      const r = okOr4xx(() => readNpy(bytes, limits));
      if (r.ok) checkConsistent(r.value);
    }),
    FUZZ,
  );
});

test('readNpy on random bytes behind a valid magic, version and header length', () => {
  const framed = fc.record({ major: fc.integer({ min: 0, max: 4 }), len: fc.integer({ min: 0, max: 70000 }), rest: fc.uint8Array({ maxLength: 400 }) }).map(({ major, len, rest }) => {
    const lenBytes = major === 1 ? [len & 0xff, (len >> 8) & 0xff] : [len & 0xff, (len >> 8) & 0xff, (len >> 16) & 0xff, 0];
    return Uint8Array.from([...MAGIC, major, 0, ...lenBytes, ...rest]);
  });
  fc.assert(
    fc.property(framed, (bytes) => {
      const r = okOr4xx(() => readNpy(bytes, limits));
      if (r.ok) checkConsistent(r.value);
    }),
    FUZZ,
  );
});

test('readNpy on headers built from Python-literal fragments', () => {
  const fragment = fc.constantFrom(
    "'descr'", "'fortran_order'", "'shape'", "'<f4'", "'>f8'", "'|O'", "'<c8'", "'<U3'", '[', ']', '(', ')', '{', '}', ':', ',', ' ',
    'True', 'False', 'None', '1', '0', '-1', '3L', '1e3', '99999999999999999999', "'", '"', '\\', '\n', "b'x'", '((((((((((((((((((',
  );
  const header = fc.array(fragment, { maxLength: 40 }).map((parts) => {
    const text = parts.join('').padEnd(118, ' ') + '\n';
    const len = Buffer.byteLength(text, 'latin1');
    return Uint8Array.from([...MAGIC, 1, 0, len & 0xff, len >> 8, ...Buffer.from(text, 'latin1'), ...new Uint8Array(16)]);
  });
  fc.assert(
    fc.property(header, (bytes) => {
      const r = okOr4xx(() => readNpy(bytes, limits));
      if (r.ok) checkConsistent(r.value);
    }),
    FUZZ,
  );
});

test('readNpy on valid files returns exactly what was written', () => {
  fc.assert(
    fc.property(validNpy, ({ file, shape, values, descr }) => {
      const { header, data } = readNpy(file, limits);
      assert.deepEqual(header.shape, shape);
      if (descr.endsWith('2')) assert.ok(data.every((v) => v === 1));
      else assert.deepEqual(Array.from(data), values);
    }),
    { ...FUZZ, numRuns: 300 },
  );
});

test('readNpy on mutated valid files (flipped, overwritten, cut or grown): 4xx or a consistent tensor', () => {
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
    fc.record({ kind: fc.constant('grow' as const), extra: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
  );
  fc.assert(
    fc.property(validNpy, fc.array(mutation, { minLength: 1, maxLength: 4 }), ({ file }, mutations) => {
      let bytes = Uint8Array.from(file);
      for (const m of mutations) {
        if (bytes.length === 0) break;
        if (m.kind === 'flip') bytes[m.at % bytes.length]! ^= 1 << m.bit;
        else if (m.kind === 'set') bytes[m.at % bytes.length] = m.value;
        else if (m.kind === 'cut') bytes = bytes.subarray(0, m.at % bytes.length);
        else bytes = Uint8Array.from([...bytes, ...m.extra]);
      }
      const r = okOr4xx(() => readNpy(bytes, limits));
      if (r.ok) checkConsistent(r.value);
    }),
    FUZZ,
  );
});
