import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import request from 'supertest';
import { gemmMlp } from '../onnx/models.js';
import { eventually, Fault, faultData, faultPool, releaser, sleep, watchStarts } from '../pool/faults.js';
import { testApp } from './helpers.js';

/** Prometheus text → series name{labels} → value. */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

/** Sum of every series of `name` whose labels include all of `labels`. */
function sum(m: Map<string, number>, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const [series, value] of m) {
    const brace = series.indexOf('{');
    const base = brace < 0 ? series : series.slice(0, brace);
    if (base !== name) continue;
    const text = brace < 0 ? '' : series.slice(brace);
    if (Object.entries(labels).every(([k, v]) => text.includes(`${k}="${v}"`))) total += value;
  }
  return total;
}

describe('GET /metrics after a mixed load', () => {
  // One worker and no queue: a second task while a held one runs is refused (503). Every request
  // runs under a deadline no loaded machine reaches, but the one whose task is held past it (504).
  const pool = faultPool(1, 0);
  const starts = watchStarts();
  const holds = releaser();
  const sent = new Map<string, number>();
  let quantizeBytesIn = 0;
  let quantizeBytesOut = 0;

  it('counts every request by route, method and status, and every task by outcome', async () => {
    const app = await testApp({ workers: 1, maxQueue: 0, requestTimeoutMs: 600_000 }, { pool });
    const server = () => request(app.server);
    const note = (route: string, method: string, status: number) => {
      const key = `${route} ${method} ${status}`;
      sent.set(key, (sent.get(key) ?? 0) + 1);
    };
    const quantize = async (body: unknown, status: number) => {
      const res = await server().post('/v1/quantize').send(body as object);
      assert.equal(res.status, status, res.text.slice(0, 200));
      quantizeBytesIn += Buffer.byteLength(JSON.stringify(body));
      quantizeBytesOut += Number(res.headers['content-length']);
      note('/v1/quantize', 'POST', status);
      return res;
    };

    for (let i = 0; i < 4; i++) await quantize({ tensor: { data: [1, 2, 3, i] }, bits: 4 }, 200);
    // Refused by the schema (no task) and by the worker (a task that ends in an error).
    for (let i = 0; i < 2; i++) await quantize({ tensor: { data: [1, 2] }, bits: 99 }, 400);
    for (let i = 0; i < 2; i++) await quantize({ tensor: { data: [1, 'x'] } }, 400);
    for (let i = 0; i < 3; i++) {
      await server().get('/healthz').expect(200);
      note('/healthz', 'GET', 200);
    }
    for (const path of ['/nope', '/v1/nope/123']) {
      await server().get(path).expect(404);
      note('unmatched', 'GET', 404);
    }

    // A task held in the only worker until the 503 is in and 800 ms have passed: the next
    // request finds no room in the queue, and the held one ends as an ordinary success.
    const long = quantize({ tensor: { data: faultData(Fault.hold, 1, 120_000) } }, 200);
    assert.ok(await eventually(() => starts.tags().includes(1)));
    const heldFrom = performance.now();
    await quantize({ tensor: { data: [1, 2, 3] } }, 503);
    // Timers may fire a fraction of a millisecond early by performance.now(): wait in a loop.
    let heldMs: number;
    while ((heldMs = performance.now() - heldFrom) < 800) await sleep(800 - heldMs + 1);
    holds.release(1);
    await long;
    const quantizeBusy = (m: Map<string, number>) => sum(m, 'quantd_worker_busy_seconds_total', { op: 'quantize' });
    const busyBefore = quantizeBusy(parseMetrics((await server().get('/metrics').expect(200)).text));
    note('/metrics', 'GET', 200);
    // A task held past REQUEST_TIMEOUT_MS, never released: stopped, 504. The deadline is read
    // per request, so only this one gets a short one (a second app would count elsewhere).
    app.config.requestTimeoutMs = 1000;
    await quantize({ tensor: { data: faultData(Fault.hold, 2, 120_000) } }, 504);
    app.config.requestTimeoutMs = 600_000;

    // A model, synchronously and as a job: both time their stages.
    const mlp = Buffer.from(gemmMlp().bytes);
    await server().post('/v1/models/quantize?validate=false').set('content-type', 'application/octet-stream').send(mlp).expect(200);
    note('/v1/models/quantize', 'POST', 200);
    const job = await server().post('/v1/jobs?validate=false').set('content-type', 'application/octet-stream').send(mlp).expect(202);
    note('/v1/jobs', 'POST', 202);
    for (;;) {
      const status = (await server().get(`/v1/jobs/${job.body.id}`).expect(200)).body.status as string;
      note('/v1/jobs/:id', 'GET', 200);
      if (status === 'succeeded') break;
      assert.notEqual(status, 'failed');
      await new Promise((r) => setTimeout(r, 20));
    }

    // A static model with validation: every stage runs, calibration runs included.
    await server().post('/v1/models/quantize?format=static&calibration_data=random&calibration_samples=4&measure_latency=false').set('content-type', 'application/octet-stream').send(mlp).expect(200);
    note('/v1/models/quantize', 'POST', 200);

    const scrape = await server().get('/metrics').expect(200);
    assert.match(scrape.headers['content-type']!, /^text\/plain; version=0\.0\.4/);
    const m = parseMetrics(scrape.text);

    let total = 0;
    for (const [key, count] of sent) {
      const [route, method, status] = key.split(' ') as [string, string, string];
      const labels = { route, method, status_code: status };
      assert.equal(sum(m, 'quantd_http_requests_total', labels), count, key);
      assert.equal(sum(m, 'quantd_http_request_duration_seconds_count', labels), count, `${key} (histogram)`);
      total += count;
    }
    // Nothing else was counted: the scrape itself is counted once it has been answered.
    assert.equal(sum(m, 'quantd_http_requests_total'), total);
    assert.equal(sum(m, 'quantd_http_request_duration_seconds_bucket', { le: '+Inf' }), total);
    assert.equal(sum(m, 'quantd_http_request_bytes_total', { route: '/v1/quantize' }), quantizeBytesIn);
    assert.equal(sum(m, 'quantd_http_response_bytes_total', { route: '/v1/quantize' }), quantizeBytesOut);
    assert.equal(sum(m, 'quantd_http_errors_total', { route: '/v1/quantize', code: 'QUANT_ERR_VALIDATION' }), 2);
    assert.equal(sum(m, 'quantd_http_errors_total', { route: '/v1/quantize', code: 'QUANT_ERR_TENSOR_DATA' }), 2);
    assert.equal(sum(m, 'quantd_http_errors_total', { route: '/v1/quantize', code: 'QUANT_ERR_OVERLOADED' }), 1);
    assert.equal(sum(m, 'quantd_http_errors_total', { route: 'unmatched', code: 'QUANT_ERR_NOT_FOUND' }), 2);

    // Tasks: 4 + 1 (the long one) succeeded, 2 failed in the worker, 1 refused, 1 stopped.
    assert.equal(sum(m, 'quantd_tasks_total', { op: 'quantize', outcome: 'ok' }), 5);
    assert.equal(sum(m, 'quantd_tasks_total', { op: 'quantize', outcome: 'error' }), 2);
    assert.equal(sum(m, 'quantd_tasks_total', { op: 'quantize', outcome: 'rejected' }), 1);
    assert.equal(sum(m, 'quantd_tasks_total', { op: 'quantize', outcome: 'timeout' }), 1);
    assert.equal(sum(m, 'quantd_tasks_total', { op: 'quantizeModel', outcome: 'ok' }), 2);
    assert.equal(sum(m, 'quantd_tasks_total', { op: 'quantizeModelFiles', outcome: 'ok' }), 1);
    assert.equal(sum(m, 'quantd_tasks_rejected_total'), 1);
    assert.equal(sum(m, 'quantd_tasks_timed_out_total'), 1);
    assert.equal(sum(m, 'quantd_tasks_queued'), 0);
    assert.equal(sum(m, 'quantd_tasks_running'), 0);
    // The held task ran in its worker for at least as long as it was seen held; the stopped one,
    // the last quantize task, never finished, so it added nothing after the scrape before it.
    assert.ok(busyBefore >= heldMs / 1000, `busy ${busyBefore} s, held ${heldMs} ms`);
    assert.equal(quantizeBusy(m), busyBefore);

    for (const stage of ['decode', 'quantize', 'encode']) {
      assert.equal(sum(m, 'quantd_model_stage_duration_seconds_count', { stage }), 3, stage);
    }
    // Only the static request validated and calibrated (the weight-only ones had validate=false).
    assert.equal(sum(m, 'quantd_model_stage_duration_seconds_count', { stage: 'validate' }), 1);
    assert.equal(sum(m, 'quantd_model_stage_duration_seconds_count', { stage: 'calibrate' }), 1);
    assert.ok(sum(m, 'quantd_model_stage_duration_seconds_sum', { stage: 'calibrate' }) > 0);
    for (const phase of ['queued', 'decoding', 'quantizing', 'writing', 'validating']) {
      assert.equal(sum(m, 'quantd_job_phase_duration_seconds_count', { phase }), 1, phase);
    }
    assert.equal(sum(m, 'quantd_jobs', { status: 'succeeded' }), 1);
    assert.equal(sum(m, 'quantd_jobs', { status: 'running' }), 0);

    // prom-client's default process metrics.
    for (const name of ['nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes', 'process_cpu_seconds_total', 'process_resident_memory_bytes']) {
      assert.ok(sum(m, name) > 0 || m.has(name), name);
    }

    // The scrape was counted once answered (after the one before the 504).
    const again = parseMetrics((await server().get('/metrics').expect(200)).text);
    assert.equal(sum(again, 'quantd_http_requests_total', { route: '/metrics', status_code: '200' }), 2);
  });
});

describe('who may scrape', () => {
  it('is open like the probes when API_KEYS is set', async () => {
    const app = await testApp({ workers: 1, apiKeys: ['k'.repeat(20)] });
    await request(app.server).get('/v1/nope').expect(401);
    const res = await request(app.server).get('/metrics').expect(200);
    assert.match(res.text, /quantd_http_requests_total\{route="unmatched",method="GET",status_code="401"\} 1/);
  });

  it('needs its own METRICS_TOKEN when one is set (API keys do not open it)', async () => {
    const token = 'metrics-token-0123456789';
    const key = 'k'.repeat(20);
    const app = await testApp({ workers: 1, apiKeys: [key], metricsToken: token });
    const none = await request(app.server).get('/metrics').expect(401);
    assert.equal(none.body.code, 'QUANT_ERR_UNAUTHORIZED');
    assert.match(none.body.message, /METRICS_TOKEN/);
    await request(app.server).get('/metrics').set('authorization', `Bearer ${key}`).expect(401);
    await request(app.server).get('/metrics').set('authorization', `Bearer ${token}x`).expect(401);
    const ok = await request(app.server).get('/metrics').set('authorization', `Bearer ${token}`).expect(200);
    assert.match(ok.text, /# TYPE quantd_http_requests_total counter/);
  });
});
