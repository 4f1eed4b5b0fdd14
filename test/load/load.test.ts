import assert from 'node:assert/strict';
import { test } from 'node:test';
import { brokenPromises, runLoad, summary } from './run-load.js';

// The in-suite load test: the full mix at 50 connections, fewer requests than
// `npm run test:load` (which sends 2000) so the suite stays quick.
const REQUESTS = 300;

test(`load: ${REQUESTS} mixed requests on 50 connections — no 5xx, every answer right, memory back, /healthz fast`, async () => {
  const report = await runLoad({ requests: REQUESTS, connections: 50, timeoutS: 120 });
  console.log(summary(report));
  assert.deepEqual(brokenPromises(report, REQUESTS), []);
});
