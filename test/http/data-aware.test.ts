// method=imatrix|gptq on /v1/quantize: the .npz body's activations or xtx, over HTTP.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import request from 'supertest';
import { encodeNpy } from '../../src/codecs/npy.js';
import { encodeNpz } from '../../src/codecs/npz.js';
import { reportFromSums } from '../../src/core/metrics.js';
import { gptq } from '../../src/core/methods/gptq.js';
import { calibrate, quantizeWith } from '../../src/core/quantize.js';
import { accumulateGramReference } from '../../src/core/reference/gram.js';
import { DequantizeResponse, QuantizeResponse } from '../../src/http/schemas/quantize.js';
import { correlated } from '../core/methods/gptq-helpers.js';
import { decodeF32, gaussian, testApp } from './helpers.js';

const app = await testApp();
const server = () => request(app.server);

function npz(members: Record<string, { data: Float32Array | Float64Array; shape: number[] }>): Buffer {
  return Buffer.from(encodeNpz(Object.entries(members).map(([name, m]) => ({ name: `${name}.npy`, data: encodeNpy(m.data, m.data instanceof Float64Array ? '<f8' : '<f4', m.shape) }))));
}
const post = (query: string, body: Buffer) => server().post(`/v1/quantize?${query}`).set('content-type', 'application/x-npz').send(body);

const OUT = 24;
const IN = 64;
const N = 200;
const w = new Float32Array(gaussian(OUT * IN, 3, 0.1));
const x = correlated(N, IN, 41);
const xtx = new Float64Array(IN * IN);
accumulateGramReference(xtx, x, N, IN);

test('gptq with activations [n, in] on an [out, in] weight: the core gptq codes and scales, a better output SNR than rtn, and dequantize takes the reply back', async () => {
  const res = await post('bits=4&scheme=asymmetric&granularity=per_group&group_size=32&method=gptq&include_values=true', npz({ tensor: { data: w, shape: [OUT, IN] }, activations: { data: x, shape: [N, IN] } })).expect(200);
  const body = QuantizeResponse.parse(res.body);
  assert.equal(body.method, 'gptq');
  const h = new Float64Array(IN * IN);
  // The route's Hessian is the kernel's; the reference's differs in the last bits only, and
  // these codes are the same either way (the fixture tests bound the difference).
  accumulateGramReference(h, x, N, IN);
  const want = gptq(w, OUT, IN, h, { bits: 4, scheme: 'asymmetric', groupSize: 32 });
  assert.deepEqual(body.quantized.values, Array.from(want.codes));
  assert.deepEqual((body.scale as number[][]).flat(), Array.from(want.scales));
  const da = body.data_aware!;
  assert.equal(da.statistics, 'activations');
  assert.equal(da.activation_rows, N);
  assert.equal(da.damp, 0.01);
  assert.ok(da.output_snr_db! > da.rtn_output_snr_db! + 0.5, `gptq ${da.output_snr_db} dB vs rtn ${da.rtn_output_snr_db} dB`);
  const reply = structuredClone(res.body) as { quantized: { values?: number[] } };
  delete reply.quantized.values;
  const back = await server().post('/v1/dequantize').send(reply).expect(200);
  const xHat = decodeF32(DequantizeResponse.parse(back.body).data);
  let sq = 0;
  for (let i = 0; i < w.length; i++) sq += (w[i]! - xHat[i]!) ** 2;
  assert.ok(Math.abs(sq / w.length - body.error.mse) <= 1e-9 * body.error.mse);
});

test('gptq on the ONNX [in, out] layout (per_group along axis 0) and per channel: the [out, in] result transposed; xtx gives what activations give', async () => {
  const t = new Float32Array(IN * OUT);
  for (let o = 0; o < OUT; o++) for (let i = 0; i < IN; i++) t[i * OUT + o] = w[o * IN + i]!;
  const byRows = QuantizeResponse.parse((await post('bits=3&scheme=symmetric&granularity=per_group&group_size=16&axis=1&method=gptq&gptq_act_order=true&include_values=true', npz({ tensor: { data: w, shape: [OUT, IN] }, xtx: { data: xtx, shape: [IN, IN] } })).expect(200)).body);
  const byCols = QuantizeResponse.parse((await post('bits=3&scheme=symmetric&granularity=per_group&group_size=16&axis=0&method=gptq&gptq_act_order=true&include_values=true', npz({ tensor: { data: t, shape: [IN, OUT] }, xtx: { data: xtx, shape: [IN, IN] } })).expect(200)).body);
  const codes = byCols.quantized.values!;
  for (let o = 0; o < OUT; o++) for (let i = 0; i < IN; i++) assert.equal(codes[i * OUT + o], byRows.quantized.values![o * IN + i]);
  const sc = byCols.scale as number[][];
  const sr = byRows.scale as number[][];
  for (let o = 0; o < OUT; o++) for (let b = 0; b < IN / 16; b++) assert.equal(sc[b]![o], sr[o]![b]);
  assert.equal(byRows.data_aware!.statistics, 'xtx');
  assert.equal(byRows.data_aware!.activation_rows, null);
  const want = gptq(w, OUT, IN, xtx, { bits: 3, scheme: 'symmetric', groupSize: 16, actOrder: true });
  assert.deepEqual(byRows.quantized.values, Array.from(want.codes));
  const perChannel = QuantizeResponse.parse((await post('bits=4&granularity=per_channel&axis=0&method=gptq&include_values=true', npz({ tensor: { data: w, shape: [OUT, IN] }, xtx: { data: xtx, shape: [IN, IN] } })).expect(200)).body);
  assert.deepEqual(perChannel.quantized.values, Array.from(gptq(w, OUT, IN, xtx, { bits: 4, scheme: 'symmetric', groupSize: IN }).codes));
});

test('imatrix: lsq weighted by diag(XᵀX) per input feature; compare_methods with statistics lists every method', async () => {
  const res = await post('bits=4&scheme=asymmetric&granularity=per_group&group_size=32&method=imatrix&compare_methods=true', npz({ tensor: { data: w, shape: [OUT, IN] }, xtx: { data: xtx, shape: [IN, IN] } })).expect(200);
  const body = QuantizeResponse.parse(res.body);
  const weights = new Float32Array(OUT * IN);
  for (let o = 0; o < OUT; o++) for (let i = 0; i < IN; i++) weights[o * IN + i] = xtx[i * IN + i]!;
  const spec = { bits: 4, scheme: 'asymmetric', granularity: 'per_group', axis: -1, groupSize: 32, calibration: 'minmax', percentile: 99.99, method: 'lsq', weights } as const;
  const params = calibrate(w, [OUT, IN], spec);
  assert.deepEqual((body.scale as number[][]).flat(), Array.from(params.scale));
  assert.deepEqual(body.error, reportFromSums(quantizeWith(w, params).sums));
  assert.deepEqual(Object.keys(body.methods!).sort(), ['gptq', 'hqq', 'imatrix', 'lsq', 'rtn']);
  assert.equal(body.methods!.imatrix, body.error.snr_db);
  assert.ok(body.data_aware!.output_snr_db! > body.data_aware!.rtn_output_snr_db!);
});

test('refusals name the culprit: missing or misshapen statistics, per_tensor, rank, statistics with a data-free method, given scales, the work bound', async () => {
  const cases: Array<[string, Buffer, string, RegExp]> = [
    ['method=gptq&granularity=per_channel', npz({ tensor: { data: w, shape: [OUT, IN] } }), 'QUANT_ERR_OPTION', /needs calibration statistics/],
    ['method=gptq&granularity=per_channel', npz({ tensor: { data: w, shape: [OUT, IN] }, activations: { data: x.subarray(0, N * 10), shape: [N, 10] } }), 'QUANT_ERR_TENSOR_SHAPE', /activations must be \[n, 64\]/],
    ['method=gptq&granularity=per_channel', npz({ tensor: { data: w, shape: [OUT, IN] }, xtx: { data: xtx.subarray(0, 64), shape: [8, 8] } }), 'QUANT_ERR_TENSOR_SHAPE', /xtx must be \[64, 64\]/],
    ['method=imatrix', npz({ tensor: { data: w, shape: [OUT, IN] }, xtx: { data: xtx, shape: [IN, IN] } }), 'QUANT_ERR_OPTION', /per_group or per_channel/],
    ['method=gptq&granularity=per_channel', npz({ tensor: { data: w, shape: [2, OUT / 2, IN] }, xtx: { data: xtx, shape: [IN, IN] } }), 'QUANT_ERR_TENSOR_SHAPE', /2-D weight/],
    ['method=lsq&granularity=per_channel', npz({ tensor: { data: w, shape: [OUT, IN] }, xtx: { data: xtx, shape: [IN, IN] } }), 'QUANT_ERR_OPTION', /does not use/],
    ['method=gptq&granularity=per_channel&scale=1', npz({ tensor: { data: w, shape: [OUT, IN] }, xtx: { data: xtx, shape: [IN, IN] } }), 'QUANT_ERR_OPTION', /fits its own scales/],
  ];
  const asym = Float64Array.from(xtx);
  asym[1] = asym[1]! + 1;
  cases.push(['method=gptq&granularity=per_channel', npz({ tensor: { data: w, shape: [OUT, IN] }, xtx: { data: asym, shape: [IN, IN] } }), 'QUANT_ERR_TENSOR_DATA', /not symmetric: xtx\[1, 0\]/]);
  for (const [query, body, code, re] of cases) {
    const res = await post(query, body).expect(400);
    assert.equal(res.body.code, code, `${query}: ${res.body.message}`);
    assert.match(res.body.message, re);
  }
  const small = await testApp({ dataAwareMaxMacs: 1000 });
  const big = await request(small.server).post('/v1/quantize?method=gptq&granularity=per_channel').set('content-type', 'application/x-npz').send(npz({ tensor: { data: w, shape: [OUT, IN] }, activations: { data: x, shape: [N, IN] } })).expect(413);
  assert.match(big.body.message, /DATA_AWARE_MAX_MACS=1000/);
  await small.close();
  // /v1/analyze counts every row that uses H: one gptq quantization fits 10^6 here, four rows do not.
  const mid = await testApp({ dataAwareMaxMacs: 1e6 });
  const stats = npz({ tensor: { data: w, shape: [OUT, IN] }, xtx: { data: xtx, shape: [IN, IN] } });
  await request(mid.server).post('/v1/quantize?method=gptq&granularity=per_group&group_size=32').set('content-type', 'application/x-npz').send(stats).expect(200);
  const rows = await request(mid.server).post('/v1/analyze?bits=3,4&schemes=asymmetric&granularities=per_group&calibrations=minmax&methods=rtn,gptq&group_size=32').set('content-type', 'application/x-npz').send(stats).expect(413);
  assert.match(rows.body.message, /4 rows, needs about \d+ multiply-adds; the limit is DATA_AWARE_MAX_MACS=1000000/);
  await mid.close();
});

test('analyze with an .npz of tensor and xtx: every row has output_snr_db, gptq rows beat rtn rows, and the recommendation (by output SNR) can name gptq', async () => {
  const body = npz({ tensor: { data: w, shape: [OUT, IN] }, xtx: { data: xtx, shape: [IN, IN] } });
  const q = 'bits=3,4&schemes=asymmetric&granularities=per_group,per_tensor&calibrations=minmax&methods=rtn,lsq,imatrix,gptq&group_size=32&gptq_act_order=true';
  const res = await server().post(`/v1/analyze?${q}`).set('content-type', 'application/x-npz').send(body).expect(200);
  const rows = res.body.rows as Array<{ bits: number; granularity: string; method: string; output_snr_db: number | null }>;
  // Data-aware methods only where they apply: per_group rows, not per_tensor.
  assert.equal(rows.length, 2 * (1 * 4 + 1 * 2));
  for (const r of rows) assert.ok('output_snr_db' in r);
  const at = (bits: number, method: string) => rows.find((r) => r.bits === bits && r.granularity === 'per_group' && r.method === method)!.output_snr_db!;
  for (const bits of [3, 4]) assert.ok(at(bits, 'gptq') > at(bits, 'rtn'), `${bits}-bit gptq ${at(bits, 'gptq')} vs rtn ${at(bits, 'rtn')}`);
  // A target between the other 3-bit rows and 3-bit gptq: gptq reaches it at the smallest size
  // (3-bit codes take 4-bit containers, so between equal sizes the higher output SNR wins).
  const target = (at(3, 'gptq') + Math.max(at(3, 'rtn'), at(3, 'lsq'), at(3, 'imatrix'))) / 2;
  const rec = await server().post(`/v1/analyze?${q}&target_snr_db=${target}`).set('content-type', 'application/x-npz').send(body).expect(200);
  assert.equal(rec.body.recommended.method, 'gptq');
  const sizes = (rec.body.rows as Array<{ output_snr_db: number | null; size: { quantized_bytes: number } }>).filter((r) => r.output_snr_db !== null && r.output_snr_db >= target).map((r) => r.size.quantized_bytes);
  assert.equal(rec.body.recommended.size.quantized_bytes, Math.min(...sizes));
  const refused = await server().post('/v1/analyze?methods=gptq').send({ tensor: { data: Array.from(w), shape: [OUT, IN] } }).expect(400);
  assert.match(refused.body.message, /needs calibration statistics/);
});

test('wide activations (256 inputs: XᵀX on onnxruntime) give /v1/quantize and /v1/analyze what their float64 xtx gives, to 0.01 dB', async () => {
  const inW = 256;
  const n = 600;
  const ww = new Float32Array(gaussian(8 * inW, 5, 0.1));
  const xw = correlated(n, inW, 43);
  const h = new Float64Array(inW * inW);
  accumulateGramReference(h, xw, n, inW);
  const q = 'bits=4&scheme=asymmetric&granularity=per_group&group_size=32&method=gptq';
  const byActs = QuantizeResponse.parse((await post(q, npz({ tensor: { data: ww, shape: [8, inW] }, activations: { data: xw, shape: [n, inW] } })).expect(200)).body).data_aware!;
  const byXtx = QuantizeResponse.parse((await post(q, npz({ tensor: { data: ww, shape: [8, inW] }, xtx: { data: h, shape: [inW, inW] } })).expect(200)).body).data_aware!;
  assert.equal(byActs.statistics, 'activations');
  assert.equal(byActs.activation_rows, n);
  assert.ok(Math.abs(byActs.output_snr_db! - byXtx.output_snr_db!) < 0.01, `${byActs.output_snr_db} vs ${byXtx.output_snr_db}`);
  const aq = 'bits=3,4&schemes=asymmetric&granularities=per_tensor,per_group&calibrations=minmax&methods=rtn,gptq&group_size=32';
  const analyze = async (members: Parameters<typeof npz>[0]) =>
    (await server().post(`/v1/analyze?${aq}`).set('content-type', 'application/x-npz').send(npz(members)).expect(200)).body as { rows: { method: string; output_snr_db?: number | null }[] };
  const a = await analyze({ tensor: { data: ww, shape: [8, inW] }, activations: { data: xw, shape: [n, inW] } });
  const b = await analyze({ tensor: { data: ww, shape: [8, inW] }, xtx: { data: h, shape: [inW, inW] } });
  assert.equal(a.rows.length, b.rows.length);
  assert.ok(a.rows.some((r) => r.method === 'gptq'));
  for (const [i, r] of a.rows.entries()) {
    const other = b.rows[i]!.output_snr_db;
    if (r.output_snr_db === null || r.output_snr_db === undefined) assert.equal(other ?? null, r.output_snr_db ?? null);
    else assert.ok(Math.abs(r.output_snr_db - other!) < 0.01, `row ${i}: ${r.output_snr_db} vs ${other}`);
  }
});
