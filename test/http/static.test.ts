import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import request from 'supertest';
import { encodeNpy } from '../../src/codecs/npy.js';
import { encodeNpz } from '../../src/codecs/npz.js';
import { ModelJsonResponse } from '../../src/http/schemas/models.js';
import { convNet, gemmMlp, randn } from '../onnx/models.js';
import { binaryParser, testApp } from './helpers.js';

// format=static over HTTP and jobs: the calibration part, its 400s, the report's static and
// latency sections. The numerics are tested in test/onnx/activations.

const app = await testApp();
const server = () => request(app.server);
const resnet = readFileSync('test/fixtures/models/static/resnet-mini.opset13.onnx');
const N = 10;
const calibration = Buffer.from(encodeNpz([{ name: 'input.npy', data: encodeNpy(randn(N * 3 * 64 * 64, 5), '<f4', [N, 1, 3, 64, 64]) }]));

function json(res: request.Response) {
  return Buffer.isBuffer(res.body) ? JSON.parse(res.body.toString('utf8')) : res.body;
}

function post(path = '/v1/models/quantize') {
  return server().post(path).buffer(true).parse(binaryParser);
}

describe('format=static', () => {
  it('quantizes with the `calibration` part: a fused model, the static report and both models timed', async () => {
    const res = await post().set('accept', 'application/json').field('format', 'static').attach('model', resnet, 'resnet.onnx').attach('calibration', calibration, 'samples.npz').expect(200);
    const report = ModelJsonResponse.parse(json(res));
    assert.equal(report.summary.format, 'static');
    const header = JSON.parse(res.headers['x-quantization-summary'] as string);
    assert.equal(header.format, 'static');
    assert.equal(header.static.excluded, 0);
    assert.ok(header.speedup_1_thread > 0);
    const s = report.static!;
    assert.equal(s.calibration_data, 'user');
    assert.equal(s.calibration_samples + s.held_back_samples, N);
    assert.deepEqual(s.warnings, []);
    // The calibration runs are their own stage in the summary's timings, not inside quantize.
    assert.equal(report.summary.timings_ms.calibrate, s.timings_ms.calibration);
    assert.ok(report.summary.timings_ms.calibrate > 0);
    assert.equal(s.fused_ops.status, 'ok');
    if (s.fused_ops.status === 'ok') assert.equal(s.fused_ops.fused.QLinearConv, 9);
    assert.ok(s.activations.length > 10);
    const snrs = s.activations.map((a) => a.snr_db ?? Infinity);
    assert.deepEqual(snrs, [...snrs].sort((a, b) => a - b), 'activations worst first');
    assert.ok(s.outputs[0]!.cosine_similarity > 0.999);
    assert.equal(report.latency?.status, 'ok');
    if (report.latency?.status === 'ok') {
      assert.deepEqual(report.latency.rows.map((r) => r.intra_op_threads), [1, 0]);
      for (const r of report.latency.rows) assert.ok(r.original_runs >= 3 && r.quantized_runs >= 3 && r.speedup > 0);
    }
    const model = Buffer.from(report.model.data, 'base64');
    const session = await ort.InferenceSession.create(model, { logSeverityLevel: 3 });
    const out = await session.run({ input: new ort.Tensor('float32', randn(3 * 64 * 64, 9), [1, 3, 64, 64]) });
    assert.deepEqual(out.logits!.dims, [1, 10]);
    await session.release();
  });

  it('without calibration data is a 400 that says what to send; calibration_data=random opts in and warns', async () => {
    const res = await post().field('format', 'static').attach('model', resnet, 'resnet.onnx').expect(400);
    assert.equal(json(res).code, 'QUANT_ERR_CALIBRATION');
    assert.match(json(res).message, /file part `calibration`.*calibration_data=random/);
    const raw = await post('/v1/models/quantize?format=static').set('content-type', 'application/octet-stream').send(resnet).expect(400);
    assert.equal(json(raw).code, 'QUANT_ERR_CALIBRATION');
    const ok = await post('/v1/models/quantize?format=static&calibration_data=random&calibration_samples=4&measure_latency=false').set('accept', 'application/json').set('content-type', 'application/octet-stream').send(resnet).expect(200);
    const report = json(ok);
    assert.equal(report.static.calibration_data, 'random');
    assert.match(report.static.warnings[0], /random/);
    assert.equal(report.latency, undefined, 'measure_latency=false');
  });

  it('names the calibration array or option at fault', async () => {
    const misnamed = Buffer.from(encodeNpz([{ name: 'image.npy', data: encodeNpy(randn(3 * 3 * 64 * 64, 5), '<f4', [3, 1, 3, 64, 64]) }]));
    const r1 = await post().field('format', 'static').attach('model', resnet, 'm.onnx').attach('calibration', misnamed, 'c.npz').expect(400);
    assert.equal(json(r1).code, 'QUANT_ERR_CALIBRATION');
    assert.match(json(r1).message, /image|input/);
    const wrongShape = Buffer.from(encodeNpz([{ name: 'input.npy', data: encodeNpy(randn(3 * 3 * 32 * 32, 5), '<f4', [3, 1, 3, 32, 32]) }]));
    const r2 = await post().field('format', 'static').attach('model', resnet, 'm.onnx').attach('calibration', wrongShape, 'c.npz').expect(400);
    assert.match(json(r2).message, /input/);
    const r3 = await post().field('format', 'static').field('activation_type', 'int4').attach('model', resnet, 'm.onnx').attach('calibration', calibration, 'c.npz').expect(400);
    assert.equal(json(r3).code, 'QUANT_ERR_VALIDATION');
    assert.match(json(r3).message, /activation_type/);
    const r4 = await post().field('format', 'static').field('held_back', String(N)).attach('model', resnet, 'm.onnx').attach('calibration', calibration, 'c.npz').expect(400);
    assert.match(json(r4).message, /held_back/);
  });

  it('below opset 10 is a 400 naming the opset, on the endpoint and as a job (onnxruntime could not load the result)', async () => {
    const op9 = Buffer.from(convNet(9).bytes);
    const res = await post('/v1/models/quantize?format=static&calibration_data=random&calibration_samples=2').set('content-type', 'application/octet-stream').send(op9).expect(400);
    assert.equal(json(res).code, 'QUANT_ERR_OPTION');
    assert.match(json(res).message, /format=static needs opset ≥ 10 .*this model has opset 9/);
    const job = await server().post('/v1/jobs?format=static&calibration_data=random').set('content-type', 'application/octet-stream').send(op9).expect(400);
    assert.equal(job.body.code, 'QUANT_ERR_OPTION');
    // At opset 10 the same graph is quantized and loads at onnxruntime's defaults.
    const ok = await post('/v1/models/quantize?format=static&calibration_data=random&calibration_samples=2&measure_latency=false')
      .set('accept', 'application/json')
      .set('content-type', 'application/octet-stream')
      .send(Buffer.from(convNet(10).bytes))
      .expect(200);
    assert.equal(json(ok).validation.status, 'ok', JSON.stringify(json(ok).validation));
  });

  it('reports the latency of both models for the weight formats too', async () => {
    const res = await post('/v1/models/quantize?bits=8&format=qdq').set('accept', 'application/json').set('content-type', 'application/octet-stream').send(Buffer.from(gemmMlp().bytes)).expect(200);
    const report = ModelJsonResponse.parse(json(res));
    assert.equal(report.latency?.status, 'ok');
    assert.equal(report.static, undefined);
  });

  it('runs as a job with a calibrating phase (samples done of N) and the synchronous result', async () => {
    const created = await server().post('/v1/jobs').field('format', 'static').field('measure_latency', 'false').attach('model', resnet, 'resnet.onnx').attach('calibration', calibration, 'samples.npz').expect(202);
    const id = created.body.id as string;
    const res = await server().get(`/v1/jobs/${id}/events`).buffer(true).parse(binaryParser).expect(200);
    const events = (res.body as Buffer)
      .toString()
      .split('\n\n')
      .filter((b) => b.startsWith('event:'))
      .map((b) => JSON.parse(/\ndata: (.*)$/.exec(b)![1]!) as { status: string; progress: { phase: string; samples_done?: number; samples_total?: number; fraction: number } });
    assert.equal(events.at(-1)!.status, 'succeeded');
    const calibrating = events.filter((e) => e.progress.phase === 'calibrating');
    assert.ok(calibrating.length >= 1, JSON.stringify(events.map((e) => e.progress.phase)));
    assert.ok(calibrating.every((e) => e.progress.samples_total === N - 2 && e.progress.samples_done! <= N - 2));
    const fractions = events.map((e) => e.progress.fraction);
    assert.deepEqual(fractions, [...fractions].sort((a, b) => a - b));
    const result = await server().get(`/v1/jobs/${id}/result`).buffer(true).parse(binaryParser).expect(200);
    const sync = await post().field('format', 'static').field('measure_latency', 'false').attach('model', resnet, 'resnet.onnx').attach('calibration', calibration, 'samples.npz').expect(200);
    assert.ok(Buffer.compare(result.body as Buffer, sync.body as Buffer) === 0, 'the job writes the bytes the synchronous endpoint returns');
  });
});
