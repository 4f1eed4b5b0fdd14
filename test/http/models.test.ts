import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import request from 'supertest';
import { encodeNpy } from '../../src/codecs/npy.js';
import { encodeNpz } from '../../src/codecs/npz.js';
import { floatTensor, graph, model, node, valueInfo } from '../../src/onnx/graph/build.js';
import { decodeModel } from '../../src/onnx/proto/decode.js';
import { encodeModelBytes } from '../../src/onnx/proto/encode.js';
import { DataType } from '../../src/onnx/proto/model.js';
import { isExternal } from '../../src/onnx/proto/tensor-data.js';
import { ModelJsonResponse } from '../../src/http/schemas/models.js';
import { gemmMlp, matmulNet, randn, withExternalData } from '../onnx/models.js';
import { binaryParser, testApp } from './helpers.js';

const app = await testApp();
const server = () => request(app.server);
const mlp = Buffer.from(gemmMlp().bytes);
const mm = Buffer.from(matmulNet().bytes);

function post(query = '') {
  return server().post(`/v1/models/quantize${query}`).buffer(true).parse(binaryParser);
}

function octet(body: Buffer, query = '') {
  return post(query).set('content-type', 'application/octet-stream').send(body);
}

function json(res: request.Response) {
  return Buffer.isBuffer(res.body) ? JSON.parse(res.body.toString('utf8')) : res.body;
}

async function expectError(res: Promise<request.Response>, status: number, code: string, message?: RegExp) {
  const r = await res;
  assert.equal(r.status, status, JSON.stringify(json(r)));
  const body = json(r);
  assert.equal(body.code, code);
  if (message) assert.match(body.message, message);
}

/** multipart/mixed → its parts' headers and bodies. */
function splitMixed(res: request.Response): { headers: string; body: Buffer }[] {
  const boundary = /boundary=(.+)$/.exec(res.headers['content-type'] as string)![1]!;
  const raw = res.body as Buffer;
  const parts: { headers: string; body: Buffer }[] = [];
  let at = raw.indexOf(`--${boundary}`);
  for (;;) {
    const start = at + boundary.length + 2;
    if (raw.subarray(start, start + 2).toString() === '--') break;
    const headEnd = raw.indexOf('\r\n\r\n', start);
    const next = raw.indexOf(`\r\n--${boundary}`, headEnd);
    parts.push({ headers: raw.subarray(start + 2, headEnd).toString(), body: raw.subarray(headEnd + 4, next) });
    at = next + 2;
  }
  return parts;
}

describe('POST /v1/models/quantize', () => {
  it('takes the raw .onnx and returns the quantized model with a summary header', async () => {
    const res = await octet(mlp, '?bits=4').expect(200);
    assert.equal(res.headers['content-type'], 'application/octet-stream');
    assert.equal(res.headers['content-disposition'], 'attachment; filename="model.4bit.onnx"');
    const summary = JSON.parse(res.headers['x-quantization-summary'] as string);
    assert.equal(summary.bits, 4);
    assert.deepEqual(summary.formats, { matmulnbits: 2 });
    assert.equal(summary.quantized_bytes, (res.body as Buffer).length);
    assert.equal(summary.validation.status, 'ok');
    assert.ok(summary.validation.min_cosine_weights_only >= 0.98);
    const out = decodeModel(res.body as Buffer);
    assert.deepEqual(out.graph.nodes.map((n) => n.opType), ['MatMulNBits', 'Relu', 'MatMulNBits']);
  });

  it('takes a raw .onnx bigger than the size at which tensor bodies go to a kernel arena', async () => {
    const w = randn(768 * 512, 9);
    const big = graph({
      nodes: [node('MatMul', ['x', 'W'], ['y'], { name: 'mm' })],
      initializers: [floatTensor('W', [768, 512], w)],
      inputs: [valueInfo('x', DataType.float32, [1, 768])],
      outputs: [valueInfo('y', DataType.float32, [1, 512])],
    });
    const bytes = Buffer.from(encodeModelBytes(model(big)));
    assert.ok(bytes.length > 1 << 20);
    const res = await octet(bytes, '?bits=8').expect(200);
    const summary = JSON.parse(res.headers['x-quantization-summary'] as string);
    assert.equal(summary.tensors_quantized, 1);
    assert.equal(summary.validation.status, 'ok');
  });

  it('takes multipart with option fields and names the reply after the upload', async () => {
    const res = await post().field('bits', '8').field('exclude', 'fc2').attach('model', mlp, 'my mlp.onnx').expect(200);
    assert.equal(res.headers['content-disposition'], 'attachment; filename="my_mlp.8bit.onnx"');
    const summary = JSON.parse(res.headers['x-quantization-summary'] as string);
    assert.deepEqual([summary.tensors_quantized, summary.tensors_skipped], [1, 1]);
  });

  it('answers JSON with the report and the same model in base64', async () => {
    const [bin, res] = await Promise.all([octet(mm, '?bits=8').expect(200), octet(mm, '?bits=8').set('accept', 'application/json').expect(200)]);
    const body = ModelJsonResponse.parse(json(res));
    assert.deepEqual(Buffer.from(body.model.data, 'base64'), bin.body);
    const rows = body.tensors.map((t) => [t.name, t.format, t.granularity, t.axis]).sort();
    assert.deepEqual(rows, [
      ['W1', 'qdq', 'per_channel', 1],
      ['W2', 'qdq', 'per_channel', 1],
    ]);
    assert.ok(body.validation.status === 'ok');
    if (body.validation.status === 'ok') {
      assert.equal(body.validation.inputs[0]!.source, 'random');
      assert.ok(body.validation.weights_only.outputs[0]!.cosine_similarity >= 0.999);
      assert.ok(body.validation.default_optimization.outputs[0]!.cosine_similarity >= 0.99);
    }
    const t = body.summary.timings_ms;
    assert.equal(t.quantize, body.summary.quantize_ms);
    assert.ok(t.decode >= 0 && t.encode >= 0 && t.validation > 0, JSON.stringify(t));
    assert.equal(t.calibrate, 0, 'a weight-only model calibrates no activations');
    const snrs = body.tensors.map((t) => t.snr_db!);
    assert.deepEqual(snrs, [...snrs].sort((a, b) => a - b), 'worst first');
  });

  it('answers multipart/mixed with the report and the model, without base64', async () => {
    const [bin, res] = await Promise.all([octet(mlp, '?bits=4').expect(200), octet(mlp, '?bits=4').set('accept', 'multipart/mixed').expect(200)]);
    const [report, modelPart] = splitMixed(res);
    assert.match(report!.headers, /content-type: application\/json/);
    assert.equal(JSON.parse(report!.body.toString()).summary.bits, 4);
    assert.match(modelPart!.headers, /filename="model.4bit.onnx"/);
    assert.deepEqual(modelPart!.body, bin.body);
  });

  it('lets a user exclude the worst layer and retry', async () => {
    const first = ModelJsonResponse.parse(json(await octet(mlp, '?bits=4').set('accept', 'application/json').expect(200)));
    const worst = first.tensors[0]!;
    const retry = ModelJsonResponse.parse(json(await octet(mlp, `?bits=4&exclude=${worst.node}`).set('accept', 'application/json').expect(200)));
    assert.deepEqual(retry.skipped, [{ name: worst.name, reason: `excluded by '${worst.node}'` }]);
    assert.ok(retry.summary.quantized_bytes > first.summary.quantized_bytes);
  });

  it('reads weights from uploaded external data files and returns a self-contained model', async () => {
    const ext = withExternalData(gemmMlp(), ['W1', 'b1'], 'mlp.data');
    const res = await post('?bits=4').attach('model', Buffer.from(ext.bytes), 'mlp.onnx').attach('mlp.data', Buffer.from(ext.data), 'mlp.data').expect(200);
    const out = decodeModel(res.body as Buffer);
    assert.ok(!out.graph.initializers.some(isExternal));
    const b1 = out.graph.initializers.find((t) => t.name === 'b1')!;
    assert.deepEqual(Buffer.from(b1.rawData!), Buffer.from(gemmMlp().model.graph.initializers[1]!.rawData!));
    assert.equal(JSON.parse(res.headers['x-quantization-summary'] as string).validation.status, 'ok');
    await expectError(post().attach('model', Buffer.from(ext.bytes), 'mlp.onnx'), 400, 'QUANT_ERR_ONNX', /'mlp\.data', which was not uploaded/);
  });

  it('validates on the caller’s inputs from an .npz', async () => {
    const x = randn(3 * 256, 77);
    const npz = Buffer.from(encodeNpz([{ name: 'x.npy', data: encodeNpy(x, '<f4', [3, 256]) }]));
    const res = await post().set('accept', 'application/json').attach('model', mlp, 'mlp.onnx').attach('inputs', npz, 'inputs.npz').expect(200);
    const v = json(res).validation;
    assert.deepEqual(v.inputs, [{ name: 'x', dtype: 'float32', shape: [3, 256], source: 'user' }]);
    assert.deepEqual(v.weights_only.outputs[0].shape, [3, 128]);
    const wrong = Buffer.from(encodeNpz([{ name: 'nope.npy', data: encodeNpy(x, '<f4', [3, 256]) }]));
    await expectError(post().attach('model', mlp, 'mlp.onnx').attach('inputs', wrong, 'inputs.npz'), 400, 'QUANT_ERR_OPTION', /'nope', which is not an input/);
  });

  it('skips validation on request', async () => {
    const res = await octet(mlp, '?validate=false').expect(200);
    assert.deepEqual(JSON.parse(res.headers['x-quantization-summary'] as string).validation, { status: 'skipped', reason: 'validate=false', what_to_send: 'validate=true to compare both models in onnxruntime' });
  });
});

describe('POST /v1/models/quantize refuses bad uploads with a 400 that says why', () => {
  it('random bytes, truncated protobuf, a protobuf that is not a model, an empty body', async () => {
    await expectError(octet(Buffer.from(randn(500, 3).buffer)), 400, 'QUANT_ERR_ONNX');
    await expectError(octet(mlp.subarray(0, 5000)), 400, 'QUANT_ERR_ONNX', /truncated or corrupt/);
    const tensorProto = encodeModelBytes(model(graph({ nodes: [], inputs: [], outputs: [] }))).subarray(2);
    await expectError(octet(Buffer.from(tensorProto)), 400, 'QUANT_ERR_ONNX', /not a model|ONNX/);
    await expectError(octet(Buffer.alloc(0)), 400, 'QUANT_ERR_VALIDATION', /send the model/);
  });

  it('a graph that refers to a missing initializer', async () => {
    const g = graph({
      nodes: [node('MatMul', ['x', 'W'], ['y'], { name: 'mm' })],
      initializers: [floatTensor('V', [4, 4], randn(16, 1))],
      inputs: [valueInfo('x', DataType.float32, [1, 4])],
      outputs: [valueInfo('y', DataType.float32, [1, 4])],
    });
    await expectError(octet(Buffer.from(encodeModelBytes(model(g)))), 400, 'QUANT_ERR_ONNX', /node 0 'mm' \(MatMul\) input 1 'W'/);
  });

  it('a graph ONNX rejects: a name defined twice is a 400 naming it, never a quantized model', async () => {
    const W = floatTensor('W', [4, 4], randn(16, 1));
    const twoInits = graph({
      nodes: [node('MatMul', ['x', 'W'], ['y'], { name: 'mm' })],
      initializers: [W, { ...W }],
      inputs: [valueInfo('x', DataType.float32, [1, 4])],
      outputs: [valueInfo('y', DataType.float32, [1, 4])],
    });
    await expectError(octet(Buffer.from(encodeModelBytes(model(twoInits)))), 400, 'QUANT_ERR_ONNX', /two initializers are named 'W'/);
    const twoOutputs = graph({
      nodes: [node('MatMul', ['x', 'W'], ['y'], { name: 'mm' }), node('Relu', ['x'], ['y'], { name: 'relu' })],
      initializers: [W],
      inputs: [valueInfo('x', DataType.float32, [1, 4])],
      outputs: [valueInfo('y', DataType.float32, [1, 4])],
    });
    await expectError(octet(Buffer.from(encodeModelBytes(model(twoOutputs))), '?min_elements=1'), 400, 'QUANT_ERR_ONNX', /'y' is defined twice, as output of node 0 'mm' \(MatMul\) and as output of node 1 'relu'/);
  });

  it('a weight whose dims promise more values than its data holds', async () => {
    const w = { ...floatTensor('W', [100_000, 100_000], randn(4, 1)) };
    const g = graph({
      nodes: [node('MatMul', ['x', 'W'], ['y'], { name: 'mm' })],
      initializers: [w],
      inputs: [valueInfo('x', DataType.float32, [1, 100_000])],
      outputs: [valueInfo('y', DataType.float32, [1, 100_000])],
    });
    await expectError(octet(Buffer.from(encodeModelBytes(model(g)))), 400, 'QUANT_ERR_ONNX', /raw_data holds 16 bytes; 10000000000 float32 values need/);
  });

  it('options that are invalid, or that the model cannot take', async () => {
    await expectError(octet(mlp, '?bits=5'), 400, 'QUANT_ERR_VALIDATION', /bits/);
    await expectError(octet(mlp, '?bits=3&format=matmulnbits'), 400, 'QUANT_ERR_OPTION', /MatMulNBits takes bits 2, 4, 8 only/);
    await expectError(octet(mlp, '?format=fp8e4m3'), 400, 'QUANT_ERR_OPTION', /format=fp8e4m3 needs opset ≥ 19.*this model has opset 17/);
    await expectError(octet(mlp, '?format=nf4&group_size=48'), 400, 'QUANT_ERR_OPTION', /format=nf4 \(MatMulBnb4\) needs group_size in 16, 32, 64, 128, 256/);
    await expectError(octet(mlp, '?format=nf4&method=lsq'), 400, 'QUANT_ERR_OPTION', /method=lsq .* use method=rtn/);
    await expectError(octet(mlp, '?method=magic'), 400, 'QUANT_ERR_VALIDATION', /method/);
    await expectError(octet(mlp, '?method=gptq'), 400, 'QUANT_ERR_CALIBRATION', /method=gptq needs calibration data/);
    await expectError(octet(mlp, '?op_types=MatMul,Softmax'), 400, 'QUANT_ERR_VALIDATION', /op_types/);
    await expectError(octet(mlp, '?format=qdq&bits=4'), 400, 'QUANT_ERR_OPTION', /opset ≥ 21/);
    await expectError(post().field('colour', 'blue').attach('model', mlp, 'm.onnx'), 400, 'QUANT_ERR_VALIDATION', /colour/);
    await expectError(post().attach('weights', mlp, 'm.onnx'), 400, 'QUANT_ERR_VALIDATION', /no file part named 'model'/);
    await expectError(octet(mlp).set('accept', 'text/html'), 406, 'QUANT_ERR_NOT_ACCEPTABLE');
  });
});

describe('model body limit', async () => {
  const small = await testApp({ modelBodyLimit: 100_000 });
  it('is MODEL_BODY_LIMIT for raw and multipart bodies alike (413)', async () => {
    const to = (query = '') => request(small.server).post(`/v1/models/quantize${query}`);
    await expectError(to().set('content-type', 'application/octet-stream').send(mlp), 413, 'QUANT_ERR_BODY_TOO_LARGE');
    await expectError(to().attach('model', mlp, 'm.onnx'), 413, 'QUANT_ERR_BODY_TOO_LARGE', /MODEL_BODY_LIMIT/);
  });
});

describe('model routes in the OpenAPI document', () => {
  it('describe their uploads and binary replies', async () => {
    const doc = (await server().get('/openapi.json').expect(200)).body;
    for (const path of ['/v1/models/quantize', '/v1/jobs']) {
      const body = doc.paths[path].post.requestBody;
      assert.deepEqual(Object.keys(body.content).sort(), ['application/octet-stream', 'multipart/form-data'], path);
      assert.equal(body.content['multipart/form-data'].schema.properties.model.format, 'binary');
    }
    const ok = doc.paths['/v1/models/quantize'].post.responses['200'].content;
    assert.equal(ok['application/octet-stream'].schema.format, 'binary');
    assert.ok(ok['application/json'].schema.properties.tensors);
    for (const p of ['/v1/jobs/{id}', '/v1/jobs/{id}/result', '/v1/jobs/{id}/report', '/v1/jobs/{id}/events']) assert.ok(doc.paths[p]?.get, p);
  });
});

describe('stopping a model task', async () => {
  const hasty = await testApp({ requestTimeoutMs: 1 });
  it('answers 504 past REQUEST_TIMEOUT_MS without terminating the worker (onnxruntime must not be killed mid-run)', async () => {
    const res = await request(hasty.server).post('/v1/models/quantize').set('content-type', 'application/octet-stream').send(mlp).expect(504);
    assert.equal(res.body.code, 'QUANT_ERR_TIMEOUT');
    assert.match(res.body.message, /REQUEST_TIMEOUT_MS=1 and was stopped: POST \/v1\/jobs takes the same request/);
    // The task stops at its next checkpoint; the same two workers go on serving.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(hasty.pool.threads, 2);
    const options = { bits: 8, scheme: 'symmetric' as const, granularity: 'per_tensor' as const, group_size: 128, calibration: 'minmax' as const, percentile: 99.99, include_values: false };
    const done = await hasty.pool.run({ op: 'quantize', input: { kind: 'json', data: [1, 2, 3] }, options, accept: 'json', limits: hasty.limits });
    assert.equal(done.contentType, 'application/json');
  });
});
