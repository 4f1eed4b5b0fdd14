import assert from 'node:assert/strict';
import { test } from 'node:test';
import { brokenPromises, runLoad, summary } from './run-load.js';

// `npm run test:load`: 2000 requests on 50 connections, valid quantizations of 256 KiB to
// 16 MiB tensors mixed with malformed requests. Not part of `npm test` (about a minute).
// The warm-up is long enough for the allocators to reach their plateau, so the memory
// comparison catches growth, not the first reservation.
const REQUESTS = 2000;

test(`full load: ${REQUESTS} mixed requests on 50 connections: no 5xx, every answer right, memory back, /healthz p99 < 50 ms`, async () => {
  const report = await runLoad({ requests: REQUESTS, warmRequests: 1000, connections: 50, timeoutS: 300 });
  console.log(summary(report));
  assert.deepEqual(brokenPromises(report, REQUESTS, { healthzP99Ms: 50 }), []);
});
