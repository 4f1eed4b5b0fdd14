import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { decodeModel } from '../../../src/onnx/proto/decode.js';
import { encodeModelBytes } from '../../../src/onnx/proto/encode.js';
import { compareOnSamples } from '../../../src/onnx/runtime/held-back.js';
import { modelQuantOptions } from '../../../src/onnx/weights/options.js';
import { quantizeModel } from '../../../src/onnx/weights/quantize-model.js';
import { halfBits, halfMatMuls, randn } from '../models.js';

// The held-back comparison of the data-aware methods covers float16 outputs too: a float16
// model's `data_aware.outputs` was empty while its comparison said 'ok'.

test('a float16 model: every output compared, with figures of a close int8 model', async () => {
  const b = halfMatMuls(17);
  const q = encodeModelBytes(quantizeModel(decodeModel(b.bytes), modelQuantOptions({})).model);
  const samples = { count: 3, feeds: (i: number) => ({ x: new ort.Tensor('float16', halfBits(randn(256, 90 + i)), [2, 128]) }) };
  const out = await compareOnSamples({ bytes: b.bytes }, { bytes: q }, samples);
  assert.equal(out.length, 1);
  const [y] = out;
  assert.equal(y!.name, 'y');
  assert.ok(y!.min_cosine_similarity > 0.999 && y!.cosine_similarity <= 1, JSON.stringify(y));
  assert.ok(y!.snr_db !== null && y!.snr_db > 25 && y!.snr_db < 80, JSON.stringify(y));
  assert.ok(y!.top1_agreement !== null && y!.top1_agreement >= 0.5);
  // The model against itself: identical outputs.
  const same = await compareOnSamples({ bytes: b.bytes }, { bytes: b.bytes }, samples);
  assert.equal(same[0]!.min_cosine_similarity, 1);
});
