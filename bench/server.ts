import { performance, PerformanceObserver } from 'node:perf_hooks';
import Fastify from 'fastify';
import { loadConfig } from '../src/config.js';
import { app } from '../src/http/app.js';

// The service on 127.0.0.1 for the HTTP benchmarks, in its own process (so its RSS and its
// event loop are its own), plus routes the service does not have: an echo of the body, the
// floor a quantize request is compared with, and the event loop's busy time. Configured from the environment like the
// server; prints "listening <port>" and exits when its stdin closes.
const config = { ...loadConfig(process.env), host: '127.0.0.1' };
const fastify = Fastify({ logger: false, bodyLimit: config.bodyLimit, requestTimeout: 0 });
await fastify.register(app, { config });
fastify.post('/bench/echo', { schema: { consumes: ['application/x-npy', 'application/octet-stream'], hide: true } }, async (request, reply) =>
  reply.type('application/octet-stream').send(request.body as Buffer),
);
// Garbage collection on this thread so far (wall time of each pause), by kind.
const gcMs = { minor: 0, major: 0, other: 0 };
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
    gcMs[kind === 1 ? 'minor' : kind === 4 ? 'major' : 'other'] += e.duration;
  }
}).observe({ entryTypes: ['gc'] });
// The event loop's own busy time so far (time outside the wait for I/O), for the
// per-request loop cost rows; the bench diffs two readings.
fastify.get('/bench/loop', { schema: { hide: true } }, async () => {
  const elu = performance.eventLoopUtilization();
  return { active_ms: elu.active, idle_ms: elu.idle, gc_ms: gcMs };
});
await fastify.listen({ host: '127.0.0.1', port: 0 });
const address = fastify.server.address();
process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : 0}\n`);
process.stdin.resume();
process.stdin.on('end', () => {
  void fastify.close().then(() => process.exit(0));
});
