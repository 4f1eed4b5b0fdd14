import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { loadConfig } from '../../src/config.js';
import { buildApp } from '../../src/http/app.js';
import type { QueueJobRunner } from '../../src/jobs/queue-runner.js';
import type { StorageLedger } from '../../src/pool/storage-ledger.js';
import { jobsOnDisk, sampleJobsOnDisk } from '../http/jobs-disk.js';
import { gemmMlp } from '../onnx/models.js';
import { result, settle, submit } from './client.js';
import { topology, until } from './topology.js';

// JOBS_STORE=redis: a worker replica's scratch (JOBS_DIR) holds the inputs its running jobs
// downloaded, their spill files and results; together they stay within JOBS_MAX_BYTES,
// whatever runs at once. The replica runs in this process (its spill threshold is a plugin
// option, 0 here: everything spills), on the topology's Redis and s3rver.

const t = await topology();
const mlp = Buffer.from(gemmMlp().bytes);
const U = mlp.length;

interface InProcess {
  app: FastifyInstance;
  base: string;
  dir: string;
  scratch: StorageLedger;
}

async function replica(maxBytes: number, concurrency: number): Promise<InProcess> {
  const dir = join(t.root, `in-process-${randomUUID()}`);
  const env = { ...t.env, JOBS_DIR: dir, JOBS_MAX_BYTES: String(maxBytes), JOBS_CONCURRENCY: String(concurrency), WORKERS: '2' };
  const app = await buildApp({ logger: false, config: loadConfig(env), jobs: { spillBytes: 0 } });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address() as { port: number };
  const base = `http://127.0.0.1:${address.port}`;
  await until('the in-process replica to be ready', async () => ((await fetch(`${base}/readyz`)).status === 200 ? true : undefined), 30_000, 50);
  return { app, base, dir, scratch: (app.jobs as QueueJobRunner).scratch };
}

describe("a replica's scratch under JOBS_MAX_BYTES", () => {
  it('two jobs that fit alone but not together: one fails with QUANT_ERR_STORAGE_FULL, the scratch never passes the limit', async () => {
    // One job alone: its result R and its spill file S (the scratch's peak less its inputs and result).
    const solo = await replica(10_000_000, 1);
    const soloId = await submit(solo.base, '?bits=8&validate=false', mlp);
    assert.equal((await settle(solo.base, soloId)).status, 'succeeded');
    const R = (await result(solo.base, soloId)).length;
    const S = solo.scratch.highWater - U - R;
    assert.equal((await fetch(`${solo.base}/v1/jobs/${soloId}`, { method: 'DELETE' })).status, 204);
    await until('the attempt to give its scratch back', async () => (solo.scratch.used === 0 ? true : undefined), 10_000, 20);
    // Closed: it would take the next replica's jobs from the shared queue.
    await solo.app.close();

    const max = 2 * U + S + R + Math.floor((R - S) / 2);
    assert.ok(S > 30_000 && 2 * U + 2 * R > max, `S=${S} R=${R} U=${U}`);
    const tight = await replica(max, 2);
    try {
      const sampler = sampleJobsOnDisk(tight.dir);
      let jobs;
      let seen: { peak: number; samples: number };
      try {
        const ids = [await submit(tight.base, '?bits=8&validate=true', mlp), await submit(tight.base, '?bits=8&validate=false', mlp)];
        jobs = await Promise.all(ids.map((id) => settle(tight.base, id)));
      } finally {
        seen = sampler.stop();
      }
      assert.ok(seen.peak <= max, `the scratch held at most ${seen.peak} bytes on disk, within JOBS_MAX_BYTES=${max}`);
      assert.ok(tight.scratch.highWater <= max && tight.scratch.highWater >= U + S + R, `the ledger's peak ${tight.scratch.highWater}`);
      const failed = jobs.filter((j) => j.status === 'failed');
      assert.equal(failed.length, 1, JSON.stringify(jobs));
      assert.equal(jobs.filter((j) => j.status === 'succeeded').length, 1);
      assert.equal(failed[0]!.error!.code, 'QUANT_ERR_STORAGE_FULL');
      assert.match(failed[0]!.error!.message, new RegExp(`JOBS_MAX_BYTES=${max}`));
      // A job's status is published before its attempt's cleanup (its work files deleted,
      // then its reservations given back), so the end of the attempts is waited for.
      await until('both attempts to give their scratch back', async () => (tight.scratch.used === 0 && jobsOnDisk(tight.dir).bytes === 0 ? true : undefined), 10_000, 20);
      assert.deepEqual([jobsOnDisk(tight.dir).bytes, readdirSync(tight.dir)], [0, []], 'and nothing is left in the scratch');
      for (const j of jobs) assert.equal((await fetch(`${tight.base}/v1/jobs/${j.id}`, { method: 'DELETE' })).status, 204);
    } finally {
      await tight.app.close();
    }
  });
});
