// What validation runs on, and what it says when that is not enough: `dims` for symbolic
// dimensions (sync and jobs), `inconclusive` for outputs that are constant on both models,
// skipped validations that say what to send, integer and boolean arrays in `inputs`.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import request from 'supertest';
import { encodeNpy } from '../../src/codecs/npy.js';
import { encodeNpz } from '../../src/codecs/npz.js';
import { floatTensor, graph, model, node, valueInfo } from '../../src/onnx/graph/build.js';
import { encodeModelBytes } from '../../src/onnx/proto/encode.js';
import { DataType } from '../../src/onnx/proto/model.js';
import { ModelJsonResponse, ModelReport } from '../../src/http/schemas/models.js';
import { embeddingNet, meanRemovedConv, randn, reflectPadConv } from '../onnx/models.js';
import { testApp } from './helpers.js';

const app = await testApp();
const server = () => request(app.server);
const centered = Buffer.from(meanRemovedConv().bytes);
const streaming = Buffer.from(reflectPadConv().bytes);
const embedding = Buffer.from(embeddingNet().bytes);

async function report(body: Buffer, query: string, inputs?: Buffer) {
  const req = server().post(`/v1/models/quantize${query}`).set('accept', 'application/json');
  const res = inputs ? await req.attach('model', body, 'm.onnx').attach('inputs', inputs, 'inputs.npz') : await req.set('content-type', 'application/octet-stream').send(body);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return ModelJsonResponse.parse(res.body);
}

describe('validation inputs', () => {
  it('outputs that are all zero on both models at 1×1 are inconclusive, with the dims to send; with dims they are compared', async () => {
    const r = await report(centered, '');
    const v = r.validation;
    assert.equal(v.status, 'inconclusive');
    if (v.status !== 'inconclusive') return;
    assert.match(v.reason, /every output is constant on both models \(y: all zero\)/);
    assert.match(v.what_to_send, /dims=height:<size>,width:<size> .*\(the symbolic dimensions height, width were set to 1\)/);
    assert.deepEqual(v.dims, { height: 1, width: 1 });
    assert.equal(v.weights_only.outputs[0]!.constant, true);
    assert.equal(v.weights_only.outputs[0]!.cosine_similarity, 1, 'the figures alone would have looked perfect');
    assert.match(r.summary.worst_tensor!.name, /W/);

    const sized = await report(centered, '?dims=height:12,width:10');
    assert.equal(sized.validation.status, 'ok');
    if (sized.validation.status !== 'ok') return;
    assert.deepEqual(sized.validation.dims, { height: 12, width: 10 });
    assert.deepEqual(sized.validation.inputs[0]!.shape, [1, 16, 12, 10]);
    const out = sized.validation.weights_only.outputs[0]!;
    assert.equal(out.constant, undefined);
    assert.deepEqual(out.shape, [1, 64, 12, 10]);
    assert.ok(out.cosine_similarity > 0.99 && out.cosine_similarity < 1, String(out.cosine_similarity));
  });

  it('a streaming model that needs length ≥ 2 is skipped at length 1 with what to send, and validated with dims=sequence:N', async () => {
    const r = await report(streaming, '');
    const v = r.validation;
    assert.equal(v.status, 'skipped');
    if (v.status !== 'skipped') return;
    assert.match(v.reason, /onnxruntime cannot run the original model on the inputs made for it \(x float32\[1, 32, 1\] random\)/);
    assert.match(v.what_to_send ?? '', /dims=sequence:<size>/);
    assert.ok(r.tensors.length === 1, 'the model is still quantized');
    const header = await server().post('/v1/models/quantize').set('content-type', 'application/octet-stream').send(streaming).expect(200);
    assert.match(JSON.parse(header.headers['x-quantization-summary'] as string).validation.what_to_send, /dims=sequence/);

    for (const query of ['?dims=sequence:2', '?dims=sequence:64&bits=4']) {
      const ok = await report(streaming, query);
      assert.equal(ok.validation.status, 'ok', query);
      if (ok.validation.status === 'ok') assert.ok(ok.validation.weights_only.outputs[0]!.cosine_similarity > 0.95, query);
    }
  });

  it('bad dims are 400s that name the culprit; dims past MAX_ELEMENTS are refused before allocation', async () => {
    const bad = async (query: string, status: number, code: string, message: RegExp) => {
      const res = await server().post(`/v1/models/quantize${query}`).set('content-type', 'application/octet-stream').send(streaming);
      assert.equal(res.status, status, JSON.stringify(res.body));
      assert.equal(res.body.code, code);
      assert.match(res.body.message, message);
    };
    await bad('?dims=sequence', 400, 'QUANT_ERR_VALIDATION', /'sequence' is not name:size/);
    await bad('?dims=sequence:0', 400, 'QUANT_ERR_VALIDATION', /size ≥ 1/);
    await bad('?dims=sequence:2,sequence:3', 400, 'QUANT_ERR_VALIDATION', /'sequence' is given twice/);
    await bad('?dims=time:16', 400, 'QUANT_ERR_OPTION', /dims: 'time' is not a symbolic dimension of the model's inputs \(its symbolic dimensions: sequence\)/);
    await bad('?dims=sequence:100000000', 413, 'QUANT_ERR_TOO_MANY_ELEMENTS', /input 'x' would have shape \[1, 32, 100000000\]/);
    await bad('?dims=toString:3', 400, 'QUANT_ERR_OPTION', /'toString' is not a symbolic dimension/);
  });

  it('integer inputs take integer arrays from the inputs .npz (and refuse values they cannot hold)', async () => {
    const ids = BigInt64Array.from([3, 14, 15, 92, 65, 35].map(BigInt));
    const npz = (data: ArrayBufferView, descr: string) => Buffer.from(encodeNpz([{ name: 'ids.npy', data: encodeNpy(data, descr, [1, 6]) }]));
    const r = await report(embedding, '?min_elements=64', npz(ids, '<i8'));
    assert.equal(r.validation.status, 'ok');
    if (r.validation.status === 'ok') {
      assert.deepEqual(r.validation.inputs, [{ name: 'ids', dtype: 'int64', shape: [1, 6], source: 'user' }]);
      assert.ok(r.validation.weights_only.outputs[0]!.cosine_similarity > 0.999);
    }
    // int32 and uint8 arrays hold ids too; a float array of whole numbers is taken as well.
    for (const [data, descr] of [[Int32Array.of(1, 2, 3, 4, 5, 6), '<i4'], [Uint8Array.of(9, 8, 7, 6, 5, 4), '|u1'], [Float32Array.of(1, 2, 3, 4, 5, 6), '<f4']] as const) {
      assert.equal((await report(embedding, '?min_elements=64', npz(data, descr))).validation.status, 'ok', descr);
    }
    const res = await server().post('/v1/models/quantize').attach('model', embedding, 'm.onnx').attach('inputs', npz(Float32Array.of(1, 2.5, 3, 4, 5, 6), '<f4'), 'inputs.npz');
    assert.equal(res.status, 400);
    assert.match(res.body.message, /inputs: 'ids' holds 2.5 at flat index 1, which input 'ids' \(int64\) cannot take/);
  });

  it('PyTorch exports (test/fixtures/models): a detector at 1×1 is inconclusive, a reflect-padded Conv1d at length 1 skipped; with dims both are compared', async () => {
    const detector = readFileSync('test/fixtures/models/detector.onnx');
    const stream = readFileSync('test/fixtures/models/streaming.onnx');
    const d1 = await report(detector, '');
    assert.equal(d1.validation.status, 'inconclusive');
    if (d1.validation.status === 'inconclusive') {
      assert.match(d1.validation.reason, /prob: a single value/);
      assert.match(d1.validation.what_to_send, /dims=height:<size>,width:<size>/);
    }
    const d2 = await report(detector, '?dims=height:64,width:48');
    assert.equal(d2.validation.status, 'ok');
    if (d2.validation.status === 'ok') {
      const out = d2.validation.weights_only.outputs[0]!;
      assert.deepEqual(out.shape, [1, 1, 64, 48]);
      assert.ok(out.cosine_similarity > 0.999, String(out.cosine_similarity));
    }
    const s1 = await report(stream, '');
    assert.equal(s1.validation.status, 'skipped');
    if (s1.validation.status === 'skipped') assert.match(s1.validation.what_to_send ?? '', /dims=time:<size>/);
    assert.equal(s1.tensors.length, 2, 'both Conv1d weights are quantized all the same');
    const s2 = await report(stream, '?dims=time:100');
    assert.equal(s2.validation.status, 'ok');
    if (s2.validation.status === 'ok') assert.ok(s2.validation.weights_only.outputs[0]!.cosine_similarity > 0.999);
  });

  it('boolean inputs take bool arrays from the inputs .npz', async () => {
    const g = graph({
      nodes: [node('MatMul', ['x', 'W'], ['h'], { name: 'mm' }), node('Where', ['keep', 'h', 'zero'], ['y'], { name: 'mask' })],
      initializers: [floatTensor('W', [64, 64], randn(64 * 64, 9, 0.125)), floatTensor('zero', [1], Float32Array.of(0))],
      inputs: [valueInfo('x', DataType.float32, ['n', 64]), valueInfo('keep', DataType.bool, ['n', 64])],
      outputs: [valueInfo('y', DataType.float32, ['n', 64])],
    });
    const keep = Uint8Array.from({ length: 3 * 64 }, (_, i) => (i % 3 === 0 ? 0 : 1));
    const inputs = Buffer.from(encodeNpz([
      { name: 'x.npy', data: encodeNpy(randn(3 * 64, 4), '<f4', [3, 64]) },
      { name: 'keep.npy', data: encodeNpy(keep, '|b1', [3, 64]) },
    ]));
    const r = await report(Buffer.from(encodeModelBytes(model(g))), '', inputs);
    assert.equal(r.validation.status, 'ok');
    if (r.validation.status === 'ok') {
      assert.deepEqual(r.validation.inputs.map((i) => [i.name, i.dtype, i.source]), [['x', 'float32', 'user'], ['keep', 'bool', 'user']]);
      assert.ok(r.validation.weights_only.outputs[0]!.cosine_similarity > 0.999);
    }
  });

  it('POST /v1/jobs takes dims as well, and its report says the same', async () => {
    const sub = await server().post('/v1/jobs?dims=sequence:8').set('content-type', 'application/octet-stream').send(streaming).expect(202);
    const id = sub.body.id as string;
    let status = 'queued';
    for (let i = 0; i < 1000 && status !== 'succeeded' && status !== 'failed'; i++) {
      await new Promise((r) => setTimeout(r, 20));
      status = (await server().get(`/v1/jobs/${id}`).expect(200)).body.status;
    }
    assert.equal(status, 'succeeded');
    const rep = ModelReport.parse((await server().get(`/v1/jobs/${id}/report`).expect(200)).body);
    assert.equal(rep.validation.status, 'ok');
    if (rep.validation.status === 'ok') assert.deepEqual(rep.validation.dims, { sequence: 8 });
    await server().delete(`/v1/jobs/${id}`).expect(204);
  });
});
