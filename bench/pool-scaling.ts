import { performance } from 'node:perf_hooks';
import { sendOk } from './lib/http-client.js';
import { row, type BenchOptions, type ScenarioResult } from './lib/rows.js';
import { startServer, type BenchServer } from './lib/server.js';
import { median } from './lib/stats.js';
import { gaussian, MiB, npyBody } from './lib/tensors.js';

// Throughput of many concurrent requests, 2 workers against 1: 4 MiB tensors with MSE
// calibration (the event loop's share matters) and 16 MiB per-group MSE calibrations (the
// worker's time dominates); and the event loop's own CPU time per 4 MiB request.

interface Load {
  path: string;
  body: Buffer;
  total: number;
  concurrency: number;
  rounds: number;
}

interface Measured {
  reqPerS: number;
  /** All threads of the server, per request. */
  serverCpuMs: number;
  /** The server's main thread (the event loop) alone, per request. */
  loopCpuMs: number;
  /** The kernel's part of loopCpuMs (system time), per request. */
  loopSystemMs: number;
  /** The event loop's busy time (eventLoopUtilization().active), per request. */
  loopActiveMs: number;
  /** Garbage-collection pauses on the main thread, per request. */
  loopGcMs: number;
  clientCpuMs: number;
}

const headers = { 'content-type': 'application/x-npy', accept: 'application/x-npz' };

async function measure(server: BenchServer, load: Load): Promise<Measured> {
  const rounds: number[] = [];
  const server0 = server.cpuSeconds();
  const loop0 = server.loopCpuSeconds();
  const system0 = server.loopSystemSeconds();
  const loopStats0 = await server.loopStats();
  const client0 = process.cpuUsage();
  for (let r = 0; r < load.rounds; r++) {
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: load.concurrency }, async () => {
        while (next++ < load.total) await sendOk(server.port, 'POST', load.path, load.body, headers);
      }),
    );
    rounds.push(load.total / ((performance.now() - t0) / 1000));
  }
  const n = load.rounds * load.total;
  const loopCpuMs = ((server.loopCpuSeconds() - loop0) * 1000) / n;
  const loopSystemMs = ((server.loopSystemSeconds() - system0) * 1000) / n;
  const loopStats = await server.loopStats();
  const loopActiveMs = (loopStats.activeMs - loopStats0.activeMs) / n;
  const loopGcMs = (loopStats.gcMs - loopStats0.gcMs) / n;
  const client = process.cpuUsage(client0);
  return { reqPerS: median(rounds), serverCpuMs: ((server.cpuSeconds() - server0) * 1000) / n, loopCpuMs, loopSystemMs, loopActiveMs, loopGcMs, clientCpuMs: (client.user + client.system) / 1000 / n };
}

async function withServer<T>(workers: number, fn: (s: BenchServer) => Promise<T>, nodeFlags?: readonly string[]): Promise<T> {
  const server = await startServer({ WORKERS: String(workers) }, nodeFlags);
  try {
    return await fn(server);
  } finally {
    await server.stop();
  }
}

export async function run(o: BenchOptions): Promise<ScenarioResult> {
  const small = (4 * MiB) / 4;
  const smallLoad: Load = { path: '/v1/quantize?bits=8&calibration=mse', body: npyBody(gaussian(small, 5), [small]), total: o.quick ? 24 : 64, concurrency: 8, rounds: 3 };
  const big = (16 * MiB) / 4;
  const bigLoad: Load = {
    path: '/v1/quantize?bits=4&granularity=per_group&group_size=128&calibration=mse',
    body: npyBody(gaussian(big, 6), [big]),
    total: o.quick ? 4 : 8,
    concurrency: 4,
    rounds: o.quick ? 1 : 3,
  };
  const echoLoad: Load = { ...smallLoad, path: '/bench/echo', rounds: 1 };

  const warm = async (s: BenchServer, load: Load, n: number) => {
    for (let i = 0; i < n; i++) await sendOk(s.port, 'POST', load.path, load.body, headers);
  };
  const [one, oneBig] = await withServer(1, async (s) => {
    await warm(s, smallLoad, 4);
    const a = await measure(s, smallLoad);
    await warm(s, bigLoad, 1);
    return [a, await measure(s, bigLoad)] as const;
  });
  const [two, twoBig, echo] = await withServer(2, async (s) => {
    await warm(s, smallLoad, 4);
    const a = await measure(s, smallLoad);
    await warm(s, bigLoad, 1);
    const b = await measure(s, bigLoad);
    await warm(s, echoLoad, 4);
    return [a, b, await measure(s, echoLoad)] as const;
  });
  // The same 4 MiB load on a server started without SERVER_NODE_FLAGS (V8's default heap
  // sizing): what the flag saves the event loop, in the same run.
  const plain = await withServer(
    2,
    async (s) => {
      await warm(s, smallLoad, 4);
      return measure(s, smallLoad);
    },
    [],
  );
  return {
    rows: [
      row({ name: 'pool.scaling_2_workers', value: two.reqPerS, unit: 'req/s', baselineName: 'one worker', baselineValue: one.reqPerS, better: 'higher', target: 1.7, note: `${smallLoad.total} requests of 4 MiB, ${smallLoad.concurrency} in flight, calibration=mse, .npz replies; median of 3 rounds` }),
      row({
        name: 'pool.scaling_compute_bound',
        value: twoBig.reqPerS,
        unit: 'req/s',
        baselineName: 'one worker',
        baselineValue: oneBig.reqPerS,
        better: 'higher',
        target: 1.8,
        note: `${bigLoad.total} requests of 16 MiB (4M elements), bits=4 per group of 128, calibration=mse, ${bigLoad.concurrency} in flight, .npz replies; median of ${bigLoad.rounds} rounds; ~${oneBig.serverCpuMs.toFixed(0)} ms of server CPU each`,
      }),
      row({
        name: 'http.event_loop_ms_per_4mib',
        value: two.loopCpuMs,
        unit: 'ms',
        baselineName: 'target',
        baselineValue: 2,
        better: 'lower',
        target: 1,
        note: `CPU time of the server's main thread per 4 MiB request (/proc schedstat), the 2-worker pool.scaling_2_workers load; busy time (eventLoopUtilization) ${two.loopActiveMs.toFixed(1)} ms; ratio = value / 2 ms`,
      }),
    ],
    details: [
      { name: 'server CPU per request, 1 worker (all threads)', value: one.serverCpuMs, unit: 'ms' },
      { name: 'server CPU per request, 2 workers (all threads)', value: two.serverCpuMs, unit: 'ms' },
      { name: 'bench client CPU per request (same machine)', value: two.clientCpuMs, unit: 'ms' },
      { name: 'event loop CPU per 4 MiB request, 1 worker', value: one.loopCpuMs, unit: 'ms' },
      { name: 'event loop CPU per 4 MiB request, 2 workers: the kernel part (system time: socket reads and writes)', value: two.loopSystemMs, unit: 'ms' },
      { name: 'event loop CPU per 4 MiB echo: the kernel part (system time)', value: echo.loopSystemMs, unit: 'ms' },
      { name: 'event loop busy time per 4 MiB request, 2 workers (eventLoopUtilization)', value: two.loopActiveMs, unit: 'ms' },
      { name: 'garbage collection pauses on the event loop per 4 MiB request, 2 workers', value: two.loopGcMs, unit: 'ms' },
      { name: 'garbage collection pauses on the event loop per 4 MiB echo', value: echo.loopGcMs, unit: 'ms' },
      { name: 'event loop CPU per 4 MiB request, 2 workers, server without SERVER_NODE_FLAGS', value: plain.loopCpuMs, unit: 'ms' },
      { name: 'throughput of 4 MiB requests, 2 workers, server without SERVER_NODE_FLAGS', value: plain.reqPerS, unit: 'req/s' },
      { name: 'event loop CPU per 4 MiB echo (the floor: read the body, write it back)', value: echo.loopCpuMs, unit: 'ms' },
      { name: 'event loop CPU per 16 MiB per-group MSE request, 2 workers', value: twoBig.loopCpuMs, unit: 'ms' },
      { name: 'server CPU per 16 MiB per-group MSE request, 1 worker (all threads)', value: oneBig.serverCpuMs, unit: 'ms' },
    ],
  };
}
