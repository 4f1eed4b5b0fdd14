import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { graph, model, node, valueInfo } from '../src/onnx/graph/build.js';
import { encodeModelBytes } from '../src/onnx/proto/encode.js';
import { DataType, type OnnxTensor } from '../src/onnx/proto/model.js';
import { send, sendPhased, multipartBody, type PhasedReply } from './lib/http-client.js';
import { row, type BenchOptions, type Detail, type ScenarioResult } from './lib/rows.js';
import { startServer } from './lib/server.js';
import { median } from './lib/stats.js';

// The 2.3 GB int8 job of issue 14 (target 7), run by `node dist/bench/run.js --big
// --only=job-2gb`: 34 MatMul weights of 4096 x 4096 float32 in one external data file, sent
// with its model as multipart/form-data to POST /v1/jobs of a server process (local store,
// validate=false, int8 per channel), the job polled until it succeeds, its result (one .onnx
// of ~0.6 GB) downloaded: the whole, end to end, held to 8 s; the upload's and the
// download's bytes per second against the same server's echo of 512 MiB (the floor), held
// to 0.7. Three rounds, medians; the files are deleted afterwards.

const SIDE = 4096;
const LAYERS = 34;
const MB = 1e6;

function generate(layers: number): { onnx: Buffer; data: Buffer } {
  const bytes = SIDE * SIDE * 4;
  const data = Buffer.allocUnsafe(layers * bytes);
  const f = new Float32Array(data.buffer, data.byteOffset, data.length / 4);
  let s = 1;
  // One layer of values, repeated with a per-layer scale: the values only need to vary.
  for (let i = 0; i < SIDE * SIDE; i++) f[i] = ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5) * 0.04;
  for (let l = 1; l < layers; l++) {
    const k = 1 + l / 64;
    for (let i = 0; i < SIDE * SIDE; i++) f[l * SIDE * SIDE + i] = f[i]! * k;
  }
  const initializers: OnnxTensor[] = [];
  const nodes = [];
  for (let l = 0; l < layers; l++) {
    initializers.push({
      name: `W${l}`,
      dims: [SIDE, SIDE],
      dataType: DataType.float32,
      dataLocation: 1,
      externalData: [
        { key: 'location', value: 'model.onnx.data' },
        { key: 'offset', value: String(l * bytes) },
        { key: 'length', value: String(bytes) },
      ],
    });
    nodes.push(node('MatMul', [l === 0 ? 'x' : `h${l - 1}`, `W${l}`], [l === layers - 1 ? 'y' : `h${l}`], { name: `mm${l}` }));
  }
  const g = graph({ nodes, initializers, inputs: [valueInfo('x', DataType.float32, [1, SIDE])], outputs: [valueInfo('y', DataType.float32, [1, SIDE])] });
  return { onnx: Buffer.from(encodeModelBytes(model(g, { opset: 17 }))), data };
}

interface JobStatus {
  status: string;
  summary?: { quantize_ms?: number; stages_ms?: Record<string, number> };
}

async function waitForJob(port: number, id: string, deadlineMs: number): Promise<JobStatus> {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    const r = await send(port, 'GET', `/v1/jobs/${id}`, undefined, {}, true);
    const j = JSON.parse(r.body!.toString()) as JobStatus;
    if (j.status === 'succeeded') return j;
    if (j.status === 'failed') throw new Error(`job ${id} failed: ${r.body!.toString().slice(0, 500)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`job ${id} did not finish within ${deadlineMs} ms`);
}

export async function run(o: BenchOptions): Promise<ScenarioResult> {
  const layers = o.quick ? 8 : LAYERS;
  const rounds = o.quick ? 2 : 3;
  const { onnx, data } = generate(layers);
  const form = multipartBody({ model: onnx, 'model.onnx.data': data }, { bits: '8', granularity: 'per_channel', validate: 'false', measure_latency: 'false' });
  const formBytes = form.parts.reduce((s, p) => s + p.length, 0);
  const echoBody = data.subarray(0, 512 * 2 ** 20);
  const jobsDir = mkdtempSync(join(tmpdir(), 'quantd-bench-jobs-'));
  const server = await startServer({ BODY_LIMIT: String(echoBody.length + 2 ** 20), JOBS_DIR: jobsDir, JOBS_MAX_BYTES: String(4 * formBytes) });
  const whole: number[] = [];
  const ups: number[] = [];
  const downs: number[] = [];
  const waits: number[] = [];
  const echoUp: number[] = [];
  const echoDown: number[] = [];
  let resultBytes = 0;
  try {
    const { port } = server;
    for (let r = 0; r < rounds; r++) {
      const e = await sendPhased(port, 'POST', '/bench/echo', [echoBody], { 'content-type': 'application/octet-stream' });
      if (e.status !== 200) throw new Error(`echo: status ${e.status}`);
      echoUp.push(echoBody.length / MB / (e.uploadMs / 1000));
      echoDown.push(e.bytes / MB / (e.replyMs / 1000));
      const t0 = performance.now();
      const j: PhasedReply = await sendPhased(port, 'POST', '/v1/jobs', form.parts, { 'content-type': form.contentType });
      if (j.status !== 202) throw new Error(`POST /v1/jobs: status ${j.status}: ${j.body?.subarray(0, 300).toString()}`);
      const id = (JSON.parse(j.body!.toString()) as { id: string }).id;
      const t1 = performance.now();
      await waitForJob(port, id, 600_000);
      const t2 = performance.now();
      const d = await sendPhased(port, 'GET', `/v1/jobs/${id}/result`, [Buffer.alloc(0)]);
      if (d.status !== 200) throw new Error(`GET result: status ${d.status}`);
      const t3 = performance.now();
      resultBytes = d.bytes;
      whole.push((t3 - t0) / 1000);
      ups.push(formBytes / MB / (j.uploadMs / 1000));
      waits.push((t2 - t1) / 1000);
      downs.push(d.bytes / MB / (d.replyMs / 1000));
      o.log(`  round ${r + 1}: whole ${((t3 - t0) / 1000).toFixed(1)} s = upload to 202 ${((t1 - t0) / 1000).toFixed(1)} s + job ${((t2 - t1) / 1000).toFixed(1)} s + result ${((t3 - t2) / 1000).toFixed(1)} s; echo ${(e.ms / 1000).toFixed(2)} s for 512 MiB each way`);
      const deleted = await send(port, 'DELETE', `/v1/jobs/${id}`);
      if (deleted.status !== 204) throw new Error(`DELETE /v1/jobs/${id}: status ${deleted.status}`);
    }
  } finally {
    await server.stop();
    rmSync(jobsDir, { recursive: true, force: true });
  }
  const note = `${layers} MatMul weights of ${SIDE} x ${SIDE} float32 (${(formBytes / 2 ** 30).toFixed(2)} GiB multipart, external data), int8 per channel, validate=false, local store; median of ${rounds}`;
  const details: Detail[] = [
    { name: 'job (202 to succeeded, polled every 20 ms)', value: median(waits), unit: 's' },
    { name: 'result', value: resultBytes / 2 ** 20, unit: 'MiB' },
    { name: 'echo upload', value: median(echoUp), unit: 'MB/s' },
    { name: 'echo reply', value: median(echoDown), unit: 'MB/s' },
  ];
  return {
    rows: [
      row({ name: 'onnx.int8_2gb_job', value: median(whole), unit: 's', baselineName: 'target: 8 s', baselineValue: 8, better: 'lower', target: 1, note: `upload, quantization and result download; ${note}` }),
      row({ name: 'http.big_job_upload_vs_echo', value: median(ups), unit: 'MB/s', baselineName: 'echo upload (512 MiB)', baselineValue: median(echoUp), better: 'higher', target: 0.7, note: 'POST /v1/jobs upload, to the 202' }),
      row({ name: 'http.big_job_result_vs_echo', value: median(downs), unit: 'MB/s', baselineName: 'echo reply (512 MiB)', baselineValue: median(echoDown), better: 'higher', target: 0.7, note: 'GET /v1/jobs/{id}/result' }),
    ],
    details,
  };
}

