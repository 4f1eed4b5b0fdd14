import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { randomCalibrationSamples } from '../../../src/onnx/activations/calibration-data.js';
import { quantizeStatic, type StaticRequest } from '../../../src/onnx/activations/quantize-static.js';
import { staticReport, staticWeightRows } from '../../../src/onnx/activations/static-report.js';
import { staticCensus } from '../../../src/onnx/activations/static-skipped.js';
import { decodeModel } from '../../../src/onnx/proto/decode.js';
import type { FusedOpsReport } from '../../../src/onnx/runtime/fused-ops.js';
import { modelQuantOptions } from '../../../src/onnx/weights/options.js';
import { convNet, halfMatMuls, recurrentModel, type BuiltModel } from '../models.js';

// format=static keeps the report's invariant: every float constant of min_elements or more is
// quantized (a row) or skipped with the reason, and the summary's weight bytes count them all.

const FUSED: FusedOpsReport = { status: 'skipped', reason: 'not measured here' } as unknown as FusedOpsReport;

async function run(b: BuiltModel, exclude: string[] = []) {
  const model = decodeModel(b.bytes);
  const opts = modelQuantOptions({ exclude, minElements: 256 });
  const req: StaticRequest = { activationType: 'uint8', calibration: 'minmax', weights: opts };
  const outcome = await quantizeStatic(model, randomCalibrationSamples(model, 4, {}), req);
  const rows = staticWeightRows(outcome);
  return { rows, census: staticCensus(model, opts, rows, outcome), report: staticReport(outcome, req, 'random', FUSED) };
}

describe('format=static: weights it leaves float are listed with the reason', () => {
  it('a float16 model: nothing quantized, every weight skipped as float16, its bytes counted, a warning', async () => {
    const { rows, census, report } = await run(halfMatMuls(13));
    assert.equal(rows.length, 0);
    assert.deepEqual(census.skipped.map((s) => s.name).sort(), ['W1', 'W2']);
    assert.ok(census.skipped.every((s) => /a float16 weight: format=static quantizes float32 models/.test(s.reason)), JSON.stringify(census.skipped));
    assert.equal(census.floatWeightBytes, 2 * (128 * 256 + 256 * 64));
    assert.equal(census.quantizedWeightBytes, 0);
    assert.ok(report.warnings.some((w) => /nothing was quantized/.test(w)));
  });

  it('LSTM and GRU weights (no static placement rule) are skipped, naming the op', async () => {
    const { rows, census } = await run(recurrentModel(13));
    assert.equal(rows.length, 0);
    const reasons = Object.fromEntries(census.skipped.map((s) => [s.name, s.reason]));
    for (const w of ['W', 'R']) assert.match(reasons[w]!, /read by LSTM, where format=static places no Q\/DQ/);
    for (const w of ['Wg', 'Rg']) assert.match(reasons[w]!, /read by GRU/);
    assert.ok(census.floatWeightBytes >= 4 * (256 * 32 + 256 * 64 + 144 * 32 + 144 * 48));
  });

  it('a quantized model lists no weight twice; an excluded node names the exclusion', async () => {
    const all = await run(convNet(13));
    assert.deepEqual(all.rows.map((r) => r.name).sort(), ['W1', 'W2']);
    assert.deepEqual(all.census.skipped, []);
    assert.equal(all.census.quantizedWeightBytes, all.census.floatWeightBytes - 4 * 32, 'everything but the bias B1');
    const some = await run(convNet(13), ['conv2']);
    assert.deepEqual(some.rows.map((r) => r.name), ['W1']);
    assert.deepEqual(some.census.skipped, [{ name: 'W2', reason: "its node 'conv2' is excluded (exclude=)" }]);
  });
});
