import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import request from 'supertest';
import { loadConfig } from '../../src/config.js';
import { buildApp } from '../../src/http/app.js';
import { gemmMlp } from '../onnx/models.js';

// Models staged for the onnxruntime host (runtime/host/stage.ts) must not outlive the worker
// that staged them: a service closed (its workers terminated) while a cancelled model task's
// reference run is still being handed to the host left the float model in /dev/shm.

const staging = mkdtempSync(join(tmpdir(), 'quantd-staging-leftovers-'));
process.env.ORT_STAGING_DIR = staging;
after(() => rmSync(staging, { recursive: true, force: true }));

test('closing the service right after a model request times out leaves nothing staged', async () => {
  const mlp = Buffer.from(gemmMlp().bytes);
  for (let round = 0; round < 5; round++) {
    const jobsDir = mkdtempSync(join(tmpdir(), 'quantd-test-jobs-'));
    const app = await buildApp({ logger: false, config: { ...loadConfig({}), workers: 1, jobsDir, requestTimeoutMs: 1 } });
    await app.listen({ port: 0, host: '127.0.0.1' });
    await request(app.server).post('/v1/models/quantize').set('content-type', 'application/octet-stream').send(mlp).expect(504);
    await app.close();
    rmSync(jobsDir, { recursive: true, force: true });
  }
  await new Promise((r) => setTimeout(r, 1000));
  assert.deepEqual(readdirSync(staging), [], 'staged models left behind');
});
