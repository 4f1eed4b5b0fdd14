import assert from 'node:assert/strict';
import { test } from 'node:test';
import request from 'supertest';
import { encodeNpy } from '../../src/codecs/npy.js';
import { f32Base64, portOf, testApp } from './helpers.js';
import { openSocket, readResponse } from './raw-http.js';

const app = await testApp({ bodyLimit: 1024 * 1024, maxElements: 100_000 });
const server = () => request(app.server);

interface Case {
  name: string;
  status: number;
  code: string;
  message: RegExp;
  send: () => request.Test;
}

const json = (body: unknown, path = '/v1/quantize') => () => server().post(path).send(body as object);
const raw = (type: string, body: Buffer | string, query = '') => () => server().post(`/v1/quantize${query}`).set('content-type', type).send(body);
const npyHeader = (dict: string) => {
  const text = dict.padEnd(118, ' ') + '\n';
  return Buffer.concat([Buffer.from([0x93]), Buffer.from('NUMPY'), Buffer.from([1, 0, text.length & 0xff, text.length >> 8]), Buffer.from(text, 'latin1')]);
};

/** Reproducible noise (an LCG), so a failing case fails the same way every run. */
function seededBytes(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) out[i] = (x = (Math.imul(x, 1664525) + 1013904223) >>> 0) >>> 24;
  return out;
}

const nested = (depth: number): unknown[] => {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = [v];
  return v as unknown[];
};

const cases: Case[] = [
  { name: 'bits 1', status: 400, code: 'QUANT_ERR_VALIDATION', message: /bits/, send: json({ tensor: { data: [1] }, bits: 1 }) },
  { name: 'bits 17', status: 400, code: 'QUANT_ERR_VALIDATION', message: /bits/, send: json({ tensor: { data: [1] }, bits: 17 }) },
  { name: 'bits 4.5', status: 400, code: 'QUANT_ERR_VALIDATION', message: /bits/, send: json({ tensor: { data: [1] }, bits: 4.5 }) },
  { name: 'bits in the query', status: 400, code: 'QUANT_ERR_VALIDATION', message: /bits/, send: raw('application/octet-stream', Buffer.alloc(4), '?shape=1&bits=abc') },
  { name: 'unknown scheme', status: 400, code: 'QUANT_ERR_VALIDATION', message: /scheme/, send: json({ tensor: { data: [1] }, scheme: 'signed' }) },
  { name: 'axis out of range', status: 400, code: 'QUANT_ERR_OPTION', message: /axis 2 is out of range for a tensor of rank 2/, send: json({ tensor: { data: [[1, 2]] }, granularity: 'per_channel', axis: 2 }) },
  { name: 'group_size 0', status: 400, code: 'QUANT_ERR_VALIDATION', message: /group_size/, send: json({ tensor: { data: [1] }, group_size: 0 }) },
  { name: 'percentile 0', status: 400, code: 'QUANT_ERR_VALIDATION', message: /percentile/, send: json({ tensor: { data: [1] }, calibration: 'percentile', percentile: 0 }) },
  { name: 'percentile 101', status: 400, code: 'QUANT_ERR_VALIDATION', message: /percentile/, send: json({ tensor: { data: [1] }, percentile: 101 }) },
  { name: 'unknown option', status: 400, code: 'QUANT_ERR_VALIDATION', message: /bitz/, send: json({ tensor: { data: [1] }, bitz: 4 }) },
  { name: 'no tensor', status: 400, code: 'QUANT_ERR_VALIDATION', message: /tensor/, send: json({ bits: 4 }) },
  { name: 'data and b64 together', status: 400, code: 'QUANT_ERR_VALIDATION', message: /exactly one of data/, send: json({ tensor: { data: [1], b64: 'AAAAAA==', shape: [1] } }) },
  { name: 'ragged nesting', status: 400, code: 'QUANT_ERR_TENSOR_DATA', message: /ragged: tensor\.data\[1\] has 1 elements, expected 2/, send: json({ tensor: { data: [[1, 2], [3]] } }) },
  { name: 'null element', status: 400, code: 'QUANT_ERR_TENSOR_DATA', message: /tensor\.data\[2\] is null/, send: json({ tensor: { data: [1, 2, null] } }) },
  { name: 'string element', status: 400, code: 'QUANT_ERR_TENSOR_DATA', message: /tensor\.data\[0\]\[1\] is a string/, send: json({ tensor: { data: [[1, '2']] } }) },
  { name: 'overflow to Infinity', status: 400, code: 'QUANT_ERR_NON_FINITE', message: /Infinity at flat index 1/, send: json({ tensor: { data: [1, 1e39] } }) },
  { name: 'NaN in b64', status: 400, code: 'QUANT_ERR_NON_FINITE', message: /NaN at flat index 3 \(index \[1, 1\]\)/, send: json({ tensor: { b64: f32Base64([0, 1, 2, NaN]), shape: [2, 2] } }) },
  { name: 'negative dim', status: 400, code: 'QUANT_ERR_VALIDATION', message: /shape/, send: json({ tensor: { data: [1], shape: [-1] } }) },
  { name: 'shape/data mismatch', status: 400, code: 'QUANT_ERR_TENSOR_SHAPE', message: /shape \[2, 2\] has 4 elements but tensor\.data has 3/, send: json({ tensor: { data: [1, 2, 3], shape: [2, 2] } }) },
  { name: 'empty data', status: 400, code: 'QUANT_ERR_TENSOR_SHAPE', message: /no elements|empty/, send: json({ tensor: { data: [] } }) },
  { name: 'b64 of the wrong length', status: 400, code: 'QUANT_ERR_BASE64', message: /decodes to 8 bytes, but shape \[3\] of float32 needs 12/, send: json({ tensor: { b64: f32Base64([1, 2]), shape: [3] } }) },
  { name: 'b64 not base64', status: 400, code: 'QUANT_ERR_BASE64', message: /not valid base64/, send: json({ tensor: { b64: '!!!!', shape: [1] } }) },
  { name: 'too many elements', status: 413, code: 'QUANT_ERR_TOO_MANY_ELEMENTS', message: /MAX_ELEMENTS=100000/, send: json({ tensor: { b64: 'AAAA', shape: [100000, 100000, 10] } }) },
  { name: 'too many dims', status: 400, code: 'QUANT_ERR_TENSOR_SHAPE', message: /MAX_DIMS=8/, send: json({ tensor: { b64: 'AAAA', shape: [1, 1, 1, 1, 1, 1, 1, 1, 1] } }) },
  { name: 'body over BODY_LIMIT', status: 413, code: 'QUANT_ERR_BODY_TOO_LARGE', message: /limit of 1048576 bytes/, send: raw('application/octet-stream', Buffer.alloc(2 * 1024 * 1024), '?shape=524288') },
  { name: 'unsupported Content-Type', status: 415, code: 'QUANT_ERR_UNSUPPORTED_MEDIA_TYPE', message: /text\/csv/, send: raw('text/csv', '1,2,3') },
  { name: 'unacceptable Accept', status: 406, code: 'QUANT_ERR_NOT_ACCEPTABLE', message: /text\/csv allows none/, send: () => server().post('/v1/quantize').set('accept', 'text/csv').send({ tensor: { data: [1] } }) },
  { name: 'invalid JSON', status: 400, code: 'QUANT_ERR_BAD_JSON', message: /not valid JSON/, send: raw('application/json', '{"tensor": ') },
  { name: 'empty JSON body', status: 400, code: 'QUANT_ERR_BAD_JSON', message: /empty/, send: raw('application/json', '') },
  { name: 'raw body without shape', status: 400, code: 'QUANT_ERR_VALIDATION', message: /shape is required/, send: raw('application/octet-stream', Buffer.alloc(8)) },
  { name: 'raw body of the wrong size', status: 400, code: 'QUANT_ERR_TENSOR_SHAPE', message: /needs 3 float32 values \(12 bytes\), but 8 bytes were sent/, send: raw('application/octet-stream', Buffer.alloc(8), '?shape=3') },
  { name: 'empty raw body', status: 400, code: 'QUANT_ERR_TENSOR_SHAPE', message: /0 bytes were sent/, send: raw('application/octet-stream', Buffer.alloc(0), '?shape=3') },
  { name: 'bad NPY magic', status: 400, code: 'QUANT_ERR_NPY', message: /magic/i, send: raw('application/x-npy', Buffer.from('not an npy file at all')) },
  { name: 'truncated NPY', status: 400, code: 'QUANT_ERR_NPY', message: /truncated/i, send: raw('application/x-npy', Buffer.from(encodeNpy(new Float32Array(10), '<f4', [10])).subarray(0, 140)) },
  { name: 'object dtype NPY', status: 400, code: 'QUANT_ERR_NPY', message: /\|O/, send: raw('application/x-npy', npyHeader("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }")) },
  { name: 'complex dtype NPY', status: 400, code: 'QUANT_ERR_NPY', message: /<c8/, send: raw('application/x-npy', npyHeader("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }")) },
  { name: 'NPY declaring 10^11 elements', status: 413, code: 'QUANT_ERR_TOO_MANY_ELEMENTS', message: /MAX_ELEMENTS/, send: raw('application/x-npy', npyHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 1000000), }")) },
  { name: 'NPY with a string dtype', status: 400, code: 'QUANT_ERR_NPY', message: /<U10.*unicode string/, send: raw('application/x-npy', npyHeader("{'descr': '<U10', 'fortran_order': False, 'shape': (1,), }")) },
  { name: 'NPY with a bytes dtype', status: 400, code: 'QUANT_ERR_NPY', message: /\|S4.*byte string/, send: raw('application/x-npy', npyHeader("{'descr': '|S4', 'fortran_order': False, 'shape': (1,), }")) },
  { name: 'NPY with an integer dtype', status: 400, code: 'QUANT_ERR_NPY', message: /<i4.*signed integer/, send: raw('application/x-npy', npyHeader("{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }")) },
  { name: 'NPY header that is not a dict', status: 400, code: 'QUANT_ERR_NPY', message: /not a dict/, send: raw('application/x-npy', npyHeader('[1, 2, 3]')) },
  { name: 'NPY header that is not a Python literal', status: 400, code: 'QUANT_ERR_NPY', message: /not a valid Python literal/, send: raw('application/x-npy', npyHeader("{'descr': <f4}")) },
  { name: 'NPY cut inside its header length', status: 400, code: 'QUANT_ERR_NPY', message: /truncated inside the 2-byte header length/, send: raw('application/x-npy', Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 0x76])) },
  { name: 'NPY of version 9.0', status: 400, code: 'QUANT_ERR_NPY', message: /version 9\.0/, send: raw('application/x-npy', Buffer.concat([Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 9, 0]), Buffer.alloc(64)])) },
  { name: 'NPY with a negative dim', status: 400, code: 'QUANT_ERR_NPY', message: /shape\[0\] is -3/, send: raw('application/x-npy', npyHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (-3, 2), }")) },
  { name: 'NPY with trailing bytes', status: 400, code: 'QUANT_ERR_NPY', message: /trailing bytes/, send: raw('application/x-npy', Buffer.concat([Buffer.from(encodeNpy(new Float32Array(2), '<f4', [2])), Buffer.alloc(3)])) },
  { name: 'empty NPY body', status: 400, code: 'QUANT_ERR_NPY', message: /too short: 0 bytes/, send: raw('application/x-npy', Buffer.alloc(0)) },
  { name: 'random bytes as NPY', status: 400, code: 'QUANT_ERR_NPY', message: /magic/, send: raw('application/x-npy', seededBytes(4096, 7)) },
  { name: 'NPY with Infinity', status: 400, code: 'QUANT_ERR_NON_FINITE', message: /Infinity at flat index 5 \(index \[1, 2\]\)/, send: raw('application/x-npy', Buffer.from(encodeNpy(new Float32Array([0, 1, 2, 3, 4, Infinity]), '<f4', [2, 3]))) },
  { name: 'raw float64 with -Infinity', status: 400, code: 'QUANT_ERR_NON_FINITE', message: /-Infinity at flat index 2/, send: raw('application/octet-stream', Buffer.from(new Float64Array([1, 2, -Infinity]).buffer), '?shape=3&dtype=float64') },
  { name: 'NPY declaring 10^11 elements with MAX_DIMS dims', status: 413, code: 'QUANT_ERR_TOO_MANY_ELEMENTS', message: /declares 100000000000 elements; the limit is MAX_ELEMENTS=100000/, send: raw('application/x-npy', npyHeader("{'descr': '<f8', 'fortran_order': True, 'shape': (10, 10, 10, 10, 10, 10, 10, 10000), }")) },
  { name: 'NPY with more than MAX_DIMS dims', status: 400, code: 'QUANT_ERR_TENSOR_SHAPE', message: /9 dimensions; the limit is MAX_DIMS=8/, send: raw('application/x-npy', npyHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1), }")) },
  { name: 'shape query declaring 10^11 elements', status: 413, code: 'QUANT_ERR_TOO_MANY_ELEMENTS', message: /declares 100000000000 elements; the limit is MAX_ELEMENTS=100000/, send: raw('application/octet-stream', Buffer.alloc(16), '?shape=100000,1000000') },
  { name: 'shape query with more than MAX_DIMS dims', status: 400, code: 'QUANT_ERR_TENSOR_SHAPE', message: /MAX_DIMS=8/, send: raw('application/octet-stream', Buffer.alloc(4), '?shape=1,1,1,1,1,1,1,1,1') },
  { name: 'shape query with a negative dim', status: 400, code: 'QUANT_ERR_VALIDATION', message: /querystring\/shape/, send: raw('application/octet-stream', Buffer.alloc(4), '?shape=2,-2') },
  { name: 'shape query that is not numbers', status: 400, code: 'QUANT_ERR_VALIDATION', message: /comma-separated non-negative integers/, send: raw('application/octet-stream', Buffer.alloc(4), '?shape=a,b') },
  { name: 'JSON shape declaring 10^11 elements for a few values', status: 413, code: 'QUANT_ERR_TOO_MANY_ELEMENTS', message: /tensor\.shape \[100000, 1000000\] declares 100000000000 elements/, send: json({ tensor: { data: [1, 2, 3], shape: [100000, 1000000] } }) },
  { name: 'nested data deeper than MAX_DIMS', status: 400, code: 'QUANT_ERR_TENSOR_SHAPE', message: /12 dimensions; the limit is MAX_DIMS=8/, send: json({ tensor: { data: nested(12) } }) },
  { name: 'nested data 100000 levels deep', status: 400, code: 'QUANT_ERR_TENSOR_DATA', message: /more than 64 levels deep/, send: raw('application/json', `{"tensor":{"data":${'['.repeat(100_000)}1${']'.repeat(100_000)}}}`) },
  { name: 'boolean element', status: 400, code: 'QUANT_ERR_TENSOR_DATA', message: /tensor\.data\[1\] is a boolean/, send: json({ tensor: { data: [1, true] } }) },
  { name: 'nested array where a number belongs', status: 400, code: 'QUANT_ERR_TENSOR_DATA', message: /tensor\.data\[1\] is an array/, send: json({ tensor: { data: [1, [2]] } }) },
  { name: 'axis far out of range', status: 400, code: 'QUANT_ERR_OPTION', message: /axis -3 is out of range for a tensor of rank 2/, send: json({ tensor: { data: [[1, 2]] }, granularity: 'per_group', axis: -3 }) },
  { name: 'group_size 0 in the query', status: 400, code: 'QUANT_ERR_VALIDATION', message: /querystring\/group_size/, send: raw('application/octet-stream', Buffer.alloc(4), '?shape=1&group_size=0') },
  { name: 'percentile 101 in the query', status: 400, code: 'QUANT_ERR_VALIDATION', message: /querystring\/percentile/, send: raw('application/octet-stream', Buffer.alloc(4), '?shape=1&percentile=101') },
  { name: 'bits 4.5 in the query', status: 400, code: 'QUANT_ERR_VALIDATION', message: /querystring\/bits/, send: raw('application/octet-stream', Buffer.alloc(4), '?shape=1&bits=4.5') },
  { name: 'b64 with a wrong dtype', status: 400, code: 'QUANT_ERR_VALIDATION', message: /dtype/, send: json({ tensor: { b64: 'AAAAAA==', dtype: 'complex64', shape: [1] } }) },
  { name: 'JSON with a __proto__ key', status: 400, code: 'QUANT_ERR_BAD_JSON', message: /not valid JSON/, send: raw('application/json', '{"tensor":{"data":[1]},"__proto__":{"polluted":true}}') },
  { name: 'malformed percent-encoding in the URL', status: 400, code: 'QUANT_ERR_BAD_REQUEST', message: /URL is malformed/, send: () => server().post('/v1/quantize%zz').send({ tensor: { data: [1] } }) },
  { name: 'unknown Content-Type on analyze', status: 415, code: 'QUANT_ERR_UNSUPPORTED_MEDIA_TYPE', message: /text\/plain/, send: () => server().post('/v1/analyze').set('content-type', 'text/plain').send('1,2,3') },
  { name: 'an empty body posted as an ONNX model', status: 400, code: 'QUANT_ERR_VALIDATION', message: /send the model/, send: () => server().post('/v1/models/quantize').set('content-type', 'application/octet-stream').send(Buffer.alloc(0)) },
  { name: 'random bytes posted as an ONNX model', status: 400, code: 'QUANT_ERR_ONNX', message: /ONNX/, send: () => server().post('/v1/models/quantize').set('content-type', 'application/octet-stream').send(seededBytes(4096, 3)) },
  { name: 'an NPY file posted as an ONNX model', status: 400, code: 'QUANT_ERR_ONNX', message: /ONNX/, send: () => server().post('/v1/models/quantize').set('content-type', 'application/octet-stream').send(Buffer.from(encodeNpy(new Float32Array(64), '<f4', [8, 8]))) },
  { name: 'dequantize of garbage', status: 400, code: 'QUANT_ERR_VALIDATION', message: /body/, send: json({ hello: 1 }, '/v1/dequantize') },
  { name: 'matmul bits 9', status: 400, code: 'QUANT_ERR_VALIDATION', message: /bits/, send: json({ a: { data: [1] }, b: { data: [1] }, bits: 9 }, '/v1/matmul') },
  { name: 'analyze with an unknown calibration', status: 400, code: 'QUANT_ERR_VALIDATION', message: /calibrations/, send: json({ tensor: { data: [1] }, calibrations: ['minmax', 'kl'] }, '/v1/analyze') },
];

for (const c of cases) {
  test(`bad input: ${c.name} → ${c.status} ${c.code}, and the service still answers`, async () => {
    const res = await c.send();
    assert.equal(res.status, c.status, JSON.stringify(res.body));
    assert.deepEqual(Object.keys(res.body).sort(), ['code', 'error', 'message', 'statusCode']);
    assert.equal(res.body.statusCode, c.status);
    assert.equal(res.body.code, c.code, res.body.message);
    assert.match(res.body.message, c.message);
    assert.doesNotMatch(res.body.message, /\n\s+at /, 'no stack trace');
    const ok = await server().post('/v1/quantize').send({ tensor: { data: [1, 2, 3] } });
    assert.equal(ok.status, 200);
  });
}

// Requests too malformed for fastify's router: Node's HTTP parser rejects them, and they
// still get our JSON error (then the connection is closed: its parser state is unusable).
for (const [name, raw, status] of [
  ['a request line that is not HTTP', 'HELLO WORLD\r\n\r\n', 400],
  ['headers over 16 KiB', `GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
] as const) {
  test(`bad input: ${name} → ${status} QUANT_ERR_BAD_REQUEST, and the service still answers`, async () => {
    const socket = await openSocket(portOf(app));
    socket.write(raw);
    const res = await readResponse(socket);
    socket.destroy();
    assert.equal(res.status, status);
    const body = JSON.parse(res.body);
    assert.deepEqual(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode']);
    assert.equal(body.code, 'QUANT_ERR_BAD_REQUEST');
    assert.equal(body.statusCode, status);
    assert.equal((await server().post('/v1/quantize').send({ tensor: { data: [1, 2, 3] } })).status, 200);
  });
}
