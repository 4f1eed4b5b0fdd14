import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { randomCalibrationSamples } from '../../../src/onnx/activations/calibration-data.js';
import { quantizeDataAware } from '../../../src/onnx/activations/quantize-data-aware.js';
import { decodeModel } from '../../../src/onnx/proto/decode.js';
import { modelQuantOptions } from '../../../src/onnx/weights/options.js';
import { gemmMlp } from '../models.js';

// gptq on fewer activation rows than input features says so in the weight's row: XᵀX is
// rank-deficient there and the weight SNR can fall far while the proxy loss falls too.

const weights = modelQuantOptions({ bits: 4, granularity: 'per_group', groupSize: 32, format: 'matmulnbits', method: 'gptq' });

async function notes(count: number, batch: number, heldBack: number): Promise<Record<string, string | undefined>> {
  const model = decodeModel(gemmMlp().bytes);
  const out = await quantizeDataAware(model, randomCalibrationSamples(model, count, { batch }), { method: 'gptq', weights, heldBack });
  return Object.fromEntries(out.result.tensors.map((t) => [t.name, t.note]));
}

describe('gptq: a weight whose statistics saw fewer rows than its K', () => {
  it('3 rows for K 256 and 512: both rows carry the note with the counts', async () => {
    const n = await notes(4, 1, 1);
    assert.match(n.W1 ?? '', /gptq saw 3 activation row\(s\) for 256 input features: XᵀX has rank ≤ 3/);
    assert.match(n.W2 ?? '', /gptq saw 3 activation row\(s\) for 512 input features/);
  });

  it('384 rows: none for K 256, the note for K 512', async () => {
    const n = await notes(8, 64, 2);
    assert.doesNotMatch(n.W1 ?? '', /activation row/);
    assert.match(n.W2 ?? '', /gptq saw 384 activation row\(s\) for 512 input features/);
  });
});
