import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cancel, cancelFlag } from '../../src/pool/cancel.js';
import { runQuantizeModel } from '../../src/pool/tasks/quantize-model.js';
import { gemmMlp } from '../onnx/models.js';

const options = { bits: 8 as const, scheme: 'symmetric' as const, calibration: 'minmax' as const, percentile: 99.99, format: 'auto' as const, op_types: ['MatMul' as const, 'Gemm' as const, 'Conv' as const], exclude: [], min_elements: 1024, validate: true };
const limits = { maxElements: 1 << 24, maxDims: 8, maxMatmulMacs: 1 << 30, maxJsonReplyBytes: 1 << 28 };

function task(flag: Int32Array) {
  return { op: 'quantizeModel' as const, model: gemmMlp().bytes, filename: 'm.onnx', external: [], options, accept: 'onnx' as const, limits, cancel: flag };
}

describe('model tasks stop cooperatively', () => {
  it('at a checkpoint, with QUANT_ERR_ABORTED, once the flag is raised', async () => {
    const flag = cancelFlag();
    cancel(flag);
    await assert.rejects(runQuantizeModel(task(flag)), (e: { code: string }) => e.code === 'QUANT_ERR_ABORTED');
  });

  it('and run to the end when it is not', async () => {
    const reply = await runQuantizeModel(task(cancelFlag()));
    assert.equal(reply.contentType, 'application/octet-stream');
  });
});

describe('static quantization stops between calibration samples', () => {
  it('when the flag is raised mid-calibration', async () => {
    const { readFileSync } = await import('node:fs');
    const { randomCalibrationSamples } = await import('../../src/onnx/activations/calibration-data.js');
    const { quantizeStatic } = await import('../../src/onnx/activations/quantize-static.js');
    const { decodeModel } = await import('../../src/onnx/proto/decode.js');
    const { modelQuantOptions } = await import('../../src/onnx/weights/options.js');
    const m = decodeModel(readFileSync('test/fixtures/models/static/resnet-mini.opset13.onnx'));
    const flag = cancelFlag();
    const seen: number[] = [];
    const run = quantizeStatic(m, randomCalibrationSamples(m, 12, {}), { activationType: 'uint8', calibration: 'minmax', weights: modelQuantOptions({ bits: 8, format: 'qdq' }) }, {
      cancel: flag,
      onCalibrating: (done) => {
        seen.push(done);
        if (done === 3) cancel(flag);
      },
    });
    await assert.rejects(run, (e: { code: string }) => e.code === 'QUANT_ERR_ABORTED');
    assert.deepEqual(seen, [1, 2, 3], 'no sample runs after the flag');
  });
});
