import assert from 'node:assert/strict';
import { test } from 'node:test';
import request from 'supertest';
import { encodeNpy } from '../../src/codecs/npy.js';
import { eventually } from '../pool/faults.js';
import { captureLogs, testApp } from './helpers.js';

const logs = captureLogs();
const app = await testApp({}, { logger: logs.logger });
const server = () => request(app.server);

const linesOf = (reqId: string) => logs.lines().filter((l) => l.reqId === reqId);
const completed = async (reqId: string) => {
  assert.ok(await eventually(() => linesOf(reqId).some((l) => l.msg === 'request completed'), 2000));
  return linesOf(reqId).find((l) => l.msg === 'request completed')!;
};
/** The id of the latest request to `url`, from its incoming line. */
const idOf = (url: string) => {
  const line = logs.lines().filter((l) => l.msg === 'incoming request' && l.url === url).at(-1);
  assert.ok(line, `no incoming line for ${url}`);
  return line.reqId as string;
};

test('each request logs its id, route, status, duration, bytes and tensor shape', async () => {
  const npy = Buffer.from(encodeNpy(new Float32Array(24).fill(0.5), '<f4', [2, 3, 4]));
  const res = await server().post('/v1/quantize?bits=4&tag=1').set('content-type', 'application/x-npy').send(npy);
  assert.equal(res.status, 400, 'an unknown query parameter is refused');
  const ok = await server().post('/v1/quantize?bits=4').set('content-type', 'application/x-npy').send(npy);
  assert.equal(ok.status, 200);
  const line = await completed(idOf('/v1/quantize?bits=4'));
  assert.equal(line.route, '/v1/quantize');
  assert.equal(line.method, 'POST');
  assert.equal(line.statusCode, 200);
  assert.equal(typeof line.durationMs, 'number');
  assert.equal(line.requestBytes, npy.length);
  assert.equal(line.responseBytes, Buffer.byteLength(ok.text));
  assert.deepEqual(line.shape, [2, 3, 4]);
  assert.equal(line.elements, 24);
  assert.equal(line.op, 'quantize');
});

test('a refused request logs its error code with its status', async () => {
  const res = await server().post('/v1/quantize').send({ tensor: { data: [1, null] } });
  assert.equal(res.status, 400);
  const line = await completed(idOf('/v1/quantize'));
  assert.equal(line.statusCode, 400);
  assert.equal(line.code, 'QUANT_ERR_TENSOR_DATA');
});

test('tensor values and quantized data never reach the log', async () => {
  const marker = [1234.5678, -8765.4321, 4321.125];
  const res = await server().post('/v1/quantize').send({ tensor: { data: marker }, include_values: true });
  assert.equal(res.status, 200);
  await completed(idOf('/v1/quantize'));
  const text = logs.text();
  for (const v of marker) assert.ok(!text.includes(String(v)), `${v} is in the log`);
  assert.ok(!text.includes(res.body.quantized.data), 'the packed integers are in the log');
});
