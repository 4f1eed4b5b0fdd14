import assert from 'node:assert/strict';
import { test } from 'node:test';
import request from 'supertest';
import { encodeNpy } from '../../src/codecs/npy.js';
import { decodeNpz } from '../../src/codecs/npz.js';
import { unpack } from '../../src/core/pack.js';
import { calibrate, dequantizeWith, quantize } from '../../src/core/quantize.js';
import { DequantizeResponse, QuantizeResponse } from '../../src/http/schemas/quantize.js';
import { binaryParser, decodeF32, f32Base64, gaussian, testApp } from './helpers.js';
import { KERNEL_SUM_REL } from '../core/sums-close.js';

const app = await testApp();
const server = () => request(app.server);

test('JSON data: the reply matches the core bit for bit and the response schema', async () => {
  const data = gaussian(64, 3);
  const res = await server()
    .post('/v1/quantize')
    .send({ tensor: { data, shape: [8, 8] }, bits: 4, scheme: 'asymmetric', granularity: 'per_channel', include_values: true })
    .expect(200)
    .expect('content-type', /application\/json/);
  const body = QuantizeResponse.parse(res.body);
  const ref = quantize(new Float32Array(data), [8, 8], {
    bits: 4, scheme: 'asymmetric', granularity: 'per_channel', axis: 0, groupSize: 128, calibration: 'minmax', percentile: 99.99,
  });
  assert.deepEqual(body.scale, Array.from(ref.params.scale));
  assert.deepEqual(body.zero_point, Array.from(ref.params.zeroPoint));
  assert.equal(body.quantized.dtype, 'uint4');
  assert.deepEqual(body.quantized.values, Array.from(ref.q));
  const packed = Buffer.from(body.quantized.data, 'base64');
  assert.equal(packed.length, 32);
  assert.deepEqual(Array.from(unpack(packed, 64, 'uint4')), Array.from(ref.q));
  assert.equal(body.axis, 0);
  assert.equal(body.group_size, null);
  assert.deepEqual(body.calibration, { method: 'minmax', percentile: null });
  assert.equal(body.size.quantized_bytes, 32 + 8 * 4 + 4);
});

test('nested data infers the shape; per_group gives the blocked scale shape', async () => {
  const rows = [gaussian(5, 1), gaussian(5, 2), gaussian(5, 3)];
  const res = await server().post('/v1/quantize').send({ tensor: { data: rows }, granularity: 'per_group', group_size: 2 }).expect(200);
  assert.deepEqual(res.body.shape, [3, 5]);
  assert.equal(res.body.axis, 1);
  assert.equal(res.body.scale.length, 3);
  assert.equal(res.body.scale[0].length, 3);
  assert.equal(res.body.quantized.values, undefined);
});

test('b64 input in float16, bfloat16 and float64 is converted to float32', async () => {
  const half = Buffer.from(new Uint16Array([0x3c00, 0xc000, 0x3800, 0x0000]).buffer).toString('base64'); // 1, -2, 0.5, 0
  const bf16 = Buffer.from(new Uint16Array([0x3f80, 0xc000, 0x3f00, 0x0000]).buffer).toString('base64');
  const f64 = Buffer.from(new Float64Array([1, -2, 0.5, 0]).buffer).toString('base64');
  for (const [dtype, b64] of [['float16', half], ['bfloat16', bf16], ['float64', f64], ['float32', f32Base64([1, -2, 0.5, 0])]]) {
    const res = await server().post('/v1/quantize').send({ tensor: { b64, dtype, shape: [4] }, include_values: true }).expect(200);
    assert.equal(res.body.scale, Math.fround(2 / 127), dtype);
    assert.deepEqual(res.body.quantized.values, [64, -127, 32, 0], dtype);
  }
});

test('NPY and raw bodies take options from the query string', async () => {
  const data = new Float32Array(gaussian(24, 9));
  const npy = await server()
    .post('/v1/quantize?bits=8&granularity=per_channel&axis=-1&include_values=true')
    .set('content-type', 'application/x-npy')
    .send(Buffer.from(encodeNpy(data, '<f4', [2, 3, 4])))
    .expect(200);
  const raw = await server()
    .post('/v1/quantize?bits=8&granularity=per_channel&axis=-1&include_values=true&shape=2,3,4')
    .set('content-type', 'application/octet-stream')
    .send(Buffer.from(data.buffer))
    .expect(200);
  assert.deepEqual(npy.body, raw.body);
  assert.deepEqual(npy.body.shape, [2, 3, 4]);
  assert.equal(npy.body.scale.length, 4);
  const f64 = await server()
    .post('/v1/quantize?shape=2,3,4&dtype=float64&include_values=true&granularity=per_channel&axis=2')
    .set('content-type', 'application/octet-stream')
    .send(Buffer.from(Float64Array.from(data).buffer))
    .expect(200);
  assert.deepEqual(f64.body.quantized.values, npy.body.quantized.values);
});

test('query options fill in what a JSON body leaves out', async () => {
  const res = await server().post('/v1/quantize?bits=3&include_values=1').send({ tensor: { data: [1, -1, 0.5] } }).expect(200);
  assert.equal(res.body.bits, 3);
  assert.deepEqual(res.body.quantized.values, [3, -3, 2]);
});

test('Accept: application/x-npz returns quantized, scale, zero_point and report.json', async () => {
  const data = gaussian(40, 5);
  const res = await server()
    .post('/v1/quantize')
    .set('accept', 'application/x-npz')
    .send({ tensor: { data, shape: [4, 10] }, bits: 12, scheme: 'asymmetric', granularity: 'per_group', group_size: 4 })
    .buffer(true)
    .parse(binaryParser)
    .expect(200)
    .expect('content-type', 'application/x-npz');
  assert.match(res.headers['content-disposition'] ?? '', /attachment; filename="quantized.npz"/);
  const entries = decodeNpz(new Uint8Array(res.body as Buffer));
  assert.deepEqual(entries.map((e) => e.name), ['quantized.npy', 'scale.npy', 'zero_point.npy', 'report.json']);
  const report = JSON.parse(Buffer.from(entries[3]!.data).toString());
  assert.equal(report.quantized.dtype, 'uint16');
  assert.deepEqual(report.shape, [4, 10]);
  const q = entries[0]!.data;
  const header = Buffer.from(q.subarray(0, 128)).toString('latin1');
  assert.match(header, /'descr': '<u2'/);
  assert.match(header, /'shape': \(4, 10\)/);
  assert.match(Buffer.from(entries[1]!.data.subarray(0, 128)).toString('latin1'), /'shape': \(4, 3\)/);
});

test('dequantize takes the quantize reply as is, in JSON and as .npy', async () => {
  const data = gaussian(30, 11);
  for (const options of [
    { bits: 8 },
    { bits: 4, scheme: 'asymmetric', granularity: 'per_group', group_size: 4 },
    { bits: 2, granularity: 'per_channel', axis: 1 },
    { bits: 16, scheme: 'asymmetric', granularity: 'per_channel', axis: -1 },
  ]) {
    const q = await server().post('/v1/quantize').send({ tensor: { data, shape: [5, 6] }, ...options }).expect(200);
    const dq = await server().post('/v1/dequantize').send(q.body).expect(200);
    const body = DequantizeResponse.parse(dq.body);
    const x = decodeF32(body.data);
    let sq = 0;
    for (let i = 0; i < data.length; i++) sq += (data[i]! - x[i]!) ** 2;
    // The report's sums are within KERNEL_SUM_REL of float64 (test/core/sums-close.ts).
    assert.ok(Math.abs(sq / data.length - q.body.error.mse) <= KERNEL_SUM_REL * q.body.error.mse, JSON.stringify(options));
    const npy = await server().post('/v1/dequantize').set('accept', 'application/x-npy').send(q.body).buffer(true).parse(binaryParser).expect(200);
    assert.equal((npy.body as Buffer).subarray((npy.body as Buffer).length - 4 * 30).equals(Buffer.from(x.buffer)), true);
  }
});

test('dequantize rejects a reply whose parts do not fit together', async () => {
  const q = await server().post('/v1/quantize').send({ tensor: { data: [1, 2, 3, 4] }, granularity: 'per_channel' }).expect(200);
  const wrongDtype = await server().post('/v1/dequantize').send({ ...q.body, quantized: { ...q.body.quantized, dtype: 'int4' } }).expect(400);
  assert.match(wrongDtype.body.message, /quantized\.dtype is int4/);
  const wrongScale = await server().post('/v1/dequantize').send({ ...q.body, scale: [1, 2] }).expect(400);
  assert.match(wrongScale.body.message, /scale has shape \[2\]; granularity per_channel on axis 0 of a \[4\] tensor needs shape \[4\]/);
  const short = await server().post('/v1/dequantize').send({ ...q.body, quantized: { ...q.body.quantized, data: 'AAA=' } }).expect(400);
  assert.match(short.body.message, /decodes to 2 bytes/);
});

test('bodies big enough to be read into a kernel arena give the core\'s results (NPY, raw, base64)', async () => {
  const n = 3 * 2 ** 18; // 3 MiB of float32, above ARENA_MIN_BYTES
  const x = new Float32Array(gaussian(n, 11));
  const spec = { bits: 4, scheme: 'asymmetric', granularity: 'per_group', axis: -1, groupSize: 64, calibration: 'minmax', percentile: 99.99 } as const;
  const ref = quantize(x, [768, 1024], spec);
  const query = 'bits=4&scheme=asymmetric&granularity=per_group&group_size=64&include_values=true';
  const npy = await server().post(`/v1/quantize?${query}`).set('content-type', 'application/x-npy').send(Buffer.from(encodeNpy(x, '<f4', [768, 1024]))).expect(200);
  const raw = await server().post(`/v1/quantize?${query}&shape=768,1024`).set('content-type', 'application/octet-stream').send(Buffer.from(x.buffer)).expect(200);
  const b64 = await server()
    .post('/v1/quantize')
    .send({ tensor: { b64: Buffer.from(x.buffer).toString('base64'), shape: [768, 1024] }, bits: 4, scheme: 'asymmetric', granularity: 'per_group', group_size: 64, include_values: true })
    .expect(200);
  for (const [name, res] of [['npy', npy], ['raw', raw], ['b64', b64]] as const) {
    assert.deepEqual(res.body.scale.flat(), Array.from(ref.params.scale), name);
    assert.deepEqual(res.body.zero_point.flat(), Array.from(ref.params.zeroPoint), name);
    assert.deepEqual(res.body.quantized.values, Array.from(ref.q), name);
    assert.equal(res.body.error.max_error, ref.sums.maxError, name);
  }
});

test('a dequantized reply big enough for an arena is the same floats, as .npy and JSON', async () => {
  const n = 2 ** 18 + 3; // > 1 MiB of float32 out
  const x = new Float32Array(gaussian(n, 5));
  const spec = { bits: 8, scheme: 'symmetric', granularity: 'per_tensor', axis: 0, groupSize: 1, calibration: 'minmax', percentile: 99.99 } as const;
  const q = await server().post('/v1/quantize?bits=8&shape=' + n).set('content-type', 'application/octet-stream').send(Buffer.from(x.buffer)).expect(200);
  const ref = dequantizeWith(quantize(x, [n], spec).q, calibrate(x, [n], spec));
  const npy = await server().post('/v1/dequantize').set('accept', 'application/x-npy').send(q.body).buffer(true).parse(binaryParser).expect(200);
  const body = npy.body as Buffer;
  assert.ok(body.subarray(body.length - 4 * n).equals(Buffer.from(ref.buffer)));
  const json = await server().post('/v1/dequantize').send(q.body).expect(200);
  assert.ok(Buffer.from(json.body.data, 'base64').equals(Buffer.from(ref.buffer)));
});
