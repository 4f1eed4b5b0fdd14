import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { test } from 'node:test';
import request from 'supertest';
import { eventually, Fault, faultData, faultPool, sleep, watchStarts } from '../pool/faults.js';
import { captureLogs, portOf, testApp } from './helpers.js';
import { openSocket, postHead } from './raw-http.js';

// One worker, a queue of one and a short deadline: each fault is easy to provoke, and a
// worker left busy by a fault would show at once as a slow next request.
const pool = faultPool(1, 1);
const logs = captureLogs();
const app = await testApp({ workers: 1, maxQueue: 1, requestTimeoutMs: 1500 }, { pool, logger: logs.logger });
const server = () => request(app.server);
const starts = watchStarts();
const port = portOf(app);

const ERROR_KEYS = ['code', 'error', 'message', 'statusCode'];

async function promptlyServed() {
  const t0 = Date.now();
  const res = await server().post('/v1/quantize').send({ tensor: { data: [1, 2, 3] } });
  assert.equal(res.status, 200);
  return Date.now() - t0;
}

test('a worker crash fails only its request, with a generic 500 JSON logged under the request id', async () => {
  const res = await server().post('/v1/quantize').send({ tensor: { data: faultData(Fault.crash, 1) } });
  assert.equal(res.status, 500);
  assert.deepEqual(Object.keys(res.body).sort(), ERROR_KEYS);
  assert.equal(res.body.code, 'QUANT_ERR_INTERNAL');
  const id = /request id (\S+)$/.exec(res.body.message)?.[1];
  assert.ok(id, res.body.message);
  assert.doesNotMatch(res.text, /worker exited|\bat \S+ \(/, 'nothing about the fault reaches the client');
  const logged = logs.lines().find((l) => l.reqId === id && l.level === 50);
  assert.ok(logged, 'the fault is logged at error level with the request id');
  assert.match(JSON.stringify(logged.err), /worker exited with code/);
  assert.ok((await promptlyServed()) < 3000);
});

test('an unexpected exception is a generic 500: no message, no stack, the id to find it in the log', async () => {
  const res = await server().post('/v1/quantize').send({ tensor: { data: faultData(Fault.throw, 8) } });
  assert.equal(res.status, 500);
  assert.equal(res.body.code, 'QUANT_ERR_INTERNAL');
  assert.match(res.body.message, /^internal error; it has been logged with request id \S+$/);
  assert.doesNotMatch(res.text, /unexpected failure|TypeError|fault-worker/);
  const id = /request id (\S+)$/.exec(res.body.message)![1];
  const logged = logs.lines().find((l) => l.reqId === id && l.level === 50) as { err: { message: string; stack: string } } | undefined;
  assert.ok(logged);
  assert.match(logged.err.message, /unexpected failure inside the worker/);
  assert.match(logged.err.stack, /fault-worker/, 'the log keeps the stack');
  await promptlyServed();
});

test('a task past REQUEST_TIMEOUT_MS is stopped in its worker: 504 JSON, and the next request is served at once', async () => {
  const t0 = Date.now();
  const res = await server().post('/v1/quantize').send({ tensor: { data: faultData(Fault.sleep, 2, 60_000) } });
  assert.equal(res.status, 504);
  assert.deepEqual(Object.keys(res.body).sort(), ERROR_KEYS);
  assert.equal(res.body.code, 'QUANT_ERR_TIMEOUT');
  assert.match(res.body.message, /REQUEST_TIMEOUT_MS=1500/);
  assert.ok(Date.now() - t0 < 5000);
  // One worker: had it not been terminated it would sleep for another minute.
  assert.ok((await promptlyServed()) < 3000);
});

test('a full queue is a 503 JSON with Retry-After; the accepted requests still succeed', async () => {
  const slow = (tag: number) => server().post('/v1/quantize').send({ tensor: { data: faultData(Fault.sleep, tag, 600) } }).then((r) => r);
  const running = slow(3);
  assert.ok(await eventually(() => starts.tags().includes(3)));
  const queued = slow(4);
  assert.ok(await eventually(() => app.pool.stats.queued === 1));
  const refused = await server().post('/v1/quantize').send({ tensor: { data: [1, 2, 3] } });
  assert.equal(refused.status, 503);
  assert.deepEqual(Object.keys(refused.body).sort(), ERROR_KEYS);
  assert.equal(refused.body.code, 'QUANT_ERR_OVERLOADED');
  assert.match(refused.body.message, /MAX_QUEUE/);
  assert.equal(refused.headers['retry-after'], '1');
  assert.equal((await running).status, 200);
  assert.equal((await queued).status, 200);
  await promptlyServed();
});

test('a client that disconnects while its task runs stops that task', async () => {
  const req = httpRequest({ port, host: '127.0.0.1', method: 'POST', path: '/v1/quantize', headers: { 'content-type': 'application/json' } });
  req.on('error', () => {});
  req.end(JSON.stringify({ tensor: { data: faultData(Fault.sleep, 5, 60_000) } }));
  assert.ok(await eventually(() => starts.tags().includes(5)));
  req.destroy();
  assert.ok(await eventually(() => app.pool.stats.inFlight === 0, 3000), 'the task was not aborted');
  assert.ok((await promptlyServed()) < 3000, 'the only worker is still busy with the abandoned task');
  assert.ok(await eventually(() => logs.lines().some((l) => l.code === 'QUANT_ERR_ABORTED' && l.reason === 'the request was aborted before its task finished')));
});

test('a client that disconnects while its task waits in the queue: the task never runs', async () => {
  const running = server().post('/v1/quantize').send({ tensor: { data: faultData(Fault.sleep, 6, 500) } }).then((r) => r);
  assert.ok(await eventually(() => starts.tags().includes(6)));
  const req = httpRequest({ port, host: '127.0.0.1', method: 'POST', path: '/v1/quantize', headers: { 'content-type': 'application/json' } });
  req.on('error', () => {});
  req.end(JSON.stringify({ tensor: { data: faultData(Fault.none, 7) } }));
  assert.ok(await eventually(() => app.pool.stats.queued === 1));
  req.destroy();
  assert.ok(await eventually(() => app.pool.stats.queued === 0));
  assert.equal((await running).status, 200);
  await promptlyServed();
  assert.ok(!starts.tags().includes(7), 'the abandoned task ran anyway');
});

test('a client that disconnects mid-upload: no task is started and the service carries on', async () => {
  const before = starts.started().length;
  const socket = await openSocket(port);
  socket.write(postHead('/v1/quantize?shape=2097152', { 'content-type': 'application/octet-stream', 'content-length': 8 * 1024 * 1024 }));
  socket.write(Buffer.alloc(1024 * 1024));
  await sleep(100);
  socket.destroy();
  assert.ok(await eventually(() => logs.lines().some((l) => l.code === 'QUANT_ERR_ABORTED' && l.reason === 'aborted')));
  assert.equal(starts.started().length, before, 'a task started for an upload that never finished');
  assert.equal(app.pool.stats.inFlight, 0);
  await promptlyServed();
});
