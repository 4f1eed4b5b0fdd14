import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../src/config.js';
import { isQuantError } from '../../src/errors.js';
import type { Task } from '../../src/pool/messages.js';
import { eventually, Fault, faultData, faultPool, sleep, watchStarts } from './faults.js';

const limits = (() => {
  const c = loadConfig({});
  return { maxElements: c.maxElements, maxDims: c.maxDims, maxMatmulMacs: c.maxMatmulMacs, maxJsonReplyBytes: c.maxJsonReplyBytes };
})();

function task(data: unknown[]): Task {
  return {
    op: 'quantize',
    input: { kind: 'json', data },
    options: { bits: 8, scheme: 'symmetric', granularity: 'per_tensor', group_size: 128, calibration: 'minmax', percentile: 99.99, include_values: false },
    accept: 'json',
    limits,
  };
}

const signal = () => new AbortController().signal;
const starts = watchStarts();

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return isQuantError(err) ? err.code : `unexpected: ${(err as Error).message}`;
  }
}

test('the queue is bounded even though every task carries an AbortSignal', async () => {
  // piscina's own maxQueue does not count tasks that have a signal; this is the case it misses.
  const pool = faultPool(1, 2);
  await sleep(100);
  const runs = [1, 2, 3, 4, 5].map((tag) => codeOf(pool.run(task(faultData(Fault.sleep, tag, 300)), { signal: signal() })));
  const codes = await Promise.all(runs);
  assert.deepEqual(codes, ['ok', 'ok', 'ok', 'QUANT_ERR_OVERLOADED', 'QUANT_ERR_OVERLOADED']);
  assert.equal(pool.stats.inFlight, 0);
});

test('a full queue is refused with retryAfter, and MAX_QUEUE=0 means no waiting at all', async () => {
  const pool = faultPool(1, 0);
  await sleep(100);
  const busy = pool.run(task(faultData(Fault.sleep, 10, 300)), { signal: signal() });
  const refused = await pool.run(task([1, 2, 3]), { signal: signal() }).catch((e: unknown) => e);
  assert.ok(isQuantError(refused));
  assert.equal(refused.code, 'QUANT_ERR_OVERLOADED');
  assert.equal((refused as unknown as { retryAfter: number }).retryAfter, 1);
  assert.match(refused.message, /all 1 workers are busy/);
  await busy;
  assert.ok(await pool.run(task([1, 2, 3])));
});

test('aborting a running task terminates its worker; a fresh one serves the next task at once', async () => {
  const pool = faultPool(1, 4);
  await sleep(100);
  const controller = new AbortController();
  const sleepMs = 30_000;
  // Before the run: the aborted task's sleep cannot have begun earlier.
  const startedAt = Date.now();
  const running = codeOf(pool.run(task(faultData(Fault.sleep, 20, sleepMs)), { signal: controller.signal }));
  assert.ok(await eventually(() => starts.tags().includes(20)));
  const firstThread = starts.started().find((e) => e.tag === 20)!.threadId;
  controller.abort(new Error('client disconnected'));
  assert.equal(await running, 'QUANT_ERR_ABORTED');
  await pool.run(task(faultData(Fault.none, 21)), { signal: signal() });
  // Bound by the aborted task's own sleep, not by a margin a loaded machine eats (3 s failed on
  // shared machines at load 10+): had that task kept the only worker, this would be past it.
  const waited = Date.now() - startedAt;
  assert.ok(waited < sleepMs, `the next task ended ${waited} ms after the aborted one was submitted: it waited for the ${sleepMs} ms task, which still held the only worker`);
  // A start event travels on its own channel and may land after the task's result.
  assert.ok(await eventually(() => starts.tags().includes(21)));
  const next = starts.started().find((e) => e.tag === 21)!;
  assert.notEqual(next.threadId, firstThread, 'the worker that ran the aborted task was replaced');
  assert.equal(pool.threads, 1);
});

test('a task past its deadline is stopped and reported as a timeout', async () => {
  const pool = faultPool(1, 4);
  await sleep(100);
  const t0 = Date.now();
  assert.equal(await codeOf(pool.run(task(faultData(Fault.sleep, 30, 30_000)), { signal: AbortSignal.timeout(200) })), 'QUANT_ERR_TIMEOUT');
  // Stopped, not left to finish: well before its 30 s sleep would end, however loaded the machine.
  assert.ok(Date.now() - t0 < 30_000, `the timeout took ${Date.now() - t0} ms: the task ran to its end`);
  assert.equal(await codeOf(pool.run(task([1, 2]), { signal: signal() })), 'ok');
});

test('aborting a queued task drops it before it ever starts', async () => {
  const pool = faultPool(1, 4);
  await sleep(100);
  const busy = pool.run(task(faultData(Fault.sleep, 40, 400)), { signal: signal() });
  const controller = new AbortController();
  const queued = codeOf(pool.run(task(faultData(Fault.none, 41)), { signal: controller.signal }));
  assert.equal(pool.stats.queued, 1);
  controller.abort(new Error('client disconnected'));
  assert.equal(await queued, 'QUANT_ERR_ABORTED');
  await busy;
  await pool.run(task(faultData(Fault.none, 42)), { signal: signal() });
  // Start events travel on their own channel and may land after the result; one worker
  // posts them in order, so once 42's is here, 41's would be too had it run.
  assert.ok(await eventually(() => starts.tags().includes(42)));
  assert.ok(!starts.tags().includes(41), 'the aborted task ran anyway');
});

test('a worker that crashes fails only its own task; the pool replaces it', async () => {
  const pool = faultPool(2, 4);
  await sleep(100);
  const [crashed, neighbour] = await Promise.allSettled([
    pool.run(task(faultData(Fault.crash, 50)), { signal: signal() }),
    pool.run(task(faultData(Fault.sleep, 51, 200)), { signal: signal() }),
  ]);
  assert.equal(crashed.status, 'rejected');
  assert.ok(!isQuantError((crashed as PromiseRejectedResult).reason), 'a crash is our fault, not a 4xx');
  assert.match(String((crashed as PromiseRejectedResult).reason), /worker exited with code/);
  assert.equal(neighbour.status, 'fulfilled');
  assert.ok(await pool.run(task([1, 2, 3]), { signal: signal() }));
  assert.ok(await eventually(() => pool.threads === 2));
});

test('an unexpected exception in a worker rejects that task and leaves the worker serving', async () => {
  const pool = faultPool(1, 4);
  await sleep(100);
  const err = await pool.run(task(faultData(Fault.throw, 60)), { signal: signal() }).catch((e: unknown) => e);
  assert.ok(err instanceof TypeError);
  assert.ok(await pool.run(task([1, 2, 3]), { signal: signal() }));
});

test('a task nested too deeply to post is a 400 before it reaches a worker', async () => {
  const pool = faultPool(1, 4);
  let deep: unknown = 1;
  for (let i = 0; i < 100_000; i++) deep = [deep];
  const err = await pool.run(task([deep]), { signal: signal() }).catch((e: unknown) => e);
  assert.ok(isQuantError(err), String(err));
  assert.equal(err.code, 'QUANT_ERR_TENSOR_DATA');
  assert.equal(pool.stats.inFlight, 0);
  assert.ok(await pool.run(task([[1, 2], [3, 4]]), { signal: signal() }));
});
