import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import request from 'supertest';
import { openapiText } from '../../src/http/openapi.js';
import { testApp } from './helpers.js';

const app = await testApp();
const server = () => request(app.server);

test('healthz and readyz', async () => {
  assert.deepEqual((await server().get('/healthz').expect(200)).body, { status: 'ok' });
  const ready = await server().get('/readyz').expect(200);
  assert.equal(ready.body.status, 'ready');
  assert.equal(ready.body.workers, 2);
});

test('Swagger UI is served at /docs and the document at /openapi.json', async () => {
  const docs = await server().get('/docs/').expect(200);
  assert.match(docs.text, /swagger-ui/i);
  const doc = (await server().get('/openapi.json').expect(200)).body;
  assert.equal(doc.openapi, '3.1.0');
  for (const path of ['/v1/quantize', '/v1/dequantize', '/v1/analyze', '/v1/matmul']) assert.ok(doc.paths[path]?.post, path);
  const content = doc.paths['/v1/quantize'].post.requestBody.content;
  assert.deepEqual(Object.keys(content).sort(), ['application/json', 'application/octet-stream', 'application/x-npy', 'application/x-npz']);
  assert.equal(content['application/x-npz'].schema.format, 'binary');
  assert.equal(content['application/x-npy'].schema.format, 'binary');
  assert.ok(content['application/json'].schema.properties.tensor);
});

test('openapi/openapi.json is what the app generates (run `npm run openapi` after changing a schema)', () => {
  const committed = readFileSync('openapi/openapi.json', 'utf8');
  assert.equal(committed, openapiText(app.swagger()));
});

test('unknown routes are a JSON 404', async () => {
  const res = await server().get('/v1/nope').expect(404);
  assert.equal(res.body.code, 'QUANT_ERR_NOT_FOUND');
});
