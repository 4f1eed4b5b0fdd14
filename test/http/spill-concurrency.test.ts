import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import request from 'supertest';
import type { FastifyInstance } from 'fastify';
import { gemmMlp } from '../onnx/models.js';
import { testApp } from './helpers.js';
import { jobsOnDisk, sampleJobsOnDisk } from './jobs-disk.js';

// Jobs running together share the job store's room (JOBS_MAX_BYTES) through one ledger in
// shared memory: their workers reserve each spill write and each result file before writing
// it. Everything spills here (spill threshold 0), so a job needs its upload, its spill file
// and its result at once (the result is written while the spill file is read back).

const mlp = Buffer.from(gemmMlp().bytes);
const U = mlp.length;
type Job = { id: string; status: string; error?: { code: string; message: string } };

async function submit(app: FastifyInstance, query: string): Promise<string> {
  const res = await request(app.server).post(`/v1/jobs${query}`).set('content-type', 'application/octet-stream').send(mlp).expect(202);
  return res.body.id as string;
}

async function settle(app: FastifyInstance, id: string): Promise<Job> {
  for (const end = Date.now() + 60_000; Date.now() < end; ) {
    const job = (await request(app.server).get(`/v1/jobs/${id}`).expect(200)).body as Job;
    if (job.status === 'succeeded' || job.status === 'failed') return job;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`job ${id} did not finish`);
}

describe('jobs running together share JOBS_MAX_BYTES', async () => {
  // One job alone, with room: its result R and its spill file S (the ledger's peak less what it keeps).
  const solo = await testApp({ jobsMaxBytes: 10_000_000 }, { jobs: { spillBytes: 0 } });
  const soloId = await submit(solo, '?bits=8&validate=false');
  assert.equal((await settle(solo, soloId)).status, 'succeeded');
  const R = (await solo.jobs.store.get(soloId))!.artifacts!.reduce((n, a) => n + a.size, 0);
  const S = solo.jobs.store.ledger!.highWater - U - R;

  it('two jobs that fit alone but not together: one fails with QUANT_ERR_STORAGE_FULL, the disk never passes the limit', async () => {
    // Both uploads, one job's spill file and result, and half of what a second result needs beyond a spill file.
    const max = 2 * U + S + R + Math.floor((R - S) / 2);
    assert.ok(S > 30_000 && 2 * U + 2 * R > max, `S=${S} R=${R} U=${U}: both results cannot stay`);
    const tight = await testApp({ jobsMaxBytes: max, jobsConcurrency: 2 }, { jobs: { spillBytes: 0 } });
    const root = tight.config.jobsDir;
    const sampler = sampleJobsOnDisk(root);
    let jobs: Job[];
    let seen: { peak: number; samples: number };
    try {
      // Validation runs the float model before quantizing: the first job's spill comes later than the second's.
      const ids = [await submit(tight, '?bits=8&validate=true'), await submit(tight, '?bits=8&validate=false')];
      jobs = await Promise.all(ids.map((id) => settle(tight, id)));
    } finally {
      seen = sampler.stop();
    }
    const ledger = tight.jobs.store.ledger!;
    assert.ok(seen.samples > 0);
    assert.ok(seen.peak <= max, `on disk at most ${seen.peak} bytes, within JOBS_MAX_BYTES=${max}`);
    assert.ok(ledger.highWater <= max, `the ledger held at most ${ledger.highWater}, within ${max}`);
    assert.ok(ledger.highWater >= U + S + R, 'the ledger counted a spill file beside its result');
    const failed = jobs.filter((j) => j.status === 'failed');
    const won = jobs.filter((j) => j.status === 'succeeded');
    assert.equal(failed.length, 1, JSON.stringify(jobs));
    assert.equal(won.length, 1);
    assert.equal(failed[0]!.error!.code, 'QUANT_ERR_STORAGE_FULL');
    assert.match(failed[0]!.error!.message, new RegExp(`JOBS_MAX_BYTES=${max}`));

    const after = jobsOnDisk(root);
    assert.equal(after.spills, 0, 'no spill file is left');
    assert.deepEqual(readdirSync(join(root, failed[0]!.id, 'out')), [], 'the failed job left nothing in its output');
    assert.equal(await tight.jobs.store.usage(), 2 * U + R, "both uploads and the winner's result");
    assert.equal(after.bytes, 2 * U + R, 'the ledger is what is on disk');

    // And the service keeps serving: the result, deletes, and a new job once there is room.
    const result = await request(tight.server).get(`/v1/jobs/${won[0]!.id}/result`).buffer(true).expect(200);
    assert.equal(Number(result.headers['content-length']), R);
    for (const j of jobs) await request(tight.server).delete(`/v1/jobs/${j.id}`).expect(204);
    assert.equal(await tight.jobs.store.usage(), 0);
    const again = await submit(tight, '?bits=8&validate=false');
    assert.equal((await settle(tight, again)).status, 'succeeded');
    assert.equal(await tight.jobs.store.usage(), U + R);
  });

  it("a worker's spill write is refused room the main thread holds, and given it once released", async () => {
    const max = 10_000_000;
    const app = await testApp({ jobsMaxBytes: max }, { jobs: { spillBytes: 0 } });
    const ledger = app.jobs.store.ledger!;
    // As an upload in flight holds its bytes: everything but this job's upload and 1000 bytes.
    const held = max - U - 1000;
    assert.ok(ledger.tryReserve(held, max));
    const refused = await settle(app, await submit(app, '?bits=8&validate=false'));
    assert.equal(refused.status, 'failed');
    assert.match(refused.error!.message, /spill file .* needs \d+ bytes more than its 0, but the job store has 1000 bytes of JOBS_MAX_BYTES=10000000 free/);
    ledger.release(held);
    assert.equal((await settle(app, await submit(app, '?bits=8&validate=false'))).status, 'succeeded');
    assert.equal(ledger.used, U + U + R, 'the failed job keeps its upload, the other its upload and result');
  });
});
