import assert from 'node:assert/strict';
import { test } from 'node:test';
import request from 'supertest';
import { reportFromSums } from '../../src/core/metrics.js';
import { quantize } from '../../src/core/quantize.js';
import { AnalyzeResponse } from '../../src/http/schemas/analyze.js';
import { MatmulResponse } from '../../src/http/schemas/matmul.js';
import { decodeF32, gaussian, testApp } from './helpers.js';

const app = await testApp();
const server = () => request(app.server);

test('analyze runs every combination by default and each row matches the core', async () => {
  const data = gaussian(256, 21, 3);
  const res = await server().post('/v1/analyze').send({ tensor: { data, shape: [16, 16] }, group_size: 8 }).expect(200);
  const body = AnalyzeResponse.parse(res.body);
  assert.equal(body.rows.length, 4 * 2 * 3 * 3);
  assert.equal(body.recommended, null);
  const row = body.rows.find((r) => r.bits === 4 && r.scheme === 'asymmetric' && r.granularity === 'per_group' && r.calibration === 'percentile')!;
  const ref = quantize(new Float32Array(data), [16, 16], {
    bits: 4, scheme: 'asymmetric', granularity: 'per_group', axis: -1, groupSize: 8, calibration: 'percentile', percentile: 99.99,
  });
  assert.deepEqual(row.error, reportFromSums(ref.sums));
});

test('analyze recommends the smallest row that reaches the target SNR', async () => {
  const data = gaussian(512, 4);
  const res = await server()
    .post('/v1/analyze?bits=2,4,8&schemes=symmetric&calibrations=minmax,mse&granularities=per_tensor&target_snr_db=20')
    .send({ tensor: { data } })
    .expect(200);
  assert.equal(res.body.rows.length, 6);
  const ok = res.body.rows.filter((r: { error: { snr_db: number } }) => r.error.snr_db >= 20);
  const smallest = Math.min(...ok.map((r: { size: { quantized_bytes: number } }) => r.size.quantized_bytes));
  assert.equal(res.body.recommended.size.quantized_bytes, smallest);
  assert.equal(res.body.recommended.bits, 4);
});

test('matmul multiplies quantized integers exactly and reports the error against float32', async () => {
  const a = gaussian(6 * 5, 7, 2);
  const b = gaussian(5 * 4, 8, 3);
  for (const granularity of ['per_tensor', 'per_channel'] as const) {
    const res = await server()
      .post('/v1/matmul')
      .send({ a: { data: a, shape: [6, 5] }, b: { data: b, shape: [5, 4] }, bits: 8, scheme: 'asymmetric', granularity })
      .expect(200);
    const body = MatmulResponse.parse(res.body);
    assert.deepEqual(body.shape, [6, 4]);
    const c = decodeF32(body.result.data);
    const qa = quantize(new Float32Array(a), [6, 5], { bits: 8, scheme: 'asymmetric', granularity, axis: 0, groupSize: 1, calibration: 'minmax', percentile: 99.99 });
    const qb = quantize(new Float32Array(b), [5, 4], { bits: 8, scheme: 'asymmetric', granularity, axis: 1, groupSize: 1, calibration: 'minmax', percentile: 99.99 });
    const ch = granularity === 'per_channel';
    for (let m = 0; m < 6; m++) {
      for (let n = 0; n < 4; n++) {
        let acc = 0;
        for (let k = 0; k < 5; k++) {
          acc += (qa.q[m * 5 + k]! - qa.params.zeroPoint[ch ? m : 0]!) * (qb.q[k * 4 + n]! - qb.params.zeroPoint[ch ? n : 0]!);
        }
        assert.equal(c[m * 4 + n], Math.fround(acc * Math.fround(qa.params.scale[ch ? m : 0]! * qb.params.scale[ch ? n : 0]!)));
      }
    }
    assert.ok(body.error.relative_error! < 0.02, `relative error ${body.error.relative_error}`);
    assert.equal(body.memory.float32_bytes, 4 * (30 + 20));
  }
});

test('matmul names mismatched inner dimensions', async () => {
  const res = await server().post('/v1/matmul').send({ a: { data: [[1, 2]] }, b: { data: [[1, 2]] } }).expect(400);
  assert.equal(res.body.code, 'QUANT_ERR_TENSOR_SHAPE');
  assert.match(res.body.message, /a\.shape\[1\] must equal b\.shape\[0\]/);
});
