// POST /v1/quantize with given scale and zero_point, and POST /v1/dequantize as ONNX
// DequantizeLinear, replayed against the NumPy vectors of test/fixtures/generate_given.py in
// every body the API takes: JSON, .npy with the parameters in the query string, and .npz.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import request from 'supertest';
import { encodeNpy, readNpyNumeric } from '../../src/codecs/npy.js';
import { decodeNpz, encodeNpz } from '../../src/codecs/npz.js';
import { unpack } from '../../src/core/pack.js';
import { nest } from '../../src/core/shape.js';
import { INT_DTYPE_INFO } from '../../src/core/dtypes.js';
import { DequantizeResponse, QuantizeResponse } from '../../src/http/schemas/quantize.js';
import { f32FromHex, loadGivenCases, type GivenCase } from '../fixtures/given/load.js';
import { binaryParser, decodeF32, testApp } from './helpers.js';
import { KERNEL_SUM_REL } from '../core/sums-close.js';

const app = await testApp();
const server = () => request(app.server);
const cases = loadGivenCases();

function options(c: GivenCase) {
  return { bits: c.bits, scheme: c.scheme, granularity: c.granularity, axis: c.axis, ...(c.group_size ? { group_size: c.group_size } : {}) };
}

const scaleOf = (c: GivenCase) => f32FromHex(c.scale_bits);
const nested = (flat: ArrayLike<number>, shape: number[]) => nest(Array.from(flat), shape);

function npzOf(members: Record<string, { data: ArrayBufferView; descr: string; shape: number[] }>): Buffer {
  return Buffer.from(encodeNpz(Object.entries(members).map(([name, m]) => ({ name: `${name}.npy`, data: encodeNpy(m.data, m.descr, m.shape) }))));
}

function checkReply(c: GivenCase, body: ReturnType<typeof QuantizeResponse.parse>, how: string): void {
  const n = c.q.length;
  assert.equal(body.quantized.dtype, c.dtype, how);
  assert.deepEqual(Array.from(unpack(Buffer.from(body.quantized.data, 'base64'), n, c.dtype)), c.q, `${c.name} (${how})`);
  assert.deepEqual(body.calibration, { method: 'given', percentile: null });
  assert.equal(body.error.clipped, c.clipped, how);
  assert.equal(body.error.max_error, c.max_error, how);
  // The kernels' error sums are within KERNEL_SUM_REL of float64.
  assert.ok(Math.abs(body.error.mse - c.mse) <= KERNEL_SUM_REL * Math.max(c.mse, 1e-300), how);
  assert.deepEqual(body.scale, c.scale_shape.length ? nested(scaleOf(c), c.scale_shape) : scaleOf(c)[0]);
}

test('JSON bodies: given scale and zero_point as nested arrays quantize to NumPy\'s integers; dequantize gives its floats', async () => {
  for (const c of cases.filter((k) => k.finite)) {
    const x = Array.from(f32FromHex(c.x_bits));
    const scale = c.scale_shape.length ? nested(scaleOf(c), c.scale_shape) : scaleOf(c)[0];
    const zero_point = c.scale_shape.length ? nested(c.zero_point, c.scale_shape) : c.zero_point[0];
    const res = await server().post('/v1/quantize').send({ tensor: { data: x, shape: c.shape }, ...options(c), scale, zero_point }).expect(200);
    checkReply(c, QuantizeResponse.parse(res.body), 'json');
    const dq = await server().post('/v1/dequantize').send(res.body).expect(200);
    assert.deepEqual(Array.from(decodeF32(DequantizeResponse.parse(dq.body).data)), Array.from(f32FromHex(c.dq_bits)), c.name);
    // DequantizeLinear from the integers alone: bits and scheme follow from the dtype.
    const { bits: _b, scheme: _s, ...rest } = options(c);
    const fromValues = await server()
      .post('/v1/dequantize')
      .send({ shape: c.shape, ...(c.bits === INT_DTYPE_INFO[c.dtype].storageBits ? rest : options(c)), quantized: { dtype: c.dtype, values: c.q }, scale, zero_point })
      .expect(200);
    assert.deepEqual(Array.from(decodeF32(fromValues.body.data)), Array.from(f32FromHex(c.dq_bits)), `${c.name} from values`);
  }
});

test('.npy bodies take scale and zero_point from the query string, comma-separated in C order; NaN and ±Inf are quantized as QuantizeLinear does', async () => {
  for (const c of cases) {
    const x = f32FromHex(c.x_bits);
    const query = { ...options(c), scale: Array.from(scaleOf(c)).join(','), zero_point: c.zero_point.join(',') };
    const res = await server()
      .post('/v1/quantize')
      .query(query)
      .set('content-type', 'application/x-npy')
      .send(Buffer.from(encodeNpy(x, '<f4', c.shape)))
      .expect(200);
    const body = QuantizeResponse.parse(res.body);
    checkReply(c, body, 'npy');
    assert.equal(body.error.non_finite, c.non_finite > 0 ? c.non_finite : undefined);
  }
});

test('.npz bodies: tensor, scale and zero_point members (any numeric dtype); the .npz reply dequantizes as it is', async () => {
  for (const c of cases) {
    const info = INT_DTYPE_INFO[c.dtype];
    const zp = info.create(c.zero_point.length);
    zp.set(c.zero_point);
    const body = npzOf({
      tensor: { data: f32FromHex(c.x_bits), descr: '<f4', shape: c.shape },
      scale: { data: Float64Array.from(scaleOf(c)), descr: '<f8', shape: c.scale_shape },
      zero_point: { data: zp, descr: info.npyDescr, shape: c.scale_shape },
    });
    const res = await server()
      .post('/v1/quantize')
      .query(options(c))
      .set('content-type', 'application/x-npz')
      .set('accept', 'application/x-npz')
      .send(body)
      .buffer(true)
      .parse(binaryParser)
      .expect(200);
    const reply = Buffer.from(res.body as Buffer);
    const entries = decodeNpz(new Uint8Array(reply));
    const q = entries.find((e) => e.name === 'quantized.npy')!.data;
    const ints = readNpyNumeric(q, { maxElements: 1e9, maxDims: 8 });
    assert.equal(ints.dtype, info.unpackedName);
    assert.deepEqual(Array.from(ints.data), c.q, c.name);
    // The reply goes back to /v1/dequantize as it is: its report.json carries the options.
    const dq = await server().post('/v1/dequantize').set('content-type', 'application/x-npz').set('accept', 'application/x-npy').send(reply).buffer(true).parse(binaryParser).expect(200);
    const floats = new Float32Array(new Uint8Array(dq.body as Buffer).slice(-4 * c.q.length).buffer);
    assert.deepEqual(Array.from(floats), Array.from(f32FromHex(c.dq_bits)), `${c.name} npz dequantize`);
  }
});

test('bad given parameters are 400s naming the field, the index and the expected shape', async () => {
  const tensor = { data: [[1, 2, 3], [4, 5, 6]] };
  const bad = async (body: object, pattern: RegExp, code = 'QUANT_ERR_OPTION') => {
    const res = await server().post('/v1/quantize').send({ tensor, ...body }).expect(400);
    assert.equal(res.body.code, code, JSON.stringify(body));
    assert.match(res.body.message, pattern);
  };
  await bad({ scale: 0 }, /scale must be a positive finite float32, got: 0/);
  await bad({ scale: -0.5 }, /scale must be a positive finite float32, got: -0.5/);
  await bad({ granularity: 'per_channel', scale: [0.1, 0] }, /scale\[1\] must be a positive finite float32, got: 0/);
  await bad({ granularity: 'per_channel', scale: [0.1, 0.2, 0.3] }, /scale has shape \[3\]; granularity per_channel on axis 0 of a \[2, 3\] tensor needs shape \[2\]/);
  await bad({ scale: [0.1, 0.2] }, /granularity per_tensor takes one number; for one scale per channel set granularity=per_channel/);
  await bad({ granularity: 'per_channel', scale: 0.1 }, /a single number is a per_tensor scale: set granularity=per_tensor/);
  await bad({ granularity: 'per_group', group_size: 2, scale: [[1], [1]] }, /needs shape \[2, 2\]/);
  await bad({ scale: 0.1, zero_point: 200 }, /zero_point must be an integer in \[-128, 127\] \(int8, bits=8, scheme=symmetric\), got: 200/);
  await bad({ scale: 0.1, zero_point: 1.5 }, /zero_point must be an integer .* got: 1.5/);
  await bad({ scale: 0.1, bits: 4, scheme: 'asymmetric', zero_point: 16 }, /\[0, 15\] \(uint4/);
  await bad({ zero_point: 3 }, /zero_point was given without scale/);
  // In the query string: the list must parse, and its length fit the parameter shape.
  const npy = Buffer.from(encodeNpy(Float32Array.of(1, 2, 3, 4), '<f4', [2, 2]));
  const q = (query: object) => server().post('/v1/quantize').query(query).set('content-type', 'application/x-npy').send(npy).expect(400);
  assert.match((await q({ scale: '0.1,abc', granularity: 'per_channel' })).body.message, /scale: item 1 of the comma-separated list is not a number: 'abc'/);
  assert.match((await q({ scale: 'NaN' })).body.message, /item 0 .* 'NaN'/);
  assert.match((await q({ scale: '0.1,0.2,0.3', granularity: 'per_channel' })).body.message, /needs shape \[2\] \(2 comma-separated values in C order\)/);
  // NaN in the data still needs given scales: calibration cannot use it.
  const nan = Buffer.from(encodeNpy(Float32Array.of(1, NaN), '<f4', [2]));
  const r = await server().post('/v1/quantize').set('content-type', 'application/x-npy').send(nan).expect(400);
  assert.equal(r.body.code, 'QUANT_ERR_NON_FINITE');
  // An .npz body: both a query scale and a member, a stray member, no tensor.
  const f32 = { data: Float32Array.of(1, 2), descr: '<f4', shape: [2] };
  const z = (query: object, members: Parameters<typeof npzOf>[0]) => server().post('/v1/quantize').query(query).set('content-type', 'application/x-npz').send(npzOf(members)).expect(400);
  assert.match((await z({ scale: 0.1 }, { tensor: f32, scale: { data: Float32Array.of(0.1), descr: '<f4', shape: [] } })).body.message, /scale is both in the query string and a member/);
  assert.match((await z({}, { tensor: f32, weights: f32 })).body.message, /member 'weights.npy'; it may hold only tensor.npy, scale.npy, zero_point.npy/);
  assert.match((await z({}, { scale: f32 })).body.message, /no member tensor.npy/);
  // Any integer dtype holds a zero point (int32 here), as long as its values fit the type.
  const ok = await server().post('/v1/quantize').set('content-type', 'application/x-npz')
    .send(npzOf({ tensor: f32, scale: { data: Float32Array.of(0.5), descr: '<f4', shape: [] }, zero_point: { data: Int32Array.of(7), descr: '<i4', shape: [] } })).expect(200);
  assert.deepEqual(ok.body.zero_point, 7);
  assert.deepEqual(Array.from(unpack(Buffer.from(ok.body.quantized.data, 'base64'), 2, 'int8')), [9, 11]);
  assert.match((await z({}, { tensor: f32, scale: { data: Float32Array.of(0.5), descr: '<f4', shape: [] }, zero_point: { data: Int32Array.of(700), descr: '<i4', shape: [] } })).body.message, /zero_point must be an integer in \[-128, 127\]/);
});
