import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { encodeModelBytes } from '../../../src/onnx/proto/encode.js';
import { decodeModel } from '../../../src/onnx/proto/decode.js';
import { runBeside } from '../../../src/onnx/runtime/host/side-run.js';
import { baseOptions, compareRun, DEFAULT_SETTINGS, referenceRun, withSession } from '../../../src/onnx/runtime/validate.js';
import { quantizeModel } from '../../../src/onnx/weights/quantize-model.js';
import { modelQuantOptions } from '../../../src/onnx/weights/options.js';
import { convNet, convTransposeNet, gemmMlp, matmulNet } from '../models.js';

// Validation's session settings. The host builds the two quantized sessions at once, one on a second thread
// (side-run.ts): the report must be the one the sessions give one after the other.

const dir = mkdtempSync(join(tmpdir(), 'quantd-side-run-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const float = gemmMlp().bytes;
const path = join(dir, 'q.onnx');
writeFileSync(path, encodeModelBytes(quantizeModel(decodeModel(float), modelQuantOptions({ bits: 4, granularity: 'per_group', groupSize: 32 })).model));

function figures(v: object): object {
  const { elapsed_ms: _, ...rest } = v as { elapsed_ms?: number };
  return rest;
}

test('two sessions at once give the report of two in turn, figure for figure', { timeout: 60_000 }, async () => {
  const ref = await referenceRun({ bytes: float });
  assert.ok(!('status' in ref), JSON.stringify(ref));
  const inTurn = await compareRun(ref, { path });
  let asked = 0;
  const atOnce = await compareRun(ref, { path }, undefined, (p, o, f) => {
    asked++;
    return runBeside(p, o, f);
  });
  assert.equal(asked, 1);
  assert.equal(inTurn.status, 'ok');
  assert.deepEqual(figures(atOnce), figures(inTurn));
});

test('a session that fails on the second thread is reported with its own settings', { timeout: 60_000 }, async () => {
  const ref = await referenceRun({ bytes: float });
  assert.ok(!('status' in ref));
  const r = await compareRun(ref, { path }, undefined, (p, o, f) => runBeside(p, { ...o, graphOptimizationLevel: 'no such level' as 'all' }, f));
  assert.equal(r.status, 'error');
  assert.ok('reason' in r && r.reason.includes(DEFAULT_SETTINGS), JSON.stringify(r));
});

test('a model the second thread cannot load is an error, and the thread serves the next request', { timeout: 60_000 }, async () => {
  const ref = await referenceRun({ bytes: float });
  assert.ok(!('status' in ref));
  await assert.rejects(runBeside(join(dir, 'missing.onnx'), {}, ref.feeds));
  const again = await compareRun(ref, { path }, undefined, runBeside);
  assert.equal(again.status, 'ok');
});

// The float reference session skips weight prepacking (it runs once): its outputs must be
// those of a session that prepacks, as the quantized sessions do.
for (const [name, build] of [
  ['gemmMlp', gemmMlp],
  ['matmulNet', matmulNet],
  ['convNet', convNet],
  ['convTransposeNet', convTransposeNet],
] as const) {
  test(`the reference run without prepacking gives the prepacked session's outputs bit for bit: ${name}`, { timeout: 60_000 }, async () => {
    const bytes = build().bytes;
    const ref = await referenceRun({ bytes });
    assert.ok(!('status' in ref), JSON.stringify(ref));
    const packed = await withSession({ bytes }, baseOptions(1), (s) => s.run(ref.feeds));
    assert.ok(ref.names.length > 0);
    for (const out of ref.names) {
      const a = ref.outputs[out] as { data: Float32Array };
      const b = packed[out] as unknown as { data: Float32Array };
      assert.ok(a.data.length > 0);
      assert.deepEqual(Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength), Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength), `${name}: output ${out}`);
    }
  });
}
