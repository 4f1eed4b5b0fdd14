import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { halfToFloat } from '../../../src/core/float16.js';
import { decodeModel } from '../../../src/onnx/proto/decode.js';
import { encodeModelBytes } from '../../../src/onnx/proto/encode.js';
import { DataType } from '../../../src/onnx/proto/model.js';
import { dqForm } from '../../../src/onnx/weights/dq-form.js';
import { modelQuantOptions, type ModelQuantOptions } from '../../../src/onnx/weights/options.js';
import { quantizeModel } from '../../../src/onnx/weights/quantize-model.js';
import { halfBits, halfMatMuls, randn } from '../models.js';
import { cosine } from '../cosine.js';

// A float16 weight read by a MatMul: onnxruntime 1.30 fuses float16 DequantizeLinear → MatMul
// into MatMulNBits, which at graphOptimizationLevel 'extended' and 'layout' computes NaN (a
// single MatMul) or outputs with cosine 0.15 (a ViT) against the float model, while 'basic'
// and 'all' are right. float32 scales and a Cast back to float16 run right at every level.

const LEVELS = ['disabled', 'basic', 'extended', 'layout', 'all'] as const;

async function run(bytes: Uint8Array, level: (typeof LEVELS)[number], x: ort.Tensor): Promise<Float64Array> {
  const s = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: level, intraOpNumThreads: 1, logSeverityLevel: 3 });
  try {
    const y = (await s.run({ x }))[s.outputNames[0]!]!;
    return Float64Array.from(y.data as Uint16Array, halfToFloat);
  } finally {
    await s.release();
  }
}

describe('dqForm: float16 weights', () => {
  const perChannel = { bits: 8, granularity: 'per_channel', axis: 1, groupSize: 128 } as const;
  for (const opset of [9, 13, 17, 19, 21]) {
    it(`opset ${opset}: float16 scales unless a MatMul reads the weight, then float32 scales and a Cast to float16`, () => {
      const plain = dqForm(perChannel, DataType.float16, opset);
      assert.equal(plain.scaleType, DataType.float16);
      assert.equal(plain.castTo, undefined);
      assert.equal(plain.domain, opset >= 19 ? '' : 'com.microsoft');
      const mm = dqForm(perChannel, DataType.float16, opset, true);
      assert.equal(mm.scaleType, DataType.float32);
      assert.equal(mm.castTo, DataType.float16);
      assert.equal(mm.domain, opset >= 13 ? '' : 'com.microsoft');
      assert.match(mm.text, /float32 scales.*; then Cast to float16 \(onnxruntime 1\.30/);
      // float32 weights are unaffected by who reads them.
      assert.deepEqual(dqForm(perChannel, DataType.float32, opset, true), dqForm(perChannel, DataType.float32, opset));
    });
  }
});

describe('float16 MatMul weights run right at every onnxruntime optimization level', () => {
  const cases: [string, number, Partial<ModelQuantOptions>][] = [
    ['int8 per channel, opset 17', 17, {}],
    ['int8 per channel, opset 19', 19, {}],
    ['int8 per tensor, opset 19', 19, { granularity: 'per_tensor' }],
    ['blocked int4, opset 21', 21, { bits: 4, format: 'qdq' }],
  ];
  for (const [what, opset, opts] of cases) {
    it(what, async () => {
      const b = halfMatMuls(opset);
      const r = quantizeModel(decodeModel(b.bytes), modelQuantOptions(opts));
      assert.equal(r.tensors.length, 2);
      const bytes = encodeModelBytes(r.model);
      const x = new ort.Tensor('float16', halfBits(randn(256, 41)), [2, 128]);
      const want = await run(b.bytes, 'disabled', x);
      const floor = (opts.bits ?? 8) === 4 ? 0.98 : 0.999;
      for (const level of LEVELS) {
        const got = await run(bytes, level, x);
        const c = cosine(want, got);
        assert.ok(c >= floor, `${level}: cosine ${c}`);
      }
    });
  }
});
