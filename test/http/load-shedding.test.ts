import assert from 'node:assert/strict';
import { test } from 'node:test';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import request from 'supertest';
import { sleep } from '../pool/faults.js';
import { testApp } from './helpers.js';

const quantize = (app: Awaited<ReturnType<typeof testApp>>) => request(app.server).post('/v1/quantize').send({ tensor: { data: [1, 2, 3] } });

test('over MAX_HEAP_USED_BYTES, work is refused with 503 + Retry-After in our format; probes and docs still answer', async () => {
  const app = await testApp({ maxHeapUsedBytes: 1, maxEventLoopDelayMs: 0 }, { pressureSampleMs: 20 });
  await sleep(100);
  const res = await quantize(app);
  assert.equal(res.status, 503);
  assert.deepEqual(Object.keys(res.body).sort(), ['code', 'error', 'message', 'statusCode']);
  assert.equal(res.body.code, 'QUANT_ERR_OVERLOADED');
  assert.match(res.body.message, /heap holds \d+ bytes \(limit MAX_HEAP_USED_BYTES=1\)/);
  assert.equal(res.headers['retry-after'], '5');
  assert.equal((await request(app.server).get('/healthz')).status, 200, 'liveness must not fail under load');
  const ready = await request(app.server).get('/readyz');
  assert.equal(ready.status, 503, 'readiness reports the pressure so balancers send work elsewhere');
  assert.equal(ready.body.status, 'not_ready');
  assert.equal((await request(app.server).get('/openapi.json')).status, 200);
});

/**
 * The event loop's delay here and now as @fastify/under-pressure computes it (the mean delay
 * of its 10 ms timer over a sample window, less the 10 ms), the worst of a few windows: what
 * a loaded machine adds by itself, so the limit and the induced delay can be set above it.
 */
async function baselineDelayMs(windows = 4, windowMs = 250): Promise<number> {
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  let worst = 0;
  for (let i = 0; i < windows; i++) {
    await sleep(windowMs);
    worst = Math.max(worst, h.mean / 1e6 - 10);
    h.reset();
  }
  h.disable();
  return worst;
}

/** Polls until `ok` holds, `untilMs` at most; returns the answer that made it hold. */
async function until(untilMs: number, ok: (res: request.Response) => boolean, send: () => Promise<request.Response>): Promise<request.Response | undefined> {
  const end = Date.now() + untilMs;
  while (Date.now() < end) {
    const res = await send();
    if (ok(res)) return res;
    await sleep(5);
  }
  return undefined;
}

test('a blocked event loop past MAX_EVENT_LOOP_DELAY_MS sheds work until it recovers', async (t) => {
  // under-pressure averages its timer's delay over a window: one long block at the end of a
  // window is diluted by the window's normal ticks (a 1.2 s block in a 400 ms window read as
  // ~30 ms when it began late in the window, which a loaded machine made the rule). So the
  // main thread is kept blocked in chunks, every tick of every window delayed by a chunk,
  // while requests are sent; and the limit sits above what this machine's load adds now.
  const baseline = await baselineDelayMs();
  const limit = Math.max(50, Math.ceil(2 * baseline + 20));
  const chunkMs = 3 * limit + 50;
  t.diagnostic(`event loop delay baseline ${baseline.toFixed(1)} ms, limit ${limit} ms, blocked in ${chunkMs} ms chunks`);
  const app = await testApp({ maxEventLoopDelayMs: limit, maxHeapUsedBytes: 0 }, { pressureSampleMs: 400 });
  const send = () => quantize(app);
  assert.ok(await until(20_000, (r) => r.status === 200, send), `work was refused before any block (limit ${limit} ms over a ${baseline.toFixed(1)} ms baseline)`);
  let blocking = true;
  const blocker = (async () => {
    while (blocking) {
      // What a huge synchronous JSON parse does to the main thread, a chunk at a time.
      const end = Date.now() + chunkMs;
      while (Date.now() < end);
      await new Promise((r) => setImmediate(r));
    }
  })();
  let shed: request.Response | undefined;
  try {
    shed = await until(20_000, (r) => r.status === 503, send);
  } finally {
    blocking = false;
    await blocker;
  }
  assert.ok(shed, `no request was refused while the event loop was blocked in ${chunkMs} ms chunks for 20 s (limit ${limit} ms)`);
  assert.equal(shed.body.code, 'QUANT_ERR_OVERLOADED');
  assert.match(shed.body.message, new RegExp(`event loop is (delayed by \\d+ ms|blocked past a whole delay sample) \\(limit MAX_EVENT_LOOP_DELAY_MS=${limit}\\)`));
  assert.equal(shed.headers['retry-after'], '5');
  assert.ok(await until(20_000, (r) => r.status === 200, send), 'the service kept refusing work for 20 s after the event loop recovered');
});

test('with the guards off, nothing is shed', async () => {
  const app = await testApp({ maxHeapUsedBytes: 0, maxEventLoopDelayMs: 0 }, { pressureSampleMs: 20 });
  await sleep(60);
  assert.equal((await quantize(app)).status, 200);
  assert.equal((await request(app.server).get('/readyz')).status, 200);
});
