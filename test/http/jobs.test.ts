import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import request from 'supertest';
import { decodeNpz } from '../../src/codecs/npz.js';
import { decodeModel } from '../../src/onnx/proto/decode.js';
import { isExternal } from '../../src/onnx/proto/tensor-data.js';
import { INITIAL_PROGRESS } from '../../src/jobs/runner.js';
import type { JobRecord } from '../../src/jobs/types.js';
import { ModelReport } from '../../src/http/schemas/models.js';
import { gemmMlp, randn, withExternalData } from '../onnx/models.js';
import { binaryParser, testApp } from './helpers.js';

const mlp: Buffer = Buffer.from(gemmMlp().bytes);
const app = await testApp();
const server = () => request(app.server);

type Agent = ReturnType<typeof request>;
type Job = { id: string; status: string; progress: { fraction: number; phase: string }; error?: { code: string; message: string } };

async function submit(srv: () => Agent, query: string, body: Buffer = mlp): Promise<string> {
  const res = await srv().post(`/v1/jobs${query}`).set('content-type', 'application/octet-stream').send(body).expect(202);
  assert.equal(res.body.status, 'queued');
  assert.equal(res.headers.location, `/v1/jobs/${res.body.id}`);
  return res.body.id as string;
}

/** Polls until the job ends (60 s at most: a loaded machine is slow, not wrong); returns every status seen. */
async function settle(srv: () => Agent, id: string): Promise<Job[]> {
  const seen: Job[] = [];
  for (const end = Date.now() + 60_000; Date.now() < end; ) {
    const job = (await srv().get(`/v1/jobs/${id}`).expect(200)).body as Job;
    seen.push(job);
    if (job.status === 'succeeded' || job.status === 'failed') return seen;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`job ${id} did not finish`);
}

function bytes(res: request.Test) {
  return res.buffer(true).parse(binaryParser);
}

describe('jobs API', () => {
  it('runs a job to a result byte-identical to the synchronous endpoint, with monotonic progress', async () => {
    const id = await submit(server, '?bits=4&exclude=fc2');
    const seen = await settle(server, id);
    const fractions = seen.map((j) => j.progress.fraction);
    assert.deepEqual(fractions, [...fractions].sort((a, b) => a - b));
    const last = seen.at(-1)!;
    assert.equal(last.status, 'succeeded');
    assert.deepEqual([last.progress.fraction, last.progress.phase], [1, 'done']);
    const [job, sync] = await Promise.all([
      bytes(server().get(`/v1/jobs/${id}/result`)).expect(200),
      bytes(server().post('/v1/models/quantize?bits=4&exclude=fc2').set('content-type', 'application/octet-stream').send(mlp)).expect(200),
    ]);
    assert.deepEqual(job.body, sync.body);
    assert.equal(job.headers['content-disposition'], 'attachment; filename="model.4bit.onnx"');
    assert.equal(JSON.parse(job.headers['x-quantization-summary'] as string).tensors_quantized, 1);
    const report = ModelReport.parse((await server().get(`/v1/jobs/${id}/report`).expect(200)).body);
    assert.deepEqual(report.skipped, [{ name: 'W2', reason: "excluded by 'fc2'" }]);
    assert.equal(report.validation.status, 'ok');
  });

  it('streams progress as server-sent events that end with the job', async () => {
    const id = await submit(server, '?bits=8');
    const res = await server().get(`/v1/jobs/${id}/events`).buffer(true).parse(binaryParser).expect(200);
    assert.match(res.headers['content-type'] as string, /^text\/event-stream/);
    const events = (res.body as Buffer)
      .toString()
      .split('\n\n')
      .filter((b) => b.startsWith('event:'))
      .map((b) => ({ event: /^event: (\w+)/.exec(b)![1], job: JSON.parse(/\ndata: (.*)$/.exec(b)![1]!) as Job }));
    assert.equal(events.at(-1)!.event, 'end');
    assert.equal(events.at(-1)!.job.status, 'succeeded');
    const fractions = events.map((e) => e.job.progress.fraction);
    assert.deepEqual(fractions, [...fractions].sort((a, b) => a - b));
    assert.equal(fractions.at(-1), 1);
  });

  it('takes multipart uploads with external data files', async () => {
    const ext = withExternalData(gemmMlp(), ['W1', 'W2'], 'weights/mlp.bin');
    const res = await server().post('/v1/jobs').field('bits', '4').attach('model', Buffer.from(ext.bytes), 'mlp.onnx').attach('weights/mlp.bin', Buffer.from(ext.data), 'mlp.bin').expect(202);
    const seen = await settle(server, res.body.id);
    assert.equal(seen.at(-1)!.status, 'succeeded', JSON.stringify(seen.at(-1)));
    const model = await bytes(server().get(`/v1/jobs/${res.body.id}/result`)).expect(200);
    assert.equal(model.headers['content-disposition'], 'attachment; filename="mlp.4bit.onnx"');
    assert.ok(!decodeModel(model.body as Buffer).graph.initializers.some(isExternal));
  });

  it('fails a job whose model is not ONNX, and says why', async () => {
    const id = await submit(server, '', Buffer.from(randn(300, 1).buffer));
    const last = (await settle(server, id)).at(-1)!;
    assert.equal(last.status, 'failed');
    assert.equal(last.error?.code, 'QUANT_ERR_ONNX');
    const res = await server().get(`/v1/jobs/${id}/result`).expect(409);
    assert.equal(res.body.code, 'QUANT_ERR_JOB_NOT_READY');
    assert.match(res.body.message, /failed \(QUANT_ERR_ONNX\)/);
  });

  it('answers 404 for unknown jobs, 400 for malformed ids, and validates options up front', async () => {
    assert.equal((await server().get(`/v1/jobs/${randomUUID()}`).expect(404)).body.code, 'QUANT_ERR_JOB_NOT_FOUND');
    assert.equal((await server().get('/v1/jobs/not-an-id').expect(400)).body.code, 'QUANT_ERR_VALIDATION');
    assert.equal((await server().post('/v1/jobs?bits=5').set('content-type', 'application/octet-stream').send(mlp).expect(400)).body.code, 'QUANT_ERR_VALIDATION');
    assert.equal((await server().post('/v1/jobs').attach('model', mlp, 'm.onnx').attach('../escape', mlp, 'x').expect(400)).body.code, 'QUANT_ERR_ONNX');
    const long = await server().post('/v1/jobs').attach('model', mlp, 'm.onnx').attach('x'.repeat(300), mlp, 'x').expect(400);
    assert.match(long.body.message, /ENAMETOOLONG/);
    assert.doesNotMatch(long.body.message, /\//, 'no server path in the message');
  });

  it('deletes a job with its files', async () => {
    const id = await submit(server, '?bits=8');
    await server().delete(`/v1/jobs/${id}`).expect(204);
    await server().get(`/v1/jobs/${id}`).expect(404);
    // A running job's files go once its task has stopped at its next checkpoint.
    for (let i = 0; i < 200 && existsSync(join(app.config.jobsDir, id)); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(!existsSync(join(app.config.jobsDir, id)));
  });
});

describe('jobs: big results as .onnx + external data in a zip', async () => {
  const small = await testApp({}, { jobs: { maxInlineBytes: 100_000 } });
  const srv = () => request(small.server);
  it('zips the model and its data file; onnxruntime runs what is inside', async () => {
    const id = await submit(srv, '?bits=8');
    assert.equal((await settle(srv, id)).at(-1)!.status, 'succeeded');
    const res = await bytes(srv().get(`/v1/jobs/${id}/result`)).expect(200);
    assert.equal(res.headers['content-type'], 'application/zip');
    assert.equal(res.headers['content-disposition'], 'attachment; filename="model.8bit.zip"');
    const [onnx, data] = decodeNpz(res.body as Buffer);
    assert.deepEqual([onnx!.name, data!.name], ['model.8bit.onnx', 'model.8bit.onnx.data']);
    const m = decodeModel(onnx!.data);
    assert.ok(m.graph.initializers.filter(isExternal).length >= 2);
    const session = await ort.InferenceSession.create(onnx!.data, { externalData: [{ path: data!.name, data: data!.data }] });
    const out = await session.run({ x: new ort.Tensor('float32', randn(256, 3), [1, 256]) });
    assert.equal(out.y!.dims.join(), '1,128');
    await session.release();
    const report = (await srv().get(`/v1/jobs/${id}/report`).expect(200)).body;
    assert.equal(report.validation.status, 'ok', 'onnxruntime validated the external-data model from disk');
  });
});

describe('jobs: store bounds, expiry and restarts', async () => {
  it('refuses uploads past JOBS_MAX_BYTES: 413 alone, 507 when other jobs fill the store', async () => {
    const tiny = await testApp({ jobsMaxBytes: 500_000 });
    const res = await request(tiny.server).post('/v1/jobs').set('content-type', 'application/octet-stream').send(mlp).expect(413);
    assert.equal(res.body.code, 'QUANT_ERR_BODY_TOO_LARGE');
    const one = await testApp({ jobsMaxBytes: 1_000_000 });
    const srv = () => request(one.server);
    await submit(srv, '?validate=false');
    assert.equal((await srv().post('/v1/jobs').set('content-type', 'application/octet-stream').send(mlp).expect(507)).body.code, 'QUANT_ERR_STORAGE_FULL');
  });

  it("counts a running job's spill file and result against JOBS_MAX_BYTES, and frees the spill file when the job ends", async () => {
    // Everything spills (budget 0): the 8-bit weights of fc1 and fc2 are the spill file.
    const spilling = await testApp({ jobsMaxBytes: 10_000_000 }, { jobs: { spillBytes: 0 } });
    const store = spilling.jobs.store;
    const srv = () => request(spilling.server);
    const id = await submit(srv, '?bits=8&validate=false');
    assert.equal((await settle(srv, id)).at(-1)!.status, 'succeeded');
    const done = (await store.get(id))!;
    const result = done.artifacts!.reduce((n, a) => n + a.size, 0);
    assert.equal(done.bytes, mlp.length + result, 'the record holds the upload and the result');
    assert.equal(await store.usage(), done.bytes, 'usage is the upload and the result once the spill file is gone');
    // At the peak the result was being written beside the spill file, whose tensors it holds.
    const spill = store.ledger!.highWater - done.bytes;
    assert.ok(spill >= 32_768 && spill < result, `fc1's 256×128 8-bit weights spilled, and the spill was counted beside the result (peak ${store.ledger!.highWater}, ${done.bytes} after)`);
  });

  it('fails a job whose spill file would pass JOBS_MAX_BYTES, naming the limit, and leaves no spill file', async () => {
    // Room for the upload and 1000 bytes more: fc1's 32 KiB of 8-bit weights cannot spill.
    const max = mlp.length + 1000;
    const tight = await testApp({ jobsMaxBytes: max }, { jobs: { spillBytes: 0 } });
    const srv = () => request(tight.server);
    const id = await submit(srv, '?bits=8&validate=false');
    const last = (await settle(srv, id)).at(-1)!;
    assert.equal(last.status, 'failed');
    assert.equal(last.error!.code, 'QUANT_ERR_STORAGE_FULL');
    assert.match(last.error!.message, /spill file .* needs \d+ bytes more than its 0, but the job store has 1000 bytes of JOBS_MAX_BYTES=\d+ free/);
    assert.match(last.error!.message, new RegExp(`JOBS_MAX_BYTES=${max}`));
    const out = join(tight.config.jobsDir, id, 'out');
    assert.deepEqual(readdirSync(out), [], 'the spill file is deleted with the failed job');
    assert.equal(await tight.jobs.store.usage(), mlp.length, "the failed job's spill is no longer counted");
  });

  it('fails a job whose result would pass JOBS_MAX_BYTES, and deletes what it wrote', async () => {
    // The result's size, from a job with room; then room for one byte less (nothing spills).
    const roomy = await testApp();
    const first = await submit(() => request(roomy.server), '?bits=8&validate=false');
    assert.equal((await settle(() => request(roomy.server), first)).at(-1)!.status, 'succeeded');
    const result = (await roomy.jobs.store.get(first))!.artifacts![0]!.size;
    const tight = await testApp({ jobsMaxBytes: mlp.length + result - 1 });
    const srv = () => request(tight.server);
    const id = await submit(srv, '?bits=8&validate=false');
    const last = (await settle(srv, id)).at(-1)!;
    assert.equal(last.status, 'failed');
    assert.equal(last.error!.code, 'QUANT_ERR_STORAGE_FULL');
    assert.match(last.error!.message, new RegExp(`result model\\.8bit\\.onnx needs ${result} bytes, but the job store has ${result - 1} bytes of JOBS_MAX_BYTES=${mlp.length + result - 1} free`));
    assert.deepEqual(readdirSync(join(tight.config.jobsDir, id, 'out')), [], 'no part of the result is left');
    assert.equal(await tight.jobs.store.usage(), mlp.length);
  });

  it('deletes jobs after JOBS_TTL_S', async () => {
    const short = await testApp({ jobsTtlS: 1 }, { jobs: { sweepMs: 100 } });
    const srv = () => request(short.server);
    const id = await submit(srv, '?validate=false');
    await settle(srv, id);
    await new Promise((r) => setTimeout(r, 1300));
    await srv().get(`/v1/jobs/${id}`).expect(404);
  });

  it('runs the jobs a previous process left queued or running', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'quantd-restart-'));
    const id = randomUUID();
    mkdirSync(join(dir, id, 'in'), { recursive: true });
    mkdirSync(join(dir, id, 'out'));
    writeFileSync(join(dir, id, 'in', '__model__.onnx'), mlp);
    const now = new Date().toISOString();
    const record: JobRecord = {
      id,
      status: 'running',
      created_at: now,
      updated_at: now,
      expires_at: new Date(Date.now() + 60_000).toISOString(),
      attempts: 1,
      filename: 'left.onnx',
      options: { bits: 8, scheme: 'symmetric', calibration: 'minmax', percentile: 99.99, format: 'auto', op_types: ['MatMul', 'Gemm', 'Conv'], exclude: [], min_elements: 1024, validate: false },
      model: { name: 'model', file: '__model__.onnx', size: mlp.length },
      external: [],
      inputs: undefined,
      progress: { ...INITIAL_PROGRESS, phase: 'quantizing', fraction: 0.4 },
      bytes: mlp.length,
    };
    writeFileSync(join(dir, id, 'job.json'), JSON.stringify(record));
    // What the interrupted run wrote and never counted: its spill file, and part of an external-data result this run does not write.
    writeFileSync(join(dir, id, 'out', 'left.8bit.onnx.spill'), Buffer.alloc(5000));
    writeFileSync(join(dir, id, 'out', 'left.8bit.onnx.data'), Buffer.alloc(5000));
    const restarted = await testApp({ jobsDir: dir });
    const last = (await settle(() => request(restarted.server), id)).at(-1)!;
    assert.equal(last.status, 'succeeded');
    assert.deepEqual(readdirSync(join(dir, id, 'out')).sort(), ['left.8bit.onnx', 'report.json'], 'what the interrupted run wrote is gone');
    const done = (await restarted.jobs.store.get(id))!;
    assert.equal(await restarted.jobs.store.usage(), done.bytes, 'the ledger holds the record found at start, and its result');
  });
});
