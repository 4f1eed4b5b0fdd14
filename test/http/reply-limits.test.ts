import assert from 'node:assert/strict';
import { test } from 'node:test';
import request from 'supertest';
import { decodeNpz } from '../../src/codecs/npz.js';
import { binaryParser, f32Base64, gaussian, testApp } from './helpers.js';

// Replies are tensors too: a reply that would not fit one JavaScript string, or a product far
// bigger than its operands, is refused with a message that says what to ask for instead.
const app = await testApp({ maxJsonReplyBytes: 16 * 1024, maxElements: 1 << 20 });
const server = () => request(app.server);
const tensor = { b64: f32Base64(gaussian(64 * 64, 5)), shape: [64, 64] };

test('a JSON reply past MAX_JSON_REPLY_BYTES is a 406 that names the .npz alternative', async () => {
  const res = await server().post('/v1/quantize').send({ tensor, granularity: 'per_group', group_size: 1 }).expect(406);
  assert.equal(res.body.code, 'QUANT_ERR_NOT_ACCEPTABLE');
  assert.match(res.body.message, /4096 scales and zero points.*MAX_JSON_REPLY_BYTES.*application\/x-npz/);
  const values = await server().post('/v1/quantize').send({ tensor, bits: 16, include_values: true }).expect(406);
  assert.match(values.body.message, /4096 values.*leave out include_values/);
  await server().post('/v1/quantize').send({ tensor, granularity: 'per_group', group_size: 8 }).expect(200);
});

test('the same request as .npz succeeds; report.json leaves the big parameter arrays to the .npy files', async () => {
  const res = await server()
    .post('/v1/quantize')
    .set('accept', 'application/x-npz')
    .send({ tensor, granularity: 'per_group', group_size: 1 })
    .buffer(true)
    .parse(binaryParser)
    .expect(200);
  const entries = decodeNpz(new Uint8Array(res.body as Buffer));
  const report = JSON.parse(Buffer.from(entries.find((e) => e.name === 'report.json')!.data).toString());
  assert.equal(report.scale, undefined);
  assert.equal(report.zero_point, undefined);
  assert.deepEqual(report.shape, [64, 64]);
  assert.ok(entries.find((e) => e.name === 'scale.npy')!.data.length > 4 * 4096);
});

test('a matmul whose result would pass MAX_ELEMENTS is a 413 before it is computed', async () => {
  const col = { b64: f32Base64(gaussian(2048, 1)), shape: [2048, 1] };
  const row = { b64: f32Base64(gaussian(1024, 2)), shape: [1, 1024] };
  const res = await server().post('/v1/matmul').send({ a: col, b: row }).expect(413);
  assert.equal(res.body.code, 'QUANT_ERR_TOO_MANY_ELEMENTS');
  assert.match(res.body.message, /2097152 result elements; the limit is MAX_ELEMENTS=1048576/);
});
