import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { encodeModelBytes } from '../../../src/onnx/proto/encode.js';
import { decodeModel } from '../../../src/onnx/proto/decode.js';
import { runBeside } from '../../../src/onnx/runtime/host/side-run.js';
import { compareRun, DEFAULT_SETTINGS, referenceRun } from '../../../src/onnx/runtime/validate.js';
import { quantizeModel } from '../../../src/onnx/weights/quantize-model.js';
import { modelQuantOptions } from '../../../src/onnx/weights/options.js';
import { gemmMlp } from '../models.js';

// The host builds validation's two quantized sessions at once, one on a second thread
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
