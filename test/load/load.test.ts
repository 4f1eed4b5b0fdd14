import assert from 'node:assert/strict';
import { test } from 'node:test';
import { brokenPromises, runLoad, summary } from './run-load.js';

// The in-suite load test: the same checks as `npm run test:load` (full.load.ts: 2000
// requests, tensors up to 16 MiB), on a lighter mix (up to 4 MiB) so `npm test` stays quick.
const REQUESTS = 600;

test(`load: ${REQUESTS} mixed requests on 50 connections: no 5xx, every answer right, memory back, /healthz answering`, async () => {
  const report = await runLoad({ requests: REQUESTS, warmRequests: 300, connections: 50, maxTensorBytes: 4 * 1024 * 1024, timeoutS: 120 });
  console.log(summary(report));
  assert.deepEqual(brokenPromises(report, REQUESTS), []);
});
