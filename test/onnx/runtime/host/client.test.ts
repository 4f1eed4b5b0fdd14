import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { referenceRunIsolated, releaseReference } from '../../../../src/onnx/runtime/isolated.js';

// A request whose task is already cancelled is refused without reaching the host: sent, its
// cancel poll stopped the host 25 ms later, and with it whatever else the host was running
// for this thread (after a client went away mid-upload, the next request's validation came
// back 'onnxruntime crashed (SIGKILL)').

const resnet = readFileSync('test/fixtures/models/static/resnet-mini.opset13.onnx');

test('a cancelled task cannot send to the host; the request the host is running goes on', { timeout: 60_000 }, async () => {
  for (let i = 0; i < 3; i++) {
    const running = referenceRunIsolated({ bytes: resnet });
    const cancelled = referenceRunIsolated({ bytes: resnet }, {}, () => true);
    await assert.rejects(cancelled, (e: Error & { code?: string }) => e.code === 'QUANT_ERR_ABORTED');
    const ref = await running;
    assert.ok('ref' in ref, `round ${i}: ${JSON.stringify(ref)}`);
    releaseReference(ref);
  }
});
