import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { gemmMlp } from '../onnx/models.js';
import { S3Objects } from '../../src/jobs/s3-objects.js';
import { events, metric, result, settle, status, submit, syncResult } from './client.js';
import { LOCK_MS, STALLED_MS, deepNet, sleep, topology, until, type Replica, type Topology } from './topology.js';

// Three replicas as separate processes (two ROLE=all, one ROLE=api) over a real redis-server
// (AOF, appendfsync always) and s3rver, and the faults of issue 12: a worker killed or
// stopped mid-job, a cancel from another replica, Redis down (with and without its data).
// Every result is compared byte for byte with the synchronous endpoint's, which the local
// store's tests show equals a local job's result.

const small = Buffer.from(gemmMlp().bytes);
// Many tensors, progress after each: a job of a few seconds on one worker thread.
const deep = deepNet(16, 384);
const DEEP_Q = '?bits=4&calibration=mse';

// Started at the top level, so that the topology's after() hooks stop everything at the end.
const t: Topology = await topology({ aof: true });
const workers: Replica[] = [await t.replica('r1'), await t.replica('r2')];
const api: Replica = await t.replica('r3', { ROLE: 'api' });
const deepExpected = await syncResult(api.base, DEEP_Q, deep);

/** The first ```sh block after `heading` in the README, as its lines (comments kept: bash drops them). */
function readmeBlock(heading: string): string[] {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  const at = readme.indexOf(heading);
  assert.ok(at >= 0, `README has no ${heading}`);
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(at))!;
  return block[1]!.split('\n').filter((l) => l.trim() !== '');
}

/**
 * Runs README command lines with bash in a directory holding model.onnx, each line's
 * `localhost:PORT` pointed at a replica (`to(line index, port)`); returns each line's output.
 */
async function runReadme(lines: string[], to: (i: number, port: string) => Replica, model: Buffer): Promise<{ outputs: string[]; dir: string }> {
  const dir = mkdtempSync(join(t.root, 'readme-'));
  writeFileSync(join(dir, 'model.onnx'), model);
  const script = ['set -euo pipefail', ...lines.flatMap((line, i) => [`echo "::line ${i}"`, line.replace(/localhost:(\d+)/g, (_m, port: string) => to(i, port).base.replace('http://', ''))])].join('\n');
  const { stdout } = await promisify(execFile)('bash', ['-c', script], { cwd: dir, timeout: 120_000 });
  const outputs = stdout.split(/^::line \d+\n/m).slice(1);
  assert.equal(outputs.length, lines.length, stdout);
  return { outputs, dir };
}

function s3(): S3Objects {
  const e = t.env;
  return new S3Objects({
    endpoint: e.S3_ENDPOINT,
    region: e.S3_REGION ?? 'us-east-1',
    bucket: e.S3_BUCKET!,
    accessKeyId: e.S3_ACCESS_KEY_ID,
    secretAccessKey: e.S3_SECRET_ACCESS_KEY,
    forcePathStyle: e.S3_FORCE_PATH_STYLE === 'true',
    partSize: 8 << 20,
    uploadQueue: 4,
  });
}

/** The replica whose log says it started this job's `attempt`-th run. */
async function runner(id: string, attempt: number, among: Replica[], timeoutMs = 60_000): Promise<{ r: Replica; at: number }> {
  return until(
    `a replica to start job ${id} (attempt ${attempt})`,
    async () => {
      for (const r of among) {
        const line = r.lines().find((l) => l.msg === 'job started' && l.job === id && l.attempt === attempt);
        if (line) return { r, at: Number(line.time) };
      }
      return undefined;
    },
    timeoutMs,
    50,
  );
}

async function running(id: string): Promise<void> {
  await until(`job ${id} to be quantizing`, async () => ((await status(api.base, id))?.progress.phase === 'quantizing' ? true : undefined), 60_000, 50);
}

async function replaceWorker(gone: Replica): Promise<void> {
  const i = workers.indexOf(gone);
  workers[i] = await t.replica(`${gone.name}b`);
}

describe('replicas sharing Redis and S3', () => {
  it('takes an upload on one replica, runs it on a worker, streams progress and serves the result from others', async () => {
    const expected = await syncResult(api.base, '?bits=4&exclude=fc2', small);
    const id = await submit(workers[0]!.base, '?bits=4&exclude=fc2', small);
    const [sse, viaApi] = await Promise.all([events(api.base, id), settle(workers[1]!.base, id)]);
    assert.equal(viaApi.status, 'succeeded');
    assert.equal(sse[0]!.event, 'progress', 'the current state comes first');
    assert.equal(sse.at(-1)!.event, 'end');
    assert.equal(sse.at(-1)!.job.status, 'succeeded');
    const fractions = sse.map((e) => e.job.progress.fraction);
    assert.deepEqual(fractions, [...fractions].sort((a, b) => a - b));
    assert.deepEqual(await result(api.base, id), expected);
    assert.deepEqual(await result(workers[1]!.base, id), expected);
    const report = (await (await fetch(`${api.base}/v1/jobs/${id}/report`)).json()) as { skipped: unknown };
    assert.deepEqual(report.skipped, [{ name: 'W2', reason: "excluded by 'fc2'" }]);
    // The API-only replica ran nothing.
    assert.ok(!api.lines().some((l) => l.msg === 'job started'));
    // Job phases are timed by the replica that ran the job, as the local runner does; job
    // counts by status are the shared store's, the same from every replica.
    const ran = (await runner(id, 1, workers)).r;
    const PHASE = 'quantd_job_phase_duration_seconds_count';
    for (const phase of ['queued', 'decoding', 'reference', 'quantizing', 'writing', 'validating']) {
      assert.equal(await metric(ran.base, PHASE, { phase }), 1, `${ran.name}: phase ${phase}`);
      for (const other of [api, ...workers.filter((r) => r !== ran)]) assert.equal(await metric(other.base, PHASE, { phase }), 0, `${other.name}: phase ${phase}`);
    }
    for (const r of [api, ...workers]) assert.equal(await metric(r.base, 'quantd_jobs', { status: 'succeeded' }), 1, r.name);
    // A worker-only replica answers probes and nothing else.
    const w = await t.replica('w-only', { ROLE: 'worker' });
    assert.equal((await fetch(`${w.base}/readyz`)).status, 200);
    assert.equal((await fetch(`${w.base}/v1/jobs/${id}`)).status, 404);
    await w.stop('SIGTERM');
  });

  it("runs the README's job examples unchanged (curl and jq, as written) against the three replicas", async () => {
    // "Jobs for big models": upload, events, status, report, result, delete, each line on
    // another replica (the three replicas started as "Scaling out" starts them by hand).
    const lines = readmeBlock('### Jobs for big models');
    assert.ok(lines.length >= 6 && lines[0]!.startsWith('ID=$(curl'), lines.join('\n'));
    const all = [workers[0]!, api, workers[1]!];
    const { outputs, dir } = await runReadme([...lines.slice(0, 1), 'echo "$ID"', ...lines.slice(1), 'curl -s -o /dev/null -w "%{http_code}" localhost:8080/v1/jobs/$ID'], (i) => all[i % 3]!, small);
    const id = outputs[1]!.trim();
    assert.match(id, /^[0-9a-f-]{36}$/);
    const at = (prefix: string) => outputs[lines.findIndex((l) => l.includes(prefix)) + 1]!;
    const sse = at('/events');
    assert.match(sse, /^event: progress\n/);
    assert.match(sse, /event: end\ndata: \{[^\n]*"status":"succeeded"/);
    assert.equal(JSON.parse(at('| jq \'{status, progress}\'')).status, 'succeeded');
    assert.ok(JSON.parse(at('/report | jq .summary')).tensors_quantized >= 1);
    const saved = join(dir, 'model.4bit.onnx');
    assert.ok(existsSync(saved), 'curl -o saved model.4bit.onnx');
    assert.deepEqual(readFileSync(saved), await syncResult(api.base, '?bits=4', small));
    assert.equal(at('-X DELETE'), '');
    assert.equal(outputs.at(-1), '404', 'deleted for every replica');
    // "Scaling out": upload on one API replica, follow it on the other.
    const scaled = readmeBlock('## Scaling out').filter((l) => l.includes('curl'));
    assert.equal(scaled.length, 2, scaled.join('\n'));
    const ports = new Map<string, Replica>([['8080', api], ['8081', workers[1]!]]);
    const follow = await runReadme(scaled, (_i, port) => ports.get(port)!, small);
    assert.match(follow.outputs[1]!, /event: end\ndata: \{[^\n]*"status":"succeeded"/);
    rmSync(dir, { recursive: true, force: true });
  });

  it('finishes the job of a SIGKILLed worker on another one within lockDuration + 2 × stalledInterval', async () => {
    const id = await submit(api.base, DEEP_Q, deep);
    const first = await runner(id, 1, workers);
    await running(id);
    const killedAt = Date.now();
    await first.r.stop('SIGKILL');
    const other = workers.find((r) => r !== first.r)!;
    const second = await runner(id, 2, [other], LOCK_MS + 2 * STALLED_MS + 15_000);
    const bound = LOCK_MS + 2 * STALLED_MS + 1500;
    assert.ok(second.at - killedAt <= bound, `restarted ${second.at - killedAt} ms after the kill (bound ${bound} ms)`);
    const done = await settle(api.base, id);
    assert.equal(done.status, 'succeeded');
    assert.deepEqual(await result(api.base, id), deepExpected);
    await replaceWorker(first.r);
  });

  it('hands a job back on SIGTERM, and another worker finishes it', async () => {
    const id = await submit(api.base, DEEP_Q, deep);
    const first = await runner(id, 1, workers);
    await running(id);
    await first.r.stop('SIGTERM');
    assert.equal((await first.r.exited).code, 0, 'a clean exit');
    const handedBack = first.r.lines().some((l) => l.msg === 'job handed back' && l.job === id);
    const finishedThere = first.r.lines().some((l) => l.msg === 'job finished' && l.job === id);
    assert.ok(handedBack || finishedThere);
    const done = await settle(api.base, id);
    assert.equal(done.status, 'succeeded');
    assert.deepEqual(await result(api.base, id), deepExpected);
    if (handedBack) await runner(id, 2, workers.filter((r) => r !== first.r), 1000);
    await replaceWorker(first.r);
  });

  it('cancels from another replica the job a worker is running, and removes its objects', async () => {
    const id = await submit(workers[0]!.base, DEEP_Q, deep);
    const first = await runner(id, 1, workers);
    await running(id);
    assert.equal((await fetch(`${api.base}/v1/jobs/${id}`, { method: 'DELETE' })).status, 204);
    for (const r of [api, ...workers]) assert.equal(await status(r.base, id), undefined, `${r.name} still shows the job`);
    await first.r.waitForLog((l) => l.msg === 'job cancelled' && l.job === id, 30_000);
    const objects = s3();
    await until('the job objects to be gone', async () => ((await objects.list(`jobs/${id}/`)).length === 0 ? true : undefined), 10_000);
    objects.close();
    assert.ok(!first.r.lines().some((l) => l.msg === 'job finished' && l.job === id));
    // The worker is free again.
    const next = await submit(api.base, '?bits=8', small);
    assert.equal((await settle(api.base, next)).status, 'succeeded');
  });

  it('refuses new jobs at once while Redis is down, keeps tensors working, and resumes after a restart (AOF)', async () => {
    const inflight = await submit(api.base, DEEP_Q, deep);
    await runner(inflight, 1, workers);
    await running(inflight);
    await t.redis.kill();
    const began = Date.now();
    const refused = await fetch(`${api.base}/v1/jobs?bits=4`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: small });
    assert.equal(refused.status, 503);
    assert.equal(((await refused.json()) as { code: string }).code, 'QUANT_ERR_JOBS_UNAVAILABLE');
    assert.ok(Date.now() - began < 2000, 'refused without waiting for Redis');
    assert.equal((await fetch(`${api.base}/readyz`)).status, 503);
    // Metrics still answer, without job counts (they live in Redis).
    assert.equal((await fetch(`${api.base}/metrics`)).status, 200);
    const tensor = await fetch(`${api.base}/v1/quantize`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tensor: { data: [0.5, -1, 2] }, bits: 8 }) });
    assert.equal(tensor.status, 200);
    // The job record is still readable from S3.
    assert.equal((await status(api.base, inflight))?.id, inflight);
    await sleep(LOCK_MS + 500); // past the lock: the in-flight job may run again, once more
    await t.redis.start();
    for (const r of [api, ...workers]) await until(`${r.name} ready again`, async () => ((await fetch(`${r.base}/readyz`)).status === 200 ? true : undefined), 30_000);
    const fresh = await submit(api.base, '?bits=4&exclude=fc2', small);
    assert.equal((await settle(api.base, fresh, 60_000)).status, 'succeeded');
    assert.equal((await settle(api.base, inflight)).status, 'succeeded');
    assert.deepEqual(await result(api.base, inflight), deepExpected);
  });

  it('recovers the jobs of a Redis that lost its data, from the records in S3', async () => {
    const ids = [await submit(api.base, DEEP_Q, deep), await submit(api.base, DEEP_Q, deep), await submit(api.base, '?bits=8', small)];
    await running(ids[0]!);
    await t.redis.kill();
    t.redis.dir = `${t.redis.dir}-empty`;
    await t.redis.start();
    for (const id of ids) assert.equal((await settle(api.base, id, 180_000)).status, 'succeeded', id);
    assert.deepEqual(await result(api.base, ids[0]!), deepExpected);
    assert.deepEqual(await result(api.base, ids[1]!), deepExpected);
    assert.deepEqual(await result(api.base, ids[2]!), await syncResult(api.base, '?bits=8', small));
    const fresh = await submit(api.base, '?bits=8', small);
    assert.equal((await settle(api.base, fresh, 60_000)).status, 'succeeded');
  });
});
