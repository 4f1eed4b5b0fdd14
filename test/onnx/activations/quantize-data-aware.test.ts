import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { randomCalibrationSamples } from '../../../src/onnx/activations/calibration-data.js';
import { quantizeDataAware } from '../../../src/onnx/activations/quantize-data-aware.js';
import { decodeModel } from '../../../src/onnx/proto/decode.js';
import { modelQuantOptions } from '../../../src/onnx/weights/options.js';
import { gemmMlp } from '../models.js';
import { inProcess, type FloatRuns } from '../../../src/onnx/activations/float-runs.js';
import { cancel, cancelFlag } from '../../../src/pool/cancel.js';

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

describe('cancellation while weights are fitted', () => {
  // The flag is raised once the statistics are in, as a deadline passing then would: the fit
  // stops before its first weight instead of running every Cholesky to the end.
  for (const method of ['gptq', 'awq'] as const) {
    it(`${method}: the batch's fit stops at its next weight with the task's Aborted`, async () => {
      const model = decodeModel(gemmMlp().bytes);
      const flag = cancelFlag();
      let thrownInFit: unknown;
      const runs: FloatRuns = {
        ...inProcess,
        statsBatches: (m, batches, samples, o, onBatch) =>
          inProcess.statsBatches(m, batches, samples, o, (stats) => {
            cancel(flag);
            try {
              onBatch(stats);
            } catch (err) {
              thrownInFit = err;
              throw err;
            }
          }),
      };
      await assert.rejects(
        quantizeDataAware(model, randomCalibrationSamples(model, 8, { batch: 4 }), { method, weights: { ...weights, method }, heldBack: 2 }, { cancel: flag, runs }),
        (err: Error & { code?: string }) => err.code === 'QUANT_ERR_ABORTED',
      );
      assert.equal((thrownInFit as { code?: string } | undefined)?.code, 'QUANT_ERR_ABORTED');
    });
  }
});
