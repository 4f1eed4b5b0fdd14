import assert from 'node:assert/strict';
import { test } from 'node:test';
import request from 'supertest';
import { sleep } from '../pool/faults.js';
import { testApp } from './helpers.js';

const quantize = (app: Awaited<ReturnType<typeof testApp>>) => request(app.server).post('/v1/quantize').send({ tensor: { data: [1, 2, 3] } });

test('over MAX_HEAP_USED_BYTES, work is refused with 503 + Retry-After in our format; probes and docs still answer', async () => {
  const app = await testApp({ maxHeapUsedBytes: 1, maxEventLoopDelayMs: 0 }, { pressureSampleMs: 20 });
  await sleep(100);
  const res = await quantize(app);
  assert.equal(res.status, 503);
  assert.deepEqual(Object.keys(res.body).sort(), ['code', 'error', 'message', 'statusCode']);
  assert.equal(res.body.code, 'QUANT_ERR_OVERLOADED');
  assert.match(res.body.message, /heap holds \d+ bytes \(limit MAX_HEAP_USED_BYTES=1\)/);
  assert.equal(res.headers['retry-after'], '5');
  assert.equal((await request(app.server).get('/healthz')).status, 200, 'liveness must not fail under load');
  const ready = await request(app.server).get('/readyz');
  assert.equal(ready.status, 503, 'readiness reports the pressure so balancers send work elsewhere');
  assert.equal(ready.body.status, 'not_ready');
  assert.equal((await request(app.server).get('/openapi.json')).status, 200);
});

test('a blocked event loop past MAX_EVENT_LOOP_DELAY_MS sheds work until it recovers', async () => {
  // The pressure lasts one sample interval after the block: 400 ms leaves a loaded machine
  // time to get a request in (100 ms was missed once in CI).
  const app = await testApp({ maxEventLoopDelayMs: 50, maxHeapUsedBytes: 0 }, { pressureSampleMs: 400 });
  assert.equal((await quantize(app)).status, 200);
  // What a huge synchronous JSON parse does to the main thread.
  const end = Date.now() + 1200;
  while (Date.now() < end);
  let shed: request.Response | undefined;
  for (let i = 0; i < 100 && !shed; i++) {
    const res = await quantize(app);
    if (res.status === 503) shed = res;
    else await sleep(5);
  }
  assert.ok(shed, 'no request was refused after the event loop was blocked for 1.2 s');
  assert.equal(shed.body.code, 'QUANT_ERR_OVERLOADED');
  assert.match(shed.body.message, /event loop is delayed by \d+ ms \(limit MAX_EVENT_LOOP_DELAY_MS=50\)/);
  assert.equal(shed.headers['retry-after'], '5');
  let recovered = false;
  for (let i = 0; i < 100 && !recovered; i++) {
    recovered = (await quantize(app)).status === 200;
    if (!recovered) await sleep(20);
  }
  assert.ok(recovered, 'the service kept refusing work after the event loop recovered');
});

test('with the guards off, nothing is shed', async () => {
  const app = await testApp({ maxHeapUsedBytes: 0, maxEventLoopDelayMs: 0 }, { pressureSampleMs: 20 });
  await sleep(60);
  assert.equal((await quantize(app)).status, 200);
  assert.equal((await request(app.server).get('/readyz')).status, 200);
});
