import { performance } from 'node:perf_hooks';
import { sendOk } from './lib/http-client.js';
import { row, type BenchOptions, type ScenarioResult } from './lib/rows.js';
import { startServer } from './lib/server.js';
import { median } from './lib/stats.js';
import { gaussian, MiB, npyBody } from './lib/tensors.js';

// Throughput of many concurrent 4 MiB tensors with MSE calibration, 2 workers against 1.
export async function run(o: BenchOptions): Promise<ScenarioResult> {
  const n = (4 * MiB) / 4;
  const body = npyBody(gaussian(n, 5), [n]);
  const total = o.quick ? 24 : 64;
  const concurrency = 8;
  const path = '/v1/quantize?bits=8&calibration=mse';
  const headers = { 'content-type': 'application/x-npy', accept: 'application/x-npz' };
  const cpu: Record<number, { server: number; client: number }> = {};
  const throughput = async (workers: number): Promise<number> => {
    const server = await startServer({ WORKERS: String(workers) });
    try {
      for (let i = 0; i < 4; i++) await sendOk(server.port, 'POST', path, body, headers);
      const rounds: number[] = [];
      const server0 = server.cpuSeconds();
      const client0 = process.cpuUsage();
      for (let r = 0; r < 3; r++) {
        let next = 0;
        const t0 = performance.now();
        await Promise.all(
          Array.from({ length: concurrency }, async () => {
            while (next++ < total) await sendOk(server.port, 'POST', path, body, headers);
          }),
        );
        rounds.push(total / ((performance.now() - t0) / 1000));
      }
      const client = process.cpuUsage(client0);
      cpu[workers] = { server: ((server.cpuSeconds() - server0) * 1000) / (3 * total), client: (client.user + client.system) / 1000 / (3 * total) };
      return median(rounds);
    } finally {
      await server.stop();
    }
  };
  const one = await throughput(1);
  const two = await throughput(2);
  return {
    rows: [
      row({ name: 'pool.scaling_2_workers', value: two, unit: 'req/s', baselineName: 'one worker', baselineValue: one, better: 'higher', target: 1.7, note: `${total} requests of 4 MiB, ${concurrency} in flight, calibration=mse, .npz replies; median of 3 rounds` }),
    ],
    details: [
      { name: 'server CPU per request, 1 worker (all threads)', value: cpu[1]!.server, unit: 'ms' },
      { name: 'server CPU per request, 2 workers (all threads)', value: cpu[2]!.server, unit: 'ms' },
      { name: 'bench client CPU per request (same machine)', value: cpu[2]!.client, unit: 'ms' },
    ],
  };
}
