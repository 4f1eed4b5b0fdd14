import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { gemmMlp } from '../onnx/models.js';
import { startServer } from './server-process.js';

// test/fixtures/models/corpus/transformer-fp16-op13.onnx makes onnxruntime-node 1.30 segfault
// in InferenceSession.create at graphOptimizationLevel 'all' (the corpus manifest records it).
// Validation, latency and the static report open sessions at that level: they run in the
// onnxruntime host process, so the upload gets its answer and the service keeps serving.
// Static calibration and the data-aware methods' runs (statistics, held-back outputs) run
// there too: a crash while calibrating or gathering statistics fails that request with a 400
// naming the stage, nothing more; a crash in static's held-back measurement or the data-aware
// held-back comparison (the model is made by then) costs only the measurement, as in
// validation (host-runs.test.ts crashes the statistics stage on purpose). This model crashes
// only at 'all', so static calibration (unoptimized sessions) succeeds and its measurement crashes.

const CRASHER = readFileSync(new URL('../../../test/fixtures/models/corpus/transformer-fp16-op13.onnx', import.meta.url));
const jobsDir = mkdtempSync(join(tmpdir(), 'quantd-ort-crash-'));
after(() => rmSync(jobsDir, { recursive: true, force: true }));
const srv = await startServer({ WORKERS: '1', JOBS_DIR: jobsDir });

function send(method: string, path: string, body?: Uint8Array): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: srv.port, method, path, headers: body ? { 'content-type': 'application/octet-stream', accept: 'application/json' } : { accept: 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(Buffer.concat(chunks).toString() || '{}') as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function alive(): void {
  assert.equal(srv.child.exitCode, null, 'the service process is still running');
  assert.equal(srv.child.signalCode, null, 'the service process was not killed by a signal');
}

test('an upload that crashes onnxruntime gets its quantized model with validation marked error; the service stays up', { timeout: 60_000 }, async () => {
  const res = await send('POST', '/v1/models/quantize?measure_latency=true', CRASHER);
  assert.equal(res.status, 200, JSON.stringify(res.json).slice(0, 500));
  const validation = res.json.validation as { status: string; reason: string };
  assert.equal(validation.status, 'error');
  assert.match(validation.reason, /^onnxruntime crashed \(SIGSEGV\) loading or running the original model/);
  const latency = res.json.latency as { status: string; reason: string };
  assert.equal(latency.status, 'skipped');
  assert.match(latency.reason, /onnxruntime crashed \(SIGSEGV\)/);
  assert.ok(((res.json.summary as { tensors_quantized: number }).tensors_quantized) > 0, 'the weights were still quantized');
  alive();
  // The next model validates normally (a fresh host), and the health check answers.
  const next = await send('POST', '/v1/models/quantize', Buffer.from(gemmMlp().bytes));
  assert.equal(next.status, 200);
  assert.equal((next.json.validation as { status: string }).status, 'ok');
  assert.equal((await send('GET', '/healthz')).status, 200);
  alive();
});

test('the same model as a job: the job succeeds, its report says onnxruntime crashed, the service stays up', { timeout: 60_000 }, async () => {
  const submitted = await send('POST', '/v1/jobs', CRASHER);
  assert.equal(submitted.status, 202);
  const id = submitted.json.id as string;
  let status = '';
  for (let i = 0; i < 300 && status !== 'succeeded' && status !== 'failed'; i++) {
    await new Promise((r) => setTimeout(r, 50));
    status = (await send('GET', `/v1/jobs/${id}`)).json.status as string;
  }
  assert.equal(status, 'succeeded');
  const report = (await send('GET', `/v1/jobs/${id}/report`)).json;
  const validation = report.validation as { status: string; reason: string };
  assert.equal(validation.status, 'error');
  assert.match(validation.reason, /^onnxruntime crashed \(SIGSEGV\)/);
  alive();
});

async function normalRequestSucceeds(): Promise<void> {
  const next = await send('POST', '/v1/models/quantize', Buffer.from(gemmMlp().bytes));
  assert.equal(next.status, 200);
  assert.equal((next.json.validation as { status: string }).status, 'ok');
  assert.equal((await send('GET', '/healthz')).status, 200);
  alive();
}

test('format=static on the crashing model: the model is returned, static.comparison says the held-back measurement did not run and why, a warning is logged', { timeout: 60_000 }, async () => {
  const res = await send('POST', '/v1/models/quantize?format=static&calibration_data=random&calibration_samples=4&validate=false', CRASHER);
  assert.equal(res.status, 200, JSON.stringify(res.json).slice(0, 500));
  const report = res.json.static as { comparison: { status: string; reason: string }; outputs: unknown[]; warnings: string[]; target_met: unknown };
  assert.equal(report.comparison.status, 'error');
  assert.match(report.comparison.reason, /^onnxruntime crashed \(SIGSEGV\) measuring the quantized model against the float one on the held-back samples/);
  assert.deepEqual(report.outputs, []);
  assert.equal(report.target_met, null);
  assert.ok(report.warnings.some((w) => /held-back measurement did not run/.test(w)), JSON.stringify(report.warnings));
  // Static leaves this fp16 model's tensors float (no QDQ pair): what matters is that the model comes back.
  assert.ok(((res.json.model as { data: string }).data.length) > 0, 'the model is in the reply');
  const warning = await srv.waitForLog((l) => l.level === 40 && /format=static's held-back measurement did not run: onnxruntime crashed \(SIGSEGV\)/.test(String(l.msg)), 10_000);
  assert.equal(warning.op, 'quantizeModel');
  alive();
  await normalRequestSucceeds();
});

test('method=gptq on the crashing model: the model is returned, its report says the held-back comparison did not run and why, a warning is logged', { timeout: 60_000 }, async () => {
  const res = await send('POST', '/v1/models/quantize?method=gptq&bits=4&calibration_data=random&calibration_samples=4&validate=false', CRASHER);
  assert.equal(res.status, 200, JSON.stringify(res.json).slice(0, 500));
  const dataAware = res.json.data_aware as { comparison: { status: string; reason: string }; outputs: unknown[]; statistics: { activations: number } };
  assert.equal(dataAware.comparison.status, 'error');
  assert.match(dataAware.comparison.reason, /^onnxruntime crashed \(SIGSEGV\) measuring the quantized model on the held-back samples/);
  assert.deepEqual(dataAware.outputs, []);
  assert.ok(dataAware.statistics.activations > 0, 'the statistics were gathered');
  assert.ok((res.json.summary as { tensors_quantized: number }).tensors_quantized > 0, 'the weights were quantized');
  assert.ok(((res.json.model as { data: string }).data.length) > 0, 'the model is in the reply');
  const warning = await srv.waitForLog((l) => l.level === 40 && /held-back comparison did not run: onnxruntime crashed \(SIGSEGV\)/.test(String(l.msg)), 10_000);
  assert.equal(warning.op, 'quantizeModel');
  alive();
  await normalRequestSucceeds();
});

/** Posts CRASHER as a job with random calibration data and polls until it ends (30 s at most). */
async function settledJob(query: string): Promise<{ id: string; job: Record<string, unknown> }> {
  const submitted = await send('POST', `/v1/jobs?${query}&calibration_data=random&calibration_samples=4&validate=false`, CRASHER);
  assert.equal(submitted.status, 202, JSON.stringify(submitted.json));
  const id = submitted.json.id as string;
  let job: Record<string, unknown> = {};
  for (let i = 0; i < 600 && job.status !== 'succeeded' && job.status !== 'failed'; i++) {
    await new Promise((r) => setTimeout(r, 50));
    job = (await send('GET', `/v1/jobs/${id}`)).json;
  }
  return { id, job };
}

test('method=gptq as a job: the job succeeds, its report says the held-back comparison did not run, a warning names the job', { timeout: 60_000 }, async () => {
  const { id, job } = await settledJob('method=gptq&bits=4');
  assert.equal(job.status, 'succeeded', JSON.stringify(job));
  const report = (await send('GET', `/v1/jobs/${id}/report`)).json;
  const comparison = (report.data_aware as { comparison: { status: string; reason: string } }).comparison;
  assert.equal(comparison.status, 'error');
  assert.match(comparison.reason, /^onnxruntime crashed \(SIGSEGV\) measuring the quantized model on the held-back samples/);
  await srv.waitForLog((l) => l.level === 40 && l.job === id && /held-back comparison did not run/.test(String(l.msg)), 10_000);
  alive();
  await normalRequestSucceeds();
});

test('format=static as a job: the job succeeds, its report says the held-back measurement did not run, a warning names the job', { timeout: 60_000 }, async () => {
  const { id, job } = await settledJob('format=static');
  assert.equal(job.status, 'succeeded', JSON.stringify(job));
  const report = (await send('GET', `/v1/jobs/${id}/report`)).json;
  const comparison = (report.static as { comparison: { status: string; reason: string } }).comparison;
  assert.equal(comparison.status, 'error');
  assert.match(comparison.reason, /^onnxruntime crashed \(SIGSEGV\) measuring the quantized model against the float one/);
  await srv.waitForLog((l) => l.level === 40 && l.job === id && /held-back measurement did not run/.test(String(l.msg)), 10_000);
  alive();
  await normalRequestSucceeds();
});
