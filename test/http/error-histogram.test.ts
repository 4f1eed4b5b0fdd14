import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';
import request from 'supertest';
import { decodeNpz } from '../../src/codecs/npz.js';
import { encodeNpy } from '../../src/codecs/npy.js';
import { errorHistogram } from '../../src/core/metrics.js';
import { QuantizeResponse } from '../../src/http/schemas/quantize.js';
import { binaryParser, testApp } from './helpers.js';

// histogram_bins: the report's error histogram, against numpy.histogram of the NumPy
// reference's dequantized-minus-original (test/fixtures/histogram/generate.py).

interface Case {
  name: string;
  shape: number[];
  data: number[];
  options: Record<string, unknown>;
  bins: number;
  min: number;
  max: number;
  counts: number[];
}

const cases = JSON.parse(readFileSync(resolve(process.cwd(), 'test/fixtures/histogram/expected.json'), 'utf8')) as Case[];
const app = await testApp();
const server = () => request(app.server);

for (const c of cases) {
  test(`error histogram matches numpy.histogram: ${c.name}`, async () => {
    const res = await server()
      .post('/v1/quantize')
      .send({ tensor: { data: c.data, shape: c.shape }, ...c.options, histogram_bins: c.bins })
      .expect(200);
    QuantizeResponse.parse(res.body);
    const h = res.body.error_histogram;
    assert.equal(h.bins, c.bins);
    assert.equal(h.min, c.min);
    assert.equal(h.max, c.max);
    assert.deepEqual(h.counts, c.counts);
  });
}

test('no histogram unless asked for; the .npz report.json and NPY bodies with ?histogram_bins= carry it too', async () => {
  const c = cases[0]!;
  const plain = await server().post('/v1/quantize').send({ tensor: { data: c.data, shape: c.shape }, ...c.options }).expect(200);
  assert.equal(plain.body.error_histogram, undefined);
  const npy = encodeNpy(new Float32Array(c.data), '<f4', c.shape);
  const query = new URLSearchParams({ ...(c.options as Record<string, string>), histogram_bins: String(c.bins) });
  const res = await server()
    .post(`/v1/quantize?${query}`)
    .set('content-type', 'application/x-npy')
    .set('accept', 'application/x-npz')
    .send(Buffer.from(npy))
    .buffer(true)
    .parse(binaryParser)
    .expect(200);
  const report = JSON.parse(Buffer.from(decodeNpz(new Uint8Array(res.body as Buffer)).find((e) => e.name === 'report.json')!.data).toString());
  assert.deepEqual(report.error_histogram.counts, c.counts);
});

test('histogram_bins out of range is a 400 naming it', async () => {
  for (const bins of [-1, 4097, 2.5]) {
    const res = await server().post('/v1/quantize').send({ tensor: { data: [1, 2] }, histogram_bins: bins }).expect(400);
    assert.equal(res.body.code, 'QUANT_ERR_VALIDATION');
    assert.match(res.body.message, /histogram_bins/);
  }
});

test('errorHistogram edge cases: equal errors fill the first bin, the maximum falls in the last', () => {
  assert.deepEqual(errorHistogram([1, 2, 3], [1, 2, 3], 4), { bins: 4, min: 0, max: 0, counts: [3, 0, 0, 0] });
  assert.deepEqual(errorHistogram([], [], 2), { bins: 2, min: 0, max: 0, counts: [0, 0] });
  assert.deepEqual(errorHistogram([0, 0, 0, 0], [-1, 0, 0.5, 1], 2), { bins: 2, min: -1, max: 1, counts: [1, 3] });
});
