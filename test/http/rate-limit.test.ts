import assert from 'node:assert/strict';
import { test } from 'node:test';
import request from 'supertest';
import { loadConfig } from '../../src/config.js';
import { testApp } from './helpers.js';

const KEY_A = 'alpha-key-0123456789-secret';
const KEY_B = 'bravo-key-9876543210-secret';
const tensor = { tensor: { data: [1, 2, 3] } };

test('RATE_LIMIT_MAX per minute per API key: the next request is a 429 JSON with Retry-After; other keys are unaffected', async () => {
  const app = await testApp({ apiKeys: [KEY_A, KEY_B], rateLimitMax: 3 });
  const as = (key: string) => request(app.server).post('/v1/quantize').set('authorization', `Bearer ${key}`).send(tensor);
  for (let i = 0; i < 3; i++) assert.equal((await as(KEY_A)).status, 200);
  const limited = await as(KEY_A);
  assert.equal(limited.status, 429);
  assert.deepEqual(Object.keys(limited.body).sort(), ['code', 'error', 'message', 'statusCode']);
  assert.equal(limited.body.code, 'QUANT_ERR_RATE_LIMITED');
  assert.match(limited.body.message, /RATE_LIMIT_MAX=3 .*this API key/);
  assert.ok(!limited.text.includes(KEY_A), 'the key is not echoed');
  const retryAfter = Number(limited.headers['retry-after']);
  assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After: ${limited.headers['retry-after']}`);
  assert.equal((await as(KEY_B)).status, 200, 'another key has its own budget');
  // Wrong keys are refused before they could spend anyone's budget.
  assert.equal((await request(app.server).post('/v1/quantize').set('authorization', 'Bearer nobody-nobody-nobody').send(tensor)).status, 401);
});

test('without keys the limit is per client IP, and probes are never limited', async () => {
  const app = await testApp({ rateLimitMax: 2 });
  const post = () => request(app.server).post('/v1/analyze').send({ ...tensor, bits: [8], calibrations: ['minmax'] });
  assert.equal((await post()).status, 200);
  assert.equal((await post()).status, 200);
  const limited = await post();
  assert.equal(limited.status, 429);
  assert.match(limited.body.message, /client 127\.0\.0\.1/);
  for (let i = 0; i < 5; i++) {
    assert.equal((await request(app.server).get('/healthz')).status, 200);
    assert.equal((await request(app.server).get('/readyz')).status, 200);
  }
});

test('rate limiting is off by default', async () => {
  assert.equal(loadConfig({}).rateLimitMax, 0);
  const app = await testApp({});
  for (let i = 0; i < 30; i++) assert.equal((await request(app.server).post('/v1/quantize').send(tensor)).status, 200);
});
