import assert from 'node:assert/strict';
import { test } from 'node:test';
import request from 'supertest';
import { encodeNpy } from '../../src/codecs/npy.js';
import { reportFromSums } from '../../src/core/metrics.js';
import { quantize, type QuantSpec } from '../../src/core/quantize.js';
import { AnalyzeResponse } from '../../src/http/schemas/analyze.js';
import { ModelJsonResponse } from '../../src/http/schemas/models.js';
import { DequantizeResponse, QuantizeResponse } from '../../src/http/schemas/quantize.js';
import { gemmMlp } from '../onnx/models.js';
import { decodeF32, gaussian, testApp } from './helpers.js';
import { KERNEL_SUM_REL } from '../core/sums-close.js';
import { decodeModel } from '../../src/onnx/proto/decode.js';
import { encodeModelBytes } from '../../src/onnx/proto/encode.js';
import { quantizeModel } from '../../src/onnx/weights/quantize-model.js';
import { modelQuantOptions } from '../../src/onnx/weights/options.js';

// The method option on the tensor API and the model path, over HTTP.

const app = await testApp();
const server = () => request(app.server);

const spec = (method: QuantSpec['method']): QuantSpec => ({
  bits: 4, scheme: 'asymmetric', granularity: 'per_group', axis: -1, groupSize: 32, calibration: 'minmax', percentile: 99.99, method,
});

test('method=lsq returns the core lsq parameters; compare_methods reports every method; dequantize takes the reply back', async () => {
  const data = gaussian(16 * 64, 5);
  const res = await server()
    .post('/v1/quantize')
    .send({ tensor: { data, shape: [16, 64] }, bits: 4, scheme: 'asymmetric', granularity: 'per_group', group_size: 32, method: 'lsq', compare_methods: true })
    .expect(200);
  const body = QuantizeResponse.parse(res.body);
  const x = new Float32Array(data);
  const ref = quantize(x, [16, 64], spec('lsq'));
  assert.equal(body.method, 'lsq');
  assert.deepEqual((body.scale as number[][]).flat(), Array.from(ref.params.scale));
  assert.deepEqual(body.error, reportFromSums(ref.sums));
  const snr = (m: QuantSpec['method']) => reportFromSums(quantize(x, [16, 64], spec(m)).sums).snr_db;
  assert.deepEqual(body.methods, { rtn: snr('rtn'), lsq: snr('lsq'), hqq: snr('hqq') });
  assert.ok(body.methods!.lsq! > body.methods!.rtn!);
  const back = await server().post('/v1/dequantize').send(res.body).expect(200);
  const xHat = decodeF32(DequantizeResponse.parse(back.body).data);
  let sq = 0;
  for (let i = 0; i < x.length; i++) sq += (x[i]! - xHat[i]!) ** 2;
  // The report's sums are within KERNEL_SUM_REL of float64 (test/core/sums-close.ts).
  assert.ok(Math.abs(sq / x.length - body.error.mse) <= KERNEL_SUM_REL * body.error.mse);
});

test('the default is rtn, methods absent unless asked; method works in the query string and rejects unknown names', async () => {
  const data = gaussian(256, 9);
  const res = await server().post('/v1/quantize').send({ tensor: { data }, bits: 4 }).expect(200);
  assert.equal(res.body.method, 'rtn');
  assert.equal(res.body.methods, undefined);
  const npy = encodeNpy(new Float32Array(data), '<f4', [256]);
  const q = await server().post('/v1/quantize?bits=4&method=hqq&granularity=per_channel').set('content-type', 'application/x-npy').send(Buffer.from(npy)).expect(200);
  assert.equal(q.body.method, 'hqq');
  const bad = await server().post('/v1/quantize').send({ tensor: { data }, method: 'awq' }).expect(400);
  assert.equal(bad.body.code, 'QUANT_ERR_VALIDATION');
  assert.match(bad.body.message, /method/);
  // A data-aware method without its statistics is refused, never run as rtn.
  const none = await server().post('/v1/quantize').send({ tensor: { data, shape: [16, 16] }, method: 'gptq', granularity: 'per_channel' }).expect(400);
  assert.equal(none.body.code, 'QUANT_ERR_OPTION');
  assert.match(none.body.message, /activations .*xtx/);
});

test('analyze compares methods like bit widths, and the recommendation names the best method at the smallest size', async () => {
  const data = gaussian(32 * 64, 11);
  const res = await server()
    .post('/v1/analyze?bits=4,8&schemes=asymmetric&granularities=per_group&calibrations=minmax&methods=rtn,lsq,hqq&group_size=32&target_snr_db=21')
    .send({ tensor: { data, shape: [32, 64] } })
    .expect(200);
  const body = AnalyzeResponse.parse(res.body);
  assert.equal(body.rows.length, 6);
  const at4 = Object.fromEntries(body.rows.filter((r) => r.bits === 4).map((r) => [r.method, r.error.snr_db!]));
  assert.ok(at4.lsq! > at4.rtn! && at4.hqq! >= at4.rtn!);
  const ref = quantize(new Float32Array(data), [32, 64], spec('lsq'));
  assert.deepEqual(body.rows.find((r) => r.bits === 4 && r.method === 'lsq')!.error, reportFromSums(ref.sums));
  // All 4-bit rows have the same size; the recommendation is the one with the highest SNR.
  assert.equal(body.recommended!.bits, 4);
  const best = Object.entries(at4).filter(([, s]) => s >= 21).sort((a, b) => b[1] - a[1])[0]![0];
  assert.equal(body.recommended!.method, best);
});

test('the model path takes method and the new formats, and reports them', async () => {
  const mlp = Buffer.from(gemmMlp(17).bytes);
  const post = (query: string) => server().post(`/v1/models/quantize${query}`).set('accept', 'application/json').set('content-type', 'application/octet-stream').send(mlp);
  const lsq = ModelJsonResponse.parse((await post('?bits=4&method=lsq').expect(200)).body);
  const rtn = ModelJsonResponse.parse((await post('?bits=4').expect(200)).body);
  assert.equal(lsq.summary.method, 'lsq');
  assert.equal(rtn.summary.method, 'rtn');
  for (const t of lsq.tensors) assert.ok(t.snr_db! > rtn.tensors.find((r) => r.name === t.name)!.snr_db!);
  const nf4 = ModelJsonResponse.parse((await post('?format=nf4').expect(200)).body);
  assert.equal(nf4.summary.bits, 4);
  assert.deepEqual(nf4.summary.formats, { nf4: 2 });
  assert.equal(nf4.validation.status, 'ok');
  const mlp19 = Buffer.from(gemmMlp(19).bytes);
  const fp8 = ModelJsonResponse.parse(
    (await server().post('/v1/models/quantize?format=fp8e4m3').set('accept', 'application/json').set('content-type', 'application/octet-stream').send(mlp19).expect(200)).body,
  );
  assert.deepEqual(fp8.summary.formats, { fp8e4m3: 2 });
  for (const t of fp8.tensors) assert.ok(t.int8_snr_db! > t.snr_db!);
});

test('a job takes method and format like the synchronous endpoint, and its report says so', async () => {
  const mlp = Buffer.from(gemmMlp(17).bytes);
  const sub = await server().post('/v1/jobs?bits=4&method=hqq').set('content-type', 'application/octet-stream').send(mlp).expect(202);
  let status = '';
  for (let i = 0; i < 600 && status !== 'succeeded' && status !== 'failed'; i++) {
    status = (await server().get(`/v1/jobs/${sub.body.id}`).expect(200)).body.status;
    if (status !== 'succeeded') await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(status, 'succeeded');
  const report = (await server().get(`/v1/jobs/${sub.body.id}/report`).expect(200)).body;
  assert.equal(report.summary.method, 'hqq');
  const sync = ModelJsonResponse.parse(
    (await server().post('/v1/models/quantize?bits=4&method=hqq').set('accept', 'application/json').set('content-type', 'application/octet-stream').send(mlp).expect(200)).body,
  );
  assert.deepEqual(report.tensors.map((t: { snr_db: number }) => t.snr_db), sync.tensors.map((t) => t.snr_db));
  // Option conflicts are refused when the job is posted, with the synchronous endpoint's 400 (test/http/job-options.test.ts).
  const bad = await server().post('/v1/jobs?format=nf4&method=lsq').set('content-type', 'application/octet-stream').send(mlp).expect(400);
  assert.equal(bad.body.code, 'QUANT_ERR_OPTION');
  assert.match(bad.body.message, /use method=rtn/);
});

test('lsq_weights=magnitude gives the core magnitude-weighted lsq weights; it needs method=lsq', async () => {
  const mlp = gemmMlp(17).bytes;
  const post = (query: string) => server().post(`/v1/models/quantize${query}`).set('accept', 'application/json').set('content-type', 'application/octet-stream').send(Buffer.from(mlp));
  const res = ModelJsonResponse.parse((await post('?bits=4&scheme=asymmetric&method=lsq&lsq_weights=magnitude&validate=false&measure_latency=false').expect(200)).body);
  const mse = ModelJsonResponse.parse((await post('?bits=4&scheme=asymmetric&method=lsq&validate=false&measure_latency=false').expect(200)).body);
  const initializers = (bytes: Uint8Array) => new Map(decodeModel(bytes).graph.initializers.map((t) => [t.name, Buffer.from(t.rawData ?? new Uint8Array(0)).toString('hex')]));
  const core = quantizeModel(decodeModel(mlp), modelQuantOptions({ bits: 4, scheme: 'asymmetric', method: 'lsq', lsqWeights: 'magnitude' })).model;
  const want = initializers(encodeModelBytes(core));
  const got = initializers(Buffer.from(res.model.data, 'base64'));
  const other = initializers(Buffer.from(mse.model.data, 'base64'));
  assert.ok(want.size > 0);
  let differs = 0;
  for (const [name, hex] of want) {
    assert.equal(got.get(name), hex, name);
    if (other.get(name) !== hex) differs++;
  }
  assert.ok(differs > 0, 'the magnitude weights change some quantized initializer');
  assert.equal(res.summary.method, 'lsq');
  for (const q of ['?bits=4&lsq_weights=magnitude', '?bits=4&method=hqq&lsq_weights=magnitude']) {
    const bad = await post(q).expect(400);
    assert.equal(bad.body.code, 'QUANT_ERR_OPTION');
    assert.match(bad.body.message, /lsq_weights=magnitude .*add method=lsq/);
  }
  const job = await server().post('/v1/jobs?bits=4&lsq_weights=magnitude').set('content-type', 'application/octet-stream').send(Buffer.from(mlp)).expect(400);
  assert.match(job.body.message, /lsq_weights=magnitude/);
  const unknown = await post('?bits=4&method=lsq&lsq_weights=x2').expect(400);
  assert.match(unknown.body.message, /lsq_weights/);
});
