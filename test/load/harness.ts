import type { AddressInfo } from 'node:net';
import { loadConfig } from '../../src/config.js';
import { buildApp } from '../../src/http/app.js';
import type { Task } from '../../src/pool/messages.js';
import { QuantPool } from '../../src/pool/pool.js';
import { GC_MARK, LAST_RESORT } from './gc-worker.js';

// The service in a process of its own, so the load test measures its memory and not the
// client's. Configured from the environment like server.ts; answers IPC requests for its
// memory (after a full GC: run with --expose-gc) and to close.

const gc = (globalThis as { gc?: (o?: object) => void }).gc;
if (!gc || !process.send) throw new Error('run with --expose-gc as a forked child');

const config = loadConfig();
const pool = new QuantPool({ workers: config.workers, maxQueue: config.maxQueue, filename: new URL('./gc-worker.js', import.meta.url).href });
const app = await buildApp({ config, pool, logger: { level: 'warn' } });
const limits = { maxElements: config.maxElements, maxDims: config.maxDims, maxMatmulMacs: config.maxMatmulMacs, maxJsonReplyBytes: config.maxJsonReplyBytes };
const gcTask: Task = {
  op: 'quantize',
  input: { kind: 'json', data: [GC_MARK, 1] },
  options: { bits: 8, scheme: 'symmetric', granularity: 'per_tensor', group_size: 128, calibration: 'minmax', percentile: 99.99, include_values: false },
  accept: 'json',
  limits,
};
await app.listen({ port: 0, host: '127.0.0.1' });
process.send({ type: 'ready', port: (app.server.address() as AddressInfo).port });

process.on('message', async (msg: { type: string }) => {
  if (msg.type === 'memory') {
    // Every worker collects (one task each, held long enough to keep the others busy)...
    await Promise.all(Array.from({ length: config.workers }, () => pool.run(gcTask)));
    // ...then the main thread, in several passes: one can leave work (finalizers) for the next.
    for (let i = 0; i < 4; i++) {
      gc();
      gc(LAST_RESORT);
      await new Promise((r) => setTimeout(r, 50));
    }
    const { heapUsed, rss, external, arrayBuffers } = process.memoryUsage();
    process.send!({ type: 'memory', heapUsed, rss, external, arrayBuffers, pool: app.pool.stats });
  } else if (msg.type === 'close') {
    await app.close();
    await pool.close();
    process.exit(0);
  }
});
