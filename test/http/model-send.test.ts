import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import request from 'supertest';
import { encodeNpy } from '../../src/codecs/npy.js';
import { encodeNpz } from '../../src/codecs/npz.js';
import { randn } from '../onnx/models.js';
import { testApp } from './helpers.js';

// A model task that ends with a 400 found in the worker is over: its cancel flag stays down.
// Raising it anyway (as for a timeout or a client gone) made the reference run the task had
// started in its thread's onnxruntime host kill that host while the thread's next task was
// validating in it: the next request's validation came back 'onnxruntime crashed (SIGKILL)'.

const app = await testApp({ workers: 1 });
const resnet = readFileSync('test/fixtures/models/static/resnet-mini.opset13.onnx');
const N = 4;
const calibration = Buffer.from(encodeNpz([{ name: 'input.npy', data: encodeNpy(randn(N * 3 * 64 * 64, 5), '<f4', [N, 1, 3, 64, 64]) }]));

describe('a model task that failed leaves the next one its onnxruntime host', () => {
  it('a 400 from the worker (held_back = N) and then a model whose validation runs: ok every time', async () => {
    for (let i = 0; i < 4; i++) {
      // Refused in the worker after the reference run went to the host (held_back is checked against the samples).
      const bad = await request(app.server).post('/v1/models/quantize').field('format', 'static').field('held_back', String(N)).attach('model', resnet, 'm.onnx').attach('calibration', calibration, 'c.npz');
      assert.equal(bad.status, 400);
      assert.match(bad.body.message, /held_back/);
      const ok = await request(app.server).post('/v1/models/quantize?measure_latency=false').set('accept', 'application/json').set('content-type', 'application/octet-stream').send(resnet).expect(200);
      assert.equal(ok.body.validation.status, 'ok', `round ${i}: ${JSON.stringify(ok.body.validation)}`);
    }
  });
});
