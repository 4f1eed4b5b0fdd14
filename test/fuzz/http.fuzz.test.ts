import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { encodeNpy, readNpy } from '../../src/codecs/npy.js';
import { pack } from '../../src/core/pack.js';
import { quantize } from '../../src/core/quantize.js';
import { givenParams } from '../../src/core/given.js';
import { quantizeWithReference } from '../../src/core/reference/quantize.js';
import { testApp } from '../http/helpers.js';

// Over HTTP (in process, through fastify's inject): whatever arrives, the answer is a 2xx
// that is right, or a 4xx in our error format. Never a 5xx.

const MAX_ELEMENTS = 1 << 16;
const app: FastifyInstance = await testApp({ maxElements: MAX_ELEMENTS, bodyLimit: 1 << 20 });
const RUNS = { seed: 0x5eed, numRuns: 150 } as const;
const ROUTES = ['/v1/quantize', '/v1/dequantize', '/v1/analyze', '/v1/matmul'];
const TYPES = ['application/json', 'application/x-npy', 'application/x-npz', 'application/octet-stream', 'text/plain', 'application/x-www-form-urlencoded', 'image/png', ''];

interface Answer {
  statusCode: number;
  body: string;
}

async function post(url: string, contentType: string, payload: Buffer | string): Promise<Answer> {
  const headers = contentType ? { 'content-type': contentType } : {};
  const res = await app.inject({ method: 'POST', url, headers, payload });
  return { statusCode: res.statusCode, body: res.body };
}

function assertNot5xx(res: Answer, what: string) {
  // fast-check reports the failing input, not this message: print it for the record.
  if (res.statusCode >= 500) console.error(`5xx: ${what} → ${res.statusCode} ${res.body.slice(0, 300)}`);
  assert.ok(res.statusCode < 500, `${what} → ${res.statusCode} ${res.body.slice(0, 300)}`);
  if (res.statusCode >= 400) {
    const body = JSON.parse(res.body);
    assert.deepEqual(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'], what);
    assert.equal(body.statusCode, res.statusCode);
    assert.match(body.code, /^QUANT_ERR_[A-Z0-9_]+$/);
  }
}

/** Mostly valid, sometimes not: enough of both to check answers and refusals. */
const mostly = <T, U>(valid: fc.Arbitrary<T>, invalid: fc.Arbitrary<U>) => fc.oneof({ weight: 5, arbitrary: valid }, { weight: 1, arbitrary: invalid });

const options = fc.record(
  {
    bits: mostly(fc.integer({ min: 2, max: 16 }), fc.constantFrom(1, 17, '4.5', 'x', '')),
    scheme: mostly(fc.constantFrom('symmetric', 'asymmetric'), fc.constant('signed')),
    granularity: mostly(fc.constantFrom('per_tensor', 'per_channel', 'per_group'), fc.constant('per_row')),
    axis: fc.integer({ min: -4, max: 3 }),
    group_size: mostly(fc.integer({ min: 1, max: 9 }), fc.constantFrom(0, -1)),
    calibration: mostly(fc.constantFrom('minmax', 'percentile', 'mse'), fc.constant('kl')),
    percentile: mostly(fc.double({ min: 50, max: 100, noNaN: true }), fc.constantFrom(0, -1, 101)),
  },
  { requiredKeys: [] },
);

function queryOf(o: Record<string, unknown>): string {
  return new URLSearchParams(Object.entries(o).map(([k, v]): [string, string] => [k, String(v)])).toString();
}

/** A small valid .npy, float32, 1-3 dims. */
const npyFile = fc
  .record({ shape: fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 3 }), seed: fc.integer() })
  .map(({ shape, seed }) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = Float32Array.from({ length: n }, (_, i) => Math.sin(seed + i * 1.7) * 10);
    return Buffer.from(encodeNpy(data, '<f4', shape));
  });

/** A 200 must be what the core computes from the same bytes and options. */
function checkAgainstCore(file: Buffer, o: Record<string, unknown>, res: Answer) {
  const { header, data } = readNpy(new Uint8Array(file), { maxElements: MAX_ELEMENTS, maxDims: 8 });
  const granularity = (o.granularity ?? 'per_tensor') as 'per_tensor' | 'per_channel' | 'per_group';
  const ref = quantize(data, header.shape, {
    bits: Number(o.bits ?? 8),
    scheme: (o.scheme ?? 'symmetric') as 'symmetric' | 'asymmetric',
    granularity,
    axis: o.axis === undefined ? (granularity === 'per_group' ? -1 : 0) : Number(o.axis),
    groupSize: Number(o.group_size ?? 128),
    calibration: (o.calibration ?? 'minmax') as 'minmax' | 'percentile' | 'mse',
    percentile: Number(o.percentile ?? 99.99),
  });
  const reply = JSON.parse(res.body);
  assert.deepEqual(reply.shape, header.shape);
  assert.deepEqual([reply.scale].flat(8), Array.from(ref.params.scale));
  assert.deepEqual([reply.zero_point].flat(8), Array.from(ref.params.zeroPoint));
  assert.equal(reply.quantized.data, Buffer.from(pack(ref.q, ref.params.dtype)).toString('base64'));
}

test('random bytes, any Content-Type, any route: never a 5xx', async () => {
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...ROUTES), fc.constantFrom(...TYPES), fc.uint8Array({ maxLength: 2048 }), async (route, type, bytes) => {
      assertNot5xx(await post(route, type, Buffer.from(bytes)), `${route} ${type}`);
    }),
    RUNS,
  );
});

test('mutated valid .npy files with random options: a correct answer or a 4xx', async () => {
  const mutation = fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }), cut: fc.option(fc.nat(), { nil: undefined, freq: 4 }) });
  let answered = 0;
  await fc.assert(
    fc.asyncProperty(npyFile, fc.oneof(fc.constant([]), fc.array(mutation, { minLength: 1, maxLength: 3 })), options, async (file, mutations, o) => {
      const bytes = Buffer.from(file);
      for (const m of mutations) bytes[m.at % bytes.length] = m.value;
      const cut = mutations.find((m) => m.cut !== undefined)?.cut;
      const body = cut === undefined ? bytes : bytes.subarray(0, cut % bytes.length);
      const res = await post(`/v1/quantize?${queryOf(o)}`, 'application/x-npy', body);
      assertNot5xx(res, `npy with ${queryOf(o)}`);
      if (res.statusCode === 200) {
        answered++;
        checkAgainstCore(body, o, res);
      }
    }),
    { ...RUNS, numRuns: 250 },
  );
  assert.ok(answered >= 25, `only ${answered} answers were checked against the core`);
});

test('mutated JSON request texts: never a 5xx', async () => {
  const valid = [
    '{"tensor":{"data":[[1,2,3],[4,5,6]]},"bits":4,"granularity":"per_channel"}',
    '{"tensor":{"b64":"AACAPwAAAEA=","shape":[2],"dtype":"float32"}}',
    '{"a":{"data":[[1,2],[3,4]]},"b":{"data":[[1],[2]]},"bits":8}',
    '{"tensor":{"data":[1,2,3,4]},"bits":[2,8],"target_snr_db":20}',
  ];
  const edit = fc.record({ at: fc.nat(), kind: fc.constantFrom('delete', 'insert', 'replace'), char: fc.constantFrom(...'{}[]",:-.0123456789eE ntrufalse\\'.split('')) });
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...valid), fc.array(edit, { minLength: 1, maxLength: 4 }), fc.constantFrom(...ROUTES), async (text, edits, route) => {
      let s = text;
      for (const e of edits) {
        const i = e.at % (s.length + 1);
        s = e.kind === 'delete' ? s.slice(0, i) + s.slice(i + 1) : e.kind === 'insert' ? s.slice(0, i) + e.char + s.slice(i) : s.slice(0, i) + e.char + s.slice(i + 1);
      }
      assertNot5xx(await post(route, 'application/json', s), `${route} ${s}`);
    }),
    { ...RUNS, numRuns: 300 },
  );
});

test('arbitrary JSON values as bodies and tensors: never a 5xx', async () => {
  const json = fc.jsonValue({ maxDepth: 5 });
  const body = fc.oneof(
    json,
    fc.record({ tensor: fc.record({ data: fc.array(json, { maxLength: 8 }), shape: fc.option(fc.array(fc.integer({ min: -1, max: 9 }), { maxLength: 9 }), { nil: undefined }) }, { requiredKeys: ['data'] }) }),
    fc.record({ a: fc.record({ data: fc.array(json, { maxLength: 6 }) }), b: fc.record({ data: fc.array(json, { maxLength: 6 }) }) }),
  );
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...ROUTES), body, options, async (route, value, o) => {
      assertNot5xx(await post(`${route}?${queryOf(o)}`, 'application/json', JSON.stringify(value) ?? 'null'), `${route} ${JSON.stringify(value)}`);
    }),
    { ...RUNS, numRuns: 300 },
  );
});

test('given scale and zero_point (any numbers, shapes and forms, NaN/Inf data): a 200 is the reference\'s integers, else a 4xx', async () => {
  const param = fc.oneof(
    { weight: 6, arbitrary: fc.double({ min: 1e-4, max: 10, noNaN: true }) },
    fc.integer({ min: -3, max: 300 }),
    fc.double({ min: -1, max: 1e3 }),
    fc.array(fc.oneof(fc.double({ min: 1e-6, max: 10, noNaN: true }), fc.integer({ min: -300, max: 300 })), { maxLength: 12 }),
    fc.array(fc.array(fc.double({ min: 1e-3, max: 5, noNaN: true }), { maxLength: 4 }), { maxLength: 4 }),
    fc.array(fc.double({ min: 1e-3, max: 5, noNaN: true }), { maxLength: 8 }).map((a) => a.join(',')),
    fc.constantFrom('x', '', '1,,2', '1e400'),
  );
  const zeroPoints = fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 2, arbitrary: fc.integer({ min: 0, max: 3 }) }, { weight: 1, arbitrary: param });
  const special = fc.array(fc.constantFrom(NaN, Infinity, -Infinity, 0, -0, 3.5), { maxLength: 3 });
  let answered = 0;
  await fc.assert(
    fc.asyncProperty(npyFile, options, param, zeroPoints, special, async (file, o, scale, zeroPoint, extra) => {
      const { header, data } = readNpy(new Uint8Array(file), { maxElements: MAX_ELEMENTS, maxDims: 8 });
      const x = Float32Array.from(data);
      extra.forEach((v, i) => (x[i % x.length] = v));
      const body = Buffer.from(encodeNpy(x, '<f4', header.shape));
      const q = { ...o, scale: Array.isArray(scale) ? scale.flat().join(',') : String(scale), ...(zeroPoint === undefined ? {} : { zero_point: Array.isArray(zeroPoint) ? zeroPoint.flat().join(',') : String(zeroPoint) }) };
      const res = await post(`/v1/quantize?${queryOf(q)}`, 'application/x-npy', body);
      assertNot5xx(res, `given ${queryOf(q)}`);
      if (res.statusCode !== 200) return;
      answered++;
      const reply = JSON.parse(res.body);
      const granularity = reply.granularity as 'per_tensor' | 'per_channel' | 'per_group';
      const spec = { bits: reply.bits, scheme: reply.scheme, granularity, axis: reply.axis ?? 0, groupSize: reply.group_size ?? 1 };
      const params = givenParams(header.shape, spec, { data: [reply.scale].flat(8) as number[], shape: 'flat' }, { data: [reply.zero_point].flat(8) as number[], shape: 'flat' });
      const ref = quantizeWithReference(x, params);
      assert.equal(reply.quantized.data, Buffer.from(pack(ref.q, params.dtype)).toString('base64'));
    }),
    RUNS,
  );
  assert.ok(answered > 5, `only ${answered} of ${RUNS.numRuns} given-parameter requests were answered`);
});

test('the service still answers correctly after the fuzzing', async () => {
  const res = await post('/v1/quantize', 'application/json', '{"tensor":{"data":[1,2,3]},"include_values":true}');
  assert.equal(res.statusCode, 200);
  assert.deepEqual(JSON.parse(res.body).quantized.values, [42, 85, 127]);
});
