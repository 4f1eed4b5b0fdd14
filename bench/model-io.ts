import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { send, sendPhased, multipartBody, type PhasedReply } from './lib/http-client.js';
import { row, type BenchOptions, type Detail, type ScenarioResult } from './lib/rows.js';
import { startServer } from './lib/server.js';
import { median } from './lib/stats.js';
import { MiB } from './lib/tensors.js';
import { floatModel } from './onnx-model.js';

// Bytes per second of the model paths' upload and reply phases against the echo floor: the
// same server echoing the same bytes (application/octet-stream), timed the same way by the
// client (upload: until its last byte is written; reply: headers to last byte). The model is
// the onnx-model scenario's (~400 MiB of MatMul weights; ~100 MiB with --quick), sent as
// multipart/form-data with validate=false to POST /v1/models/quantize (int8 per channel:
// the reply is about a quarter of the upload) and to POST /v1/jobs (local store), whose
// result is then downloaded from GET /v1/jobs/{id}/result.

const MBps = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1000);

async function waitForJob(port: number, id: string, deadlineMs: number): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    const r = await send(port, 'GET', `/v1/jobs/${id}`, undefined, {}, true);
    const status = (JSON.parse(r.body!.toString()) as { status: string }).status;
    if (status === 'succeeded') return;
    if (status === 'failed') throw new Error(`job ${id} failed: ${r.body!.toString()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`job ${id} did not finish within ${deadlineMs} ms`);
}

export async function run(o: BenchOptions): Promise<ScenarioResult> {
  const layers = o.quick ? 6 : 25;
  const model = Buffer.from(floatModel(layers, 2048));
  const runs = o.quick ? 3 : 5;
  const options = { bits: '8', granularity: 'per_channel', validate: 'false', measure_latency: 'false' };
  const form = multipartBody({ model }, options);
  // A job directory of its own: the default one under /tmp may be another server's.
  const jobsDir = mkdtempSync(join(tmpdir(), 'quantd-bench-jobs-'));
  const server = await startServer({ BODY_LIMIT: String(model.length + MiB), JOBS_DIR: jobsDir });
  const echo: PhasedReply[] = [];
  const sync: PhasedReply[] = [];
  const jobUp: PhasedReply[] = [];
  const jobDown: PhasedReply[] = [];
  try {
    const { port } = server;
    const octet = { 'content-type': 'application/octet-stream' };
    const multipart = { 'content-type': form.contentType, accept: 'application/octet-stream' };
    // One untimed round, then the four requests in turn, round after round (so the machine's
    // load drifts across all of them alike).
    for (let r = -1; r < runs; r++) {
      const e = await sendPhased(port, 'POST', '/bench/echo', [model], octet);
      const s = await sendPhased(port, 'POST', '/v1/models/quantize', form.parts, multipart);
      const j = await sendPhased(port, 'POST', '/v1/jobs', form.parts, { 'content-type': form.contentType });
      for (const [what, reply, status] of [['echo', e, 200], ['POST /v1/models/quantize', s, 200], ['POST /v1/jobs', j, 202]] as const) {
        if (reply.status !== status) throw new Error(`${what}: status ${reply.status}: ${reply.body?.subarray(0, 300).toString()}`);
      }
      const id = (JSON.parse(j.body!.toString()) as { id: string }).id;
      await waitForJob(port, id, 300_000);
      const d = await sendPhased(port, 'GET', `/v1/jobs/${id}/result`, [Buffer.alloc(0)]);
      if (d.status !== 200 || d.bytes !== s.bytes) throw new Error(`job result: status ${d.status}, ${d.bytes} bytes (the synchronous reply had ${s.bytes})`);
      const deleted = await send(port, 'DELETE', `/v1/jobs/${id}`);
      if (deleted.status !== 204) throw new Error(`DELETE /v1/jobs/${id}: status ${deleted.status}`);
      if (r < 0) continue;
      echo.push(e);
      sync.push(s);
      jobUp.push(j);
      jobDown.push(d);
    }
  } finally {
    await server.stop();
    rmSync(jobsDir, { recursive: true, force: true });
  }
  const up = (rs: PhasedReply[], bytes: number) => median(rs.map((x) => MBps(bytes, x.uploadMs)));
  const down = (rs: PhasedReply[]) => median(rs.map((x) => MBps(x.bytes, x.replyMs)));
  const echoUp = up(echo, model.length);
  const echoDown = down(echo);
  const formBytes = form.parts.reduce((n, p) => n + p.length, 0);
  const mib = (model.length / MiB).toFixed(0);
  const note = `${mib} MiB float model (${layers} MatMul 2048 x 2048), multipart, bits=8 per channel, validate=false; median of ${runs}; echo: the same bytes as application/octet-stream`;
  const rows = [
    row({ name: 'http.model_upload_vs_echo', value: up(sync, formBytes), unit: 'MB/s', baselineName: 'echo upload', baselineValue: echoUp, better: 'higher', target: 0.7, note: `POST /v1/models/quantize upload phase; ${note}` }),
    row({ name: 'http.model_reply_vs_echo', value: down(sync), unit: 'MB/s', baselineName: 'echo reply', baselineValue: echoDown, better: 'higher', target: 0.7, note: `POST /v1/models/quantize reply phase (${(sync[0]!.bytes / MiB).toFixed(0)} MiB model)` }),
    row({ name: 'http.job_upload_vs_echo', value: up(jobUp, formBytes), unit: 'MB/s', baselineName: 'echo upload', baselineValue: echoUp, better: 'higher', target: 0.7, note: 'POST /v1/jobs (local store) upload, to the 202' }),
    row({ name: 'http.job_result_vs_echo', value: down(jobDown), unit: 'MB/s', baselineName: 'echo reply', baselineValue: echoDown, better: 'higher', target: 0.7, note: 'GET /v1/jobs/{id}/result download' }),
  ];
  const details: Detail[] = [
    { name: 'echo whole request', value: median(echo.map((x) => x.ms)), unit: 'ms' },
    { name: 'POST /v1/models/quantize whole request', value: median(sync.map((x) => x.ms)), unit: 'ms' },
    { name: 'POST /v1/models/quantize between upload and reply (queue, worker, reply start)', value: median(sync.map((x) => x.ms - x.uploadMs - x.replyMs)), unit: 'ms' },
    { name: 'POST /v1/jobs whole request', value: median(jobUp.map((x) => x.ms)), unit: 'ms' },
  ];
  return { rows, details };
}
