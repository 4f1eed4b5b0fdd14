import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { encodeModelBytes } from '../../../src/onnx/proto/encode.js';
import { decodeModel } from '../../../src/onnx/proto/decode.js';
import { OrtHost, ortHost } from '../../../src/onnx/runtime/host/client.js';
import { stageModel } from '../../../src/onnx/runtime/host/stage.js';
import { compareRunIsolated, fusedOpsIsolated, referenceRunIsolated, releaseReference } from '../../../src/onnx/runtime/isolated.js';
import { validateModels } from '../../../src/onnx/runtime/validate.js';
import { quantizeModel } from '../../../src/onnx/weights/quantize-model.js';
import { modelQuantOptions } from '../../../src/onnx/weights/options.js';
import { gemmMlp, withExternalData } from '../models.js';

// The onnxruntime host process: the same reports as in-process validation, and a model that
// crashes onnxruntime (the corpus' fp16 transformer at optimization 'all') costs its report only.

// Staging goes to a directory of this file's own, holding a leftover of a dead process
// (two hours old) and one of a live one: the first staging removes only the first.
const stagingDir = mkdtempSync(join(tmpdir(), 'quantd-staging-test-'));
process.env.ORT_STAGING_DIR = stagingDir;
after(() => rmSync(stagingDir, { recursive: true, force: true }));
for (const name of ['quantd-ort-dead', 'quantd-ort-live']) mkdirSync(join(stagingDir, name));
const hoursAgo = (Date.now() - 2 * 3_600_000) / 1000;
utimesSync(join(stagingDir, 'quantd-ort-dead'), hoursAgo, hoursAgo);

const CRASHER = readFileSync(new URL('../../../../test/fixtures/models/corpus/transformer-fp16-op13.onnx', import.meta.url));

function quantized(bytes: Uint8Array): Uint8Array {
  return encodeModelBytes(quantizeModel(decodeModel(bytes), modelQuantOptions({ bits: 8, granularity: 'per_channel' })).model);
}

/** The report without the wall-clock field. */
function figures(v: object): object {
  const { elapsed_ms: _, ...rest } = v as { elapsed_ms?: number };
  return rest;
}

test('validation in the host gives the in-process report, figure for figure', { timeout: 60_000 }, async () => {
  const bytes = gemmMlp().bytes;
  const q = quantized(bytes);
  const ref = await referenceRunIsolated({ bytes });
  assert.ok('ref' in ref, JSON.stringify(ref));
  const got = await compareRunIsolated(ref, { bytes: q });
  // The request path's way: the two quantized sessions at once, on two of the host's threads.
  const atOnce = await compareRunIsolated(ref, { bytes: q }, undefined, true);
  releaseReference(ref);
  const want = await validateModels({ bytes }, { bytes: q });
  assert.equal(got.status, 'ok');
  assert.deepEqual(figures(got), figures(want));
  assert.deepEqual(figures(atOnce), figures(want));
});

test('a model with external data is staged beside its files and validates', { timeout: 60_000 }, async () => {
  const built = withExternalData(gemmMlp(), ['fc1.weight'], 'weights/fc1.bin');
  const ref = await referenceRunIsolated({ bytes: built.bytes, externalData: [{ path: 'weights/fc1.bin', data: built.data }] });
  assert.ok('ref' in ref, JSON.stringify(ref));
  releaseReference(ref);
});

test('external data locations that leave the staging directory are refused, and validation says so', async () => {
  for (const path of ['../x.bin', '/etc/passwd', '.']) {
    assert.throws(() => stageModel({ bytes: new Uint8Array(1), externalData: [{ path, data: new Uint8Array(1) }] }), /not a path inside/, path);
  }
  const r = await referenceRunIsolated({ bytes: gemmMlp().bytes, externalData: [{ path: '../x.bin', data: new Uint8Array(1) }] });
  assert.deepEqual(r, { status: 'error', reason: "could not hand the model to onnxruntime: external data location '../x.bin' is not a path inside the model's directory" });
});

test('a model that crashes onnxruntime: validation error naming the crash; the host is replaced for the next model', { timeout: 60_000 }, async () => {
  const first = await referenceRunIsolated({ bytes: CRASHER });
  assert.deepEqual(Object.keys(first).sort(), ['reason', 'status']);
  assert.equal((first as { status: string }).status, 'error');
  assert.match((first as { reason: string }).reason, /^onnxruntime crashed \(SIGSEGV\) loading or running the original model/);
  // The quantized form of a model that loads can crash too: that is the quantized run's error.
  const ok = gemmMlp().bytes;
  const ref = await referenceRunIsolated({ bytes: ok });
  assert.ok('ref' in ref);
  const v = await compareRunIsolated(ref, { bytes: CRASHER });
  assert.equal(v.status, 'error');
  assert.match((v as { reason: string }).reason, /^onnxruntime crashed \(SIGSEGV\) loading or running the quantized model/);
  const fused = await fusedOpsIsolated({ bytes: CRASHER });
  assert.equal(fused.status, 'skipped');
  const again = await referenceRunIsolated({ bytes: ok });
  assert.ok('ref' in again, 'a fresh host serves the next model');
  releaseReference(again);
});

test('a cancelled request stops its host and rejects at once', { timeout: 60_000 }, async () => {
  const host = new OrtHost();
  let cancel = false;
  const started = host.request({ op: 'ping' });
  await started;
  const pid = host.pid;
  assert.ok(pid !== undefined);
  // The host is frozen before the request, so it cannot answer first (a small model's run can
  // finish inside one poll interval on a quiet machine): cancellation must not wait for it.
  const staged = stageModel({ bytes: gemmMlp().bytes });
  process.kill(pid, 'SIGSTOP');
  try {
    const pending = host.request({ op: 'reference', model: staged.path, opts: {} }, () => cancel);
    cancel = true;
    await assert.rejects(pending, { code: 'QUANT_ERR_ABORTED' });
  } finally {
    staged.dispose();
  }
  assert.equal(host.pid, undefined, 'the host was stopped');
  await host.request({ op: 'ping' });
  assert.notEqual(host.pid, pid, 'the next request starts a new host');
  host.close();
  assert.ok(ortHost() === ortHost());
});

test('staged files are gone once the host answered; a dead process\'s leftovers were swept, a live one\'s kept', () => {
  assert.equal(existsSync(join(stagingDir, 'quantd-ort-dead')), false);
  assert.deepEqual(readdirSync(stagingDir), ['quantd-ort-live']);
});

test('a host keeps a reference run past its idle time until the reference is released', { timeout: 60_000 }, async () => {
  // A data-aware quantization (or a big job) can take minutes between the reference run and
  // the compare: a host that idled out meanwhile lost the reference ("no reference run 1", a 500).
  const idleMs = 100;
  const host = new OrtHost(undefined, idleMs);
  const bytes = gemmMlp().bytes;
  const original = stageModel({ bytes });
  const quant = stageModel({ bytes: quantized(bytes) });
  try {
    const ref = await host.request({ op: 'reference', model: original.path, opts: {} });
    assert.ok(ref !== null && typeof ref === 'object' && 'ref' in ref, JSON.stringify(ref));
    const pid = host.pid;
    await new Promise((r) => setTimeout(r, 5 * idleMs));
    assert.equal(host.pid, pid, 'the host holding a reference is still up');
    const report = (await host.request({ op: 'compare', ref: ref.ref, model: quant.path })) as { status: string };
    assert.equal(report.status, 'ok');
    await host.request({ op: 'release', ref: ref.ref });
    await new Promise((r) => setTimeout(r, 5 * idleMs));
    assert.equal(host.pid, undefined, 'released, it idles out as before');
  } finally {
    host.kill();
    original.dispose();
    quant.dispose();
  }
});
