import assert from 'node:assert/strict';
import { test } from 'node:test';
import request from 'supertest';
import { loadConfig } from '../../src/config.js';
import { captureLogs, portOf, testApp } from './helpers.js';
import { openSocket, postHead, readResponse } from './raw-http.js';

const KEY_A = 'alpha-key-0123456789-secret';
const KEY_B = 'bravo-key-9876543210-longer-secret';
const logs = captureLogs('debug');
const app = await testApp({ apiKeys: [KEY_A, KEY_B] }, { logger: logs.logger });
const server = () => request(app.server);
const tensor = { tensor: { data: [1, 2, 3] } };

test('with API_KEYS set, every /v1 route needs a valid bearer key: 401 JSON otherwise', async () => {
  const routes: Array<[string, object]> = [
    ['/v1/quantize', tensor],
    ['/v1/dequantize', {}],
    ['/v1/analyze', tensor],
    ['/v1/matmul', { a: { data: [[1]] }, b: { data: [[1]] } }],
    ['/v1/models/quantize', {}],
    ['/v1/no-such-route', {}],
  ];
  for (const [path, body] of routes) {
    for (const authorization of [undefined, 'Bearer wrong-key-wrong-key-wrong', `Basic ${KEY_A}`, `Bearer ${KEY_A}x`, `Bearer ${KEY_A.slice(0, -1)}`, 'Bearer ']) {
      const req = server().post(path);
      if (authorization !== undefined) req.set('authorization', authorization);
      const res = await req.send(body);
      assert.equal(res.status, 401, `${path} with ${authorization}`);
      assert.deepEqual(Object.keys(res.body).sort(), ['code', 'error', 'message', 'statusCode']);
      assert.equal(res.body.code, 'QUANT_ERR_UNAUTHORIZED');
      assert.match(res.headers['www-authenticate'] ?? '', /^Bearer realm="quantd"/);
      assert.ok(!res.text.includes(KEY_A.slice(0, 10)), 'the answer echoes no key');
    }
  }
});

test('each configured key is accepted, whatever its length, and the scheme name is case-insensitive', async () => {
  for (const authorization of [`Bearer ${KEY_A}`, `Bearer ${KEY_B}`, `bearer ${KEY_A}`]) {
    const res = await server().post('/v1/quantize').set('authorization', authorization).send(tensor);
    assert.equal(res.status, 200, authorization);
  }
});

test('probes and docs stay open', async () => {
  assert.equal((await server().get('/healthz')).status, 200);
  assert.equal((await server().get('/readyz')).status, 200);
  assert.equal((await server().get('/openapi.json')).status, 200);
  assert.equal((await server().get('/docs/')).status, 200);
});

test('an unauthenticated upload is refused before its body is read', async () => {
  const socket = await openSocket(portOf(app));
  // 200 MiB declared (under BODY_LIMIT), nothing sent: the 401 comes from the headers alone.
  socket.write(postHead('/v1/quantize?shape=52428800', { 'content-type': 'application/octet-stream', 'content-length': 200 * 1024 * 1024 }));
  const res = await readResponse(socket);
  socket.destroy();
  assert.equal(res.status, 401);
  assert.equal(JSON.parse(res.body).code, 'QUANT_ERR_UNAUTHORIZED');
});

test('keys never reach the log, even with debug logging', () => {
  // Anything that logs a request's headers anyway gets them censored.
  app.log.info({ headers: { authorization: `Bearer ${KEY_B}` } }, 'headers logged by mistake');
  const censored = logs.lines().find((l) => l.msg === 'headers logged by mistake') as { headers: { authorization: string } };
  assert.equal(censored.headers.authorization, '[redacted]');
  const text = logs.text();
  assert.ok(text.length > 0);
  for (const key of [KEY_A, KEY_B]) assert.ok(!text.includes(key.slice(0, 12)), 'a key (or its start) is in the log');
  assert.ok(logs.lines().some((l) => l.code === 'QUANT_ERR_UNAUTHORIZED' && typeof l.reqId === 'string'));
});

test('the OpenAPI document declares the bearer scheme on every /v1 operation, not on the probes', async () => {
  const doc = (await server().get('/openapi.json')).body;
  assert.deepEqual(doc.components.securitySchemes.bearerAuth.type, 'http');
  assert.deepEqual(doc.components.securitySchemes.bearerAuth.scheme, 'bearer');
  const v1 = Object.keys(doc.paths).filter((p) => p.startsWith('/v1/'));
  assert.ok(v1.length >= 4);
  for (const path of v1) {
    for (const op of Object.values(doc.paths[path]) as Array<{ security: unknown; responses: Record<string, unknown> }>) {
      assert.deepEqual(op.security, [{ bearerAuth: [] }], path);
      assert.ok(op.responses['401'], `${path} documents its 401`);
    }
  }
  assert.equal(doc.paths['/healthz'].get.security, undefined);
});

test('API_KEYS is parsed from the environment; short keys are refused without echoing them', () => {
  assert.deepEqual(loadConfig({}).apiKeys, []);
  assert.deepEqual(loadConfig({ API_KEYS: ` ${KEY_A}, ,${KEY_B} ` }).apiKeys, [KEY_A, KEY_B]);
  assert.throws(() => loadConfig({ API_KEYS: `${KEY_A},short-secret` }), (err: Error) => {
    assert.match(err.message, /API_KEYS: every key must be at least 16 characters/);
    assert.ok(!err.message.includes('short-secret') && !err.message.includes(KEY_A));
    return true;
  });
});

test('without API_KEYS, nothing asks for a key', async () => {
  const open = await testApp({ apiKeys: [] });
  assert.equal((await request(open.server).post('/v1/quantize').send(tensor)).status, 200);
});
