import assert from 'node:assert/strict';
import { test } from 'node:test';
import request from 'supertest';
import { CALIBRATIONS, SCHEMES } from '../../src/core/calibrate.js';
import { MAX_BITS, MIN_BITS } from '../../src/core/dtypes.js';
import { TENSOR_DATA_METHODS } from '../../src/core/methods/data-aware.js';
import { METHODS } from '../../src/core/methods/index.js';
import { GRANULARITIES } from '../../src/core/quantize.js';
import { ACTIVATION_TYPES } from '../../src/onnx/activations/qparams.js';
import { MODEL_BITS, MODEL_METHODS, MODEL_OP_TYPES } from '../../src/onnx/weights/options.js';
import { REQUEST_FORMATS } from '../../src/http/schemas/models.js';
import { MAX_HISTOGRAM_BINS } from '../../src/http/schemas/quantize.js';
import { testApp } from './helpers.js';

// The report page's server side: the files `npm run build` wrote, served without a key, and
// the option lists the page draws its forms from, which must be the API's own.

const KEY = 'ui-test-key-0123456789';
const app = await testApp({ apiKeys: [KEY] });
const server = () => request(app.server);

test('GET /ui serves the page without an API key, and the page loads only its own files', async () => {
  const res = await server().get('/ui');
  assert.equal(res.status, 200);
  assert.match(res.headers['content-type'] ?? '', /^text\/html/);
  assert.match(res.headers['content-security-policy'] ?? '', /default-src 'self'/);
  const refs = [...res.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
  assert.deepEqual(refs.sort(), ['/docs', '/ui/app.js', '/ui/style.css']);
  for (const [path, type] of [['/ui/app.js', /^text\/javascript/], ['/ui/style.css', /^text\/css/]] as const) {
    const file = await server().get(path);
    assert.equal(file.status, 200, path);
    assert.match(file.headers['content-type'] ?? '', type);
    assert.ok(file.text.length > 1000, `${path} is the built file`);
  }
  // Chart.js is bundled in, not fetched from a CDN.
  const js = (await server().get('/ui/app.js')).text;
  assert.ok(js.includes('Chart.js'), 'the bundle carries Chart.js (its licence comment)');
  assert.doesNotMatch(js, /https?:\/\/(cdn|unpkg|jsdelivr)/);
});

test('only the built files are served under /ui; anything else is a 404 in the API error format', async () => {
  for (const path of ['/ui/secret.txt', '/ui/..%2fpackage.json', '/ui/%2e%2e%2f%2e%2e%2fpackage.json', '/ui/index.html.bak']) {
    const res = await server().get(path).set('authorization', `Bearer ${KEY}`);
    assert.equal(res.status, 404, path);
    assert.equal(res.body.code, 'QUANT_ERR_NOT_FOUND', path);
  }
  const slash = await server().get('/ui/');
  assert.equal(slash.status, 302);
  assert.equal(slash.headers.location, '/ui');
  // The API itself still needs the key.
  assert.equal((await server().post('/v1/quantize').send({ tensor: { data: [1] } })).status, 401);
});

test('GET /ui/options.json lists exactly the values the routes accept, with their defaults', async () => {
  const res = await server().get('/ui/options.json');
  assert.equal(res.status, 200);
  const { quantize, analyze, model } = res.body;
  assert.deepEqual(quantize.properties.scheme.enum, [...SCHEMES]);
  assert.deepEqual(quantize.properties.granularity.enum, [...GRANULARITIES]);
  assert.deepEqual(quantize.properties.calibration.enum, [...CALIBRATIONS]);
  assert.deepEqual(quantize.properties.method.enum, [...METHODS, ...TENSOR_DATA_METHODS]);
  assert.equal(quantize.properties.bits.minimum, MIN_BITS);
  assert.equal(quantize.properties.bits.maximum, MAX_BITS);
  assert.equal(quantize.properties.bits.default, 8);
  assert.equal(quantize.properties.histogram_bins.maximum, MAX_HISTOGRAM_BINS);
  assert.deepEqual(analyze.properties.methods.items.enum, [...METHODS, ...TENSOR_DATA_METHODS]);
  assert.deepEqual(analyze.properties.bits.default, [2, 4, 8, 16]);
  assert.deepEqual(model.properties.format.enum, [...REQUEST_FORMATS]);
  assert.deepEqual([...model.properties.bits.enum].sort(), [...MODEL_BITS].sort());
  assert.deepEqual(model.properties.op_types.items.enum, [...MODEL_OP_TYPES]);
  assert.deepEqual(model.properties.method.enum, [...MODEL_METHODS]);
  assert.deepEqual(model.properties.activation_type.enum, [...ACTIVATION_TYPES]);
  assert.deepEqual(model.properties.exclude.default, []);
  assert.equal(model.properties.validate.default, true);
  assert.equal(model.properties.calibration_data.const, 'random');
});

test('every option the page is offered is one the route takes (no field the API would refuse as unknown)', async () => {
  const { body } = await server().get('/ui/options.json');
  const tiny = Buffer.from(new Float32Array([0.5, -1, 2, 0.25]).buffer);
  // Defaults of every quantize option, sent back as query text: the route must accept them all.
  const text = (v: unknown) => (Array.isArray(v) ? v.join(',') : String(v));
  const quantizeQuery = Object.entries(body.quantize.properties as Record<string, { default?: unknown }>)
    .filter(([, p]) => p.default !== undefined)
    .map(([k, p]) => `${k}=${encodeURIComponent(text(p.default))}`)
    .join('&');
  const q = await server().post(`/v1/quantize?shape=4&${quantizeQuery}`).set('authorization', `Bearer ${KEY}`).set('content-type', 'application/octet-stream').send(tiny);
  assert.equal(q.status, 200, q.text);
  const analyzeQuery = Object.entries(body.analyze.properties as Record<string, { default?: unknown }>)
    .filter(([, p]) => p.default !== undefined)
    .map(([k, p]) => `${k}=${encodeURIComponent(text(p.default))}`)
    .join('&');
  const a = await server().post(`/v1/analyze?shape=4&${analyzeQuery}`).set('authorization', `Bearer ${KEY}`).set('content-type', 'application/octet-stream').send(tiny);
  assert.equal(a.status, 200, a.text);
});
