import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeBase64, decodeJsonData } from '../../src/core/tensor.js';
import { FUZZ, okOr4xx } from './expect.js';

const limits = { maxElements: 1 << 14, maxDims: 8 };

/** Rectangular nested arrays of finite numbers, with their shape and flat values. */
const rectangular = fc
  .array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 })
  .chain((shape) => {
    const n = shape.reduce((a, b) => a * b, 1);
    return fc.record({ shape: fc.constant(shape), flat: fc.array(fc.double({ noNaN: true, min: -1e30, max: 1e30 }), { minLength: n, maxLength: n }) });
  })
  .map(({ shape, flat }) => {
    let pos = 0;
    const build = (d: number): unknown[] => Array.from({ length: shape[d]! }, () => (d === shape.length - 1 ? flat[pos++] : build(d + 1)));
    return { shape, flat, nested: build(0) };
  });

test('decodeJsonData on any JSON: a 4xx error of ours or a float32 tensor of the shape it reports', () => {
  const anyData = fc.array(fc.jsonValue({ maxDepth: 6 }), { maxLength: 12 });
  const declared = fc.option(fc.array(fc.integer({ min: -2, max: 6 }), { maxLength: 10 }), { nil: undefined });
  fc.assert(
    fc.property(anyData, declared, (data, shape) => {
      const r = okOr4xx(() => decodeJsonData(data, shape, limits));
      if (!r.ok) return;
      assert.equal(r.value.data.length, r.value.shape.reduce((a, b) => a * b, 1));
      assert.ok(r.value.data.every((v) => Number.isFinite(v)));
    }),
    FUZZ,
  );
});

test('decodeJsonData on nested and flat rectangular data returns the values as float32', () => {
  fc.assert(
    fc.property(rectangular, ({ shape, flat, nested }) => {
      const expected = flat.map(Math.fround);
      if (expected.some((v) => !Number.isFinite(v))) return;
      const fromNested = decodeJsonData(nested, undefined, limits);
      assert.deepEqual(fromNested.shape, shape);
      assert.deepEqual(Array.from(fromNested.data), expected);
      const fromFlat = decodeJsonData(flat, shape, limits);
      assert.deepEqual(Array.from(fromFlat.data), expected);
    }),
    { ...FUZZ, numRuns: 500 },
  );
});

test('decodeJsonData on rectangular data with one element spoiled names it', () => {
  const spoiler = fc.constantFrom<unknown>(null, 'x', true, [], [1], {}, NaN, Infinity, -Infinity, 1e39);
  fc.assert(
    fc.property(rectangular, fc.nat(), spoiler, ({ flat, shape }, at, bad) => {
      // [[x]] with shape [1] is the one-element tensor x, nested: a reshape, not bad data.
      fc.pre(!(flat.length === 1 && Array.isArray(bad) && bad.length === 1));
      const data: unknown[] = flat.slice();
      data[at % data.length] = bad;
      const r = okOr4xx(() => decodeJsonData(data, shape, limits));
      assert.equal(r.ok, false, `a tensor with ${JSON.stringify(bad)} at ${at % data.length} was accepted`);
    }),
    FUZZ,
  );
});

test('decodeBase64 on any text, dtype and shape: a 4xx error of ours or the right number of finite values', () => {
  const dtype = fc.constantFrom('float32', 'float64', 'float16', 'bfloat16' as const);
  const text = fc.oneof(fc.string({ maxLength: 64 }), fc.base64String({ maxLength: 64 }), fc.uint8Array({ maxLength: 48 }).map((b) => Buffer.from(b).toString('base64')));
  fc.assert(
    fc.property(text, dtype, fc.array(fc.integer({ min: -1, max: 8 }), { maxLength: 4 }), (b64, dt, shape) => {
      const r = okOr4xx(() => decodeBase64(b64, dt, shape, limits));
      if (r.ok) {
        assert.equal(r.value.data.length, shape.reduce((a, b) => a * b, 1));
        assert.ok(r.value.data.every((v) => Number.isFinite(v)));
      }
    }),
    FUZZ,
  );
});
