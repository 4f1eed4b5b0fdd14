import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import request from 'supertest';
import { encodeNpy } from '../../src/codecs/npy.js';
import { encodeNpz } from '../../src/codecs/npz.js';
import { ModelJsonResponse, ModelReport } from '../../src/http/schemas/models.js';
import { gemmMlp, randn } from '../onnx/models.js';
import { binaryParser, testApp } from './helpers.js';

// Issue 11's done-when over HTTP: POST /v1/models/quantize?bits=4&method=gptq with the trained
// char LM and its calibration .npz returns a model onnxruntime runs, with the held-back output
// SNR and cosine in the report; and the refusals (no calibration, K×K sums over the limit,
// format=static).

const app = await testApp();
const server = () => request(app.server);
const lm = readFileSync('test/fixtures/models/trained/charlm.onnx');
const lmCalibration = readFileSync('test/fixtures/models/trained/charlm-calibration.npz');
const mlp = gemmMlp();
const mlpCalibration = Buffer.from(encodeNpz([{ name: 'x.npy', data: encodeNpy(randn(12 * 256, 3), '<f4', [12, 1, 256]) }]));

function json(res: request.Response) {
  return Buffer.isBuffer(res.body) ? JSON.parse(res.body.toString('utf8')) : res.body;
}

function post(path = '/v1/models/quantize') {
  return server().post(path).buffer(true).parse(binaryParser);
}

describe('data-aware methods over HTTP', () => {
  it('bits=4&method=gptq with charlm.onnx and its calibration: a model onnxruntime runs, output SNR and cosine on held-back samples', async () => {
    const res = await post('/v1/models/quantize?bits=4&method=gptq&measure_latency=false')
      .set('accept', 'application/json')
      .attach('model', lm, 'charlm.onnx')
      .attach('calibration', lmCalibration, 'tokens.npz')
      .expect(200);
    const report = ModelJsonResponse.parse(json(res));
    assert.equal(report.summary.method, 'gptq');
    const d = report.data_aware!;
    assert.equal(d.method, 'gptq');
    assert.equal(d.source, 'user');
    assert.equal(d.calibration_samples + d.held_back_samples, 128);
    assert.equal(d.held_back_samples, 32);
    assert.deepEqual(d.gptq, { damp: 0.01, block_size: 128, act_order: false });
    assert.equal(d.statistics.kind, 'full');
    const logits = d.outputs.find((o) => o.name === 'logits')!;
    assert.ok(logits.snr_db !== null && logits.snr_db > 20, `held-back logits SNR ${logits.snr_db}`);
    assert.ok(logits.cosine_similarity > 0.999 && logits.cosine_similarity <= 1);
    assert.ok(logits.top1_agreement! > 0.9);
    // Every MatMul weight was fitted by GPTQ and beats rtn on the layer-output proxy; the embeddings are rtn with the reason.
    const fitted = report.tensors.filter((t) => t.method?.startsWith('gptq'));
    assert.equal(fitted.length, 17);
    for (const t of fitted) assert.ok(t.proxy_loss_reduction! > 0, `${t.name}: ${t.proxy_loss_reduction}`);
    for (const t of report.tensors.filter((x) => !x.method?.startsWith('gptq'))) assert.match(t.note ?? '', /gptq not applied: /);
    const header = JSON.parse(res.headers['x-quantization-summary'] as string);
    assert.equal(header.data_aware.method, 'gptq');
    const model = Buffer.from(report.model.data, 'base64');
    const session = await ort.InferenceSession.create(model, { logSeverityLevel: 3 });
    const out = await session.run({ input_ids: new ort.Tensor('int64', BigInt64Array.from({ length: 128 }, (_, i) => BigInt(i % 98)), [1, 128]) });
    assert.deepEqual(out.logits!.dims, [1, 128, 98]);
    await session.release();
  });

  for (const method of ['imatrix', 'gptq', 'awq']) {
    it(`method=${method} without the calibration part is a 400 naming it; calibration_data=random opts in and warns`, async () => {
      const res = await post(`/v1/models/quantize?bits=4&method=${method}`).set('content-type', 'application/octet-stream').send(Buffer.from(mlp.bytes)).expect(400);
      assert.equal(json(res).code, 'QUANT_ERR_CALIBRATION');
      assert.match(json(res).message, new RegExp(`method=${method} needs calibration data: .*file part \`calibration\``));
      const ok = await post(`/v1/models/quantize?bits=4&method=${method}&calibration_data=random&calibration_samples=6&measure_latency=false`)
        .set('accept', 'application/json')
        .set('content-type', 'application/octet-stream')
        .send(Buffer.from(mlp.bytes))
        .expect(200);
      const r = json(ok);
      assert.equal(r.data_aware.source, 'random');
      assert.match(r.data_aware.warning, /random/);
      assert.equal(r.data_aware.calibration_samples + r.data_aware.held_back_samples, 6);
    });
  }

  it('awq on a Gemm MLP: one scale per activation, a Mul inserted before fc2 (Relu is not foldable), the float path unchanged in validation', async () => {
    const res = await post('/v1/models/quantize?bits=4&method=awq&measure_latency=false').set('accept', 'application/json').attach('model', Buffer.from(mlp.bytes), 'mlp.onnx').attach('calibration', mlpCalibration, 'c.npz').expect(200);
    const r = ModelJsonResponse.parse(json(res));
    const rows = r.data_aware!.awq!;
    assert.deepEqual(rows.map((a) => a.activation).sort(), ['r', 'x']);
    for (const a of rows) assert.ok(a.alpha >= 0 && a.alpha < 1 && (a.proxy_loss_reduction ?? 0) >= 0);
    // The clip search ran on every weight (no attention here).
    for (const a of rows) assert.deepEqual(a.clip.map((c) => c.clipped), a.weights.map(() => true));
    assert.equal(r.validation.status, 'ok');
    // awq_clip=false: the scale search alone, and the rows say so.
    const off = ModelJsonResponse.parse(json(await post('/v1/models/quantize?bits=4&method=awq&awq_clip=false&measure_latency=false').set('accept', 'application/json').attach('model', Buffer.from(mlp.bytes), 'mlp.onnx').attach('calibration', mlpCalibration, 'c.npz').expect(200)));
    for (const a of off.data_aware!.awq!) {
      assert.deepEqual(a.clip.map((c) => c.reason), a.weights.map(() => 'awq_clip=false'));
      assert.equal(a.proxy_loss_reduction, a.scale_proxy_loss_reduction);
    }
  });

  it('awq on the grouped glyph CNN (opset 17, int8 per channel): conv_group_alphas for the grouped Convs, the depthwise one rtn with its reason', async () => {
    const model = readFileSync('test/fixtures/models/trained/grouped-glyphs-op17.onnx');
    const cal = readFileSync('test/fixtures/models/trained/glyphs-calibration.npz');
    const res = await post('/v1/models/quantize?bits=8&granularity=per_channel&method=awq&min_elements=1&measure_latency=false').set('accept', 'application/json').attach('model', model, 'g.onnx').attach('calibration', cal, 'c.npz').expect(200);
    const r = ModelJsonResponse.parse(json(res));
    const grouped = r.data_aware!.awq!.filter((a) => a.conv_group_alphas);
    assert.deepEqual(grouped.map((a) => a.conv_group_alphas!.length).sort((a, b) => a - b), [4, 8]);
    for (const a of grouped) assert.ok(Math.abs(a.alpha - a.conv_group_alphas!.reduce((x, y) => x + y, 0) / a.conv_group_alphas!.length) < 1e-12);
    const depthwise = r.tensors.find((t) => t.op_type === 'Conv' && t.shape[1] === 1 && t.shape[0] === 64)!;
    assert.equal(depthwise.method, 'rtn');
    assert.match(depthwise.note ?? '', /awq not applied: depthwise Conv \(group=64/);
    assert.equal(r.validation.status, 'ok');
  });

  it('POST /v1/jobs with method=imatrix and the calibration part: the data_aware report (the calibrating phase is checked deterministically by the CLI test)', async () => {
    const res = await server().post('/v1/jobs').field('bits', '4').field('method', 'imatrix').field('measure_latency', 'false').attach('model', Buffer.from(mlp.bytes), 'mlp.onnx').attach('calibration', mlpCalibration, 'c.npz').expect(202);
    const id = res.body.id as string;
    let status = '';
    for (let i = 0; i < 3000 && status !== 'succeeded' && status !== 'failed'; i++) {
      const job = (await server().get(`/v1/jobs/${id}`).expect(200)).body as { status: string };
      status = job.status;
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(status, 'succeeded');
    const report = ModelReport.parse((await server().get(`/v1/jobs/${id}/report`).expect(200)).body);
    assert.equal(report.data_aware?.method, 'imatrix');
    assert.equal(report.data_aware?.statistics.kind, 'diag');
    assert.deepEqual(report.tensors.map((t) => t.method), ['imatrix', 'imatrix']);
  });

  it('K×K sums past HESSIAN_MAX_BYTES are a 413 naming the activation; format=static with gptq is a 400', async () => {
    const small = await testApp({ hessianMaxBytes: 100_000 });
    try {
      const res = await request(small.server).post('/v1/models/quantize?bits=4&method=gptq').attach('model', Buffer.from(mlp.bytes), 'mlp.onnx').attach('calibration', mlpCalibration, 'c.npz').expect(413);
      assert.equal(res.body.code, 'QUANT_ERR_CALIBRATION_TOO_LARGE');
      assert.match(res.body.message, /'[xr]'.*HESSIAN_MAX_BYTES=100000/);
    } finally {
      await small.close();
    }
    const s = await post('/v1/models/quantize?method=gptq&format=static').attach('model', Buffer.from(mlp.bytes), 'mlp.onnx').attach('calibration', mlpCalibration, 'c.npz').expect(400);
    assert.equal(json(s).code, 'QUANT_ERR_OPTION');
    assert.match(json(s).message, /method=gptq .*format=static/);
  });
});
