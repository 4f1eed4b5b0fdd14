import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import request from 'supertest';
import type { z } from 'zod';
import { ModelJsonResponse, ModelReport } from '../../src/http/schemas/models.js';
import { decodeModel } from '../../src/onnx/proto/decode.js';
import { INITIALIZER_INPUT_NOTE } from '../../src/onnx/weights/options.js';
import { randn } from '../onnx/models.js';
import { binaryParser, testApp } from './helpers.js';

// A real PyTorch export with keep_initializers_as_inputs=True (every initializer also a graph
// input, IR 7): the weight-only formats, the data-aware methods, format=static and the jobs
// path all quantize the same weights and take them out of the model's inputs;
// initializer_inputs=keep leaves them float and overridable.

const app = await testApp();
const server = () => request(app.server);
const tiny = readFileSync('test/fixtures/models/initializer-inputs/tiny-cnn-inputs-op13.onnx');
/** Its weights of min_elements (1024) or more: conv1.weight has 432. */
const WEIGHTS = ['conv2.weight', 'fc.weight'];

function json(res: request.Response) {
  return Buffer.isBuffer(res.body) ? JSON.parse(res.body.toString('utf8')) : res.body;
}

async function quantize(query: string) {
  const res = await server().post(`/v1/models/quantize?${query}`).set('accept', 'application/json').set('content-type', 'application/octet-stream').buffer(true).parse(binaryParser).send(tiny).expect(200);
  const report = ModelJsonResponse.parse(json(res));
  return { report, model: Buffer.from(report.model.data, 'base64') };
}

/** The model's graph inputs, and its logits on one image in onnxruntime. */
async function inspect(model: Uint8Array) {
  const inputs = decodeModel(model).graph.inputs.map((v) => v.name);
  const s = await ort.InferenceSession.create(model, { logSeverityLevel: 3 });
  try {
    const out = await s.run({ image: new ort.Tensor('float32', randn(3 * 16 * 16, 3), [1, 3, 16, 16]) });
    return { inputs, runInputs: [...s.inputNames], logits: out.logits!.dims };
  } finally {
    await s.release();
  }
}

function checkQuantized(report: z.infer<typeof ModelReport>, what: string, weights = WEIGHTS): void {
  assert.deepEqual(report.tensors.map((t) => t.name).sort(), weights, what);
  for (const t of report.tensors) assert.ok(t.note?.includes(INITIALIZER_INPUT_NOTE), `${what} ${t.name}: ${t.note}`);
  // What a format cannot carry (a Conv for dynamic and nf4) is skipped for that, not for being an input.
  assert.ok(!report.skipped.some((s) => /graph input/.test(s.reason)), what);
}

describe('a keep_initializers_as_inputs export (initializers also graph inputs)', () => {
  it('the fixture lists every initializer as an input', () => {
    const m = decodeModel(tiny);
    assert.ok(m.irVersion >= 4);
    assert.deepEqual(m.graph.inputs.map((v) => v.name), ['image', ...m.graph.initializers.map((t) => t.name)]);
  });

  const cases = [
    { query: 'bits=8', weights: WEIGHTS },
    { query: 'bits=4', weights: WEIGHTS },
    { query: 'format=dynamic', weights: ['fc.weight'] },
    { query: 'format=nf4', weights: ['fc.weight'] },
    { query: 'bits=4&method=gptq&calibration_data=random&calibration_samples=6', weights: WEIGHTS },
  ];
  for (const { query, weights } of cases) {
    it(`${query}: its weights are quantized and leave the inputs; validation compares on the real input`, async () => {
      const { report, model } = await quantize(`${query}&measure_latency=false`);
      checkQuantized(report, query, weights);
      const v = report.validation;
      assert.equal(v.status, 'ok', JSON.stringify(v));
      if (v.status === 'ok') {
        assert.deepEqual(v.inputs.map((i) => i.name), ['image'], 'no weight is fed random values');
        assert.ok(v.weights_only.outputs[0]!.snr_db! > 15, `${query}: ${v.weights_only.outputs[0]!.snr_db} dB`);
      }
      const r = await inspect(model);
      // Biases and conv1.weight (too small) stay float initializers, no longer inputs.
      assert.deepEqual(r.inputs, ['image'], query);
      assert.deepEqual(r.runInputs, ['image']);
      assert.deepEqual(r.logits, [1, 10]);
    });
  }

  it('format=static quantizes the same weights, leaves no float input behind, and refuses initializer_inputs=keep', async () => {
    const { report, model } = await quantize('format=static&calibration_data=random&calibration_samples=6&measure_latency=false');
    const weightOnly = await quantize('bits=8&min_elements=0&measure_latency=false');
    const staticNames = report.tensors.map((t) => t.name).sort();
    assert.deepEqual(staticNames, weightOnly.report.tensors.map((t) => t.name).sort(), 'static and weight-only quantize the same weights');
    for (const t of report.tensors) assert.ok(t.note?.includes(INITIALIZER_INPUT_NOTE), `${t.name}: ${t.note}`);
    assert.ok(report.static!.outputs[0]!.snr_db! > 10, JSON.stringify(report.static!.outputs));
    const r = await inspect(model);
    assert.deepEqual(r.inputs, ['image']);
    assert.deepEqual(r.runInputs, ['image']);
    const keep = await server().post('/v1/models/quantize?format=static&calibration_data=random&initializer_inputs=keep').set('content-type', 'application/octet-stream').send(tiny).expect(400);
    assert.equal(keep.body.code, 'QUANT_ERR_OPTION');
    assert.match(keep.body.message, /initializer_inputs=keep/);
    const job = await server().post('/v1/jobs?format=static&calibration_data=random&initializer_inputs=keep').set('content-type', 'application/octet-stream').send(tiny).expect(400);
    assert.equal(job.body.code, 'QUANT_ERR_OPTION', 'a job is refused before it is queued');
  });

  it('initializer_inputs=keep skips them as before: nothing quantized, the inputs unchanged', async () => {
    const { report, model } = await quantize('bits=8&initializer_inputs=keep&measure_latency=false');
    assert.deepEqual(report.tensors, []);
    for (const w of WEIGHTS) assert.equal(report.skipped.find((s) => s.name === w)?.reason, 'also a graph input, so callers may override it (initializer_inputs=keep)');
    assert.deepEqual((await inspect(model)).inputs, decodeModel(tiny).graph.inputs.map((v) => v.name));
    const bad = await server().post('/v1/models/quantize?initializer_inputs=float').set('content-type', 'application/octet-stream').send(tiny).expect(400);
    assert.match(bad.body.message, /initializer_inputs/);
  });

  it('a job streams the same result as the synchronous endpoint', async () => {
    const created = await server().post('/v1/jobs?bits=4&measure_latency=false').set('content-type', 'application/octet-stream').send(tiny).expect(202);
    const id = created.body.id as string;
    for (const end = Date.now() + 60_000; ; ) {
      const job = (await server().get(`/v1/jobs/${id}`).expect(200)).body as { status: string };
      if (job.status === 'succeeded') break;
      assert.notEqual(job.status, 'failed');
      assert.ok(Date.now() < end, 'the job did not finish');
      await new Promise((r) => setTimeout(r, 20));
    }
    const report = ModelReport.parse((await server().get(`/v1/jobs/${id}/report`).expect(200)).body);
    checkQuantized(report, 'job');
    assert.equal(report.validation.status, 'ok');
    const result = await server().get(`/v1/jobs/${id}/result`).buffer(true).parse(binaryParser).expect(200);
    const sync = await server().post('/v1/models/quantize?bits=4&measure_latency=false').set('content-type', 'application/octet-stream').buffer(true).parse(binaryParser).send(tiny).expect(200);
    assert.ok(Buffer.compare(result.body as Buffer, sync.body as Buffer) === 0);
    assert.deepEqual(decodeModel(result.body as Buffer).graph.inputs.map((v) => v.name), ['image']);
  });
});
