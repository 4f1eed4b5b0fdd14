import Fastify from 'fastify';
import { loadConfig } from '../src/config.js';
import { app } from '../src/http/app.js';

// The service on 127.0.0.1 for the HTTP benchmarks, in its own process (so its RSS and its
// event loop are its own), plus one route the service does not have: an echo of the body,
// the floor a quantize request is compared with. Configured from the environment like the
// server; prints "listening <port>" and exits when its stdin closes.
const config = { ...loadConfig(process.env), host: '127.0.0.1' };
const fastify = Fastify({ logger: false, bodyLimit: config.bodyLimit, requestTimeout: 0 });
await fastify.register(app, { config });
fastify.post('/bench/echo', { schema: { consumes: ['application/x-npy', 'application/octet-stream'], hide: true } }, async (request, reply) =>
  reply.type('application/octet-stream').send(request.body as Buffer),
);
await fastify.listen({ host: '127.0.0.1', port: 0 });
const address = fastify.server.address();
process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : 0}\n`);
process.stdin.resume();
process.stdin.on('end', () => {
  void fastify.close().then(() => process.exit(0));
});
