import closeWithGrace from 'close-with-grace';
import type { AddressInfo } from 'node:net';
import { describeConfig, loadConfig } from '../config.js';
import { getKernels } from '../core/kernels/runtime.js';
import { buildApp } from './app.js';
import { SERVER_NODE_FLAGS } from './node-flags.js';

// The only place that listens and owns the process lifecycle.
const config = loadConfig();
// Missing kernels (a build without `npm run build`) must stop the start, not fail every request.
getKernels();
const app = await buildApp({ config });

// On SIGTERM/SIGINT: /readyz turns 503 at once, the listener closes, requests in flight
// finish, then the pool closes and the process exits 0. Past SHUTDOWN_TIMEOUT_MS it exits 1.
closeWithGrace({ delay: config.shutdownTimeoutMs, logger: app.log }, async ({ signal, err }) => {
  app.closing = true;
  if (err) app.log.error({ err }, 'shutting down after an error');
  else app.log.info({ signal, shutdownTimeoutMs: config.shutdownTimeoutMs }, 'shutting down: finishing requests in flight');
  await app.close();
  app.log.info('shut down');
});

try {
  await app.listen({ port: config.port, host: config.host });
  // The bound port, not the configured one: PORT=0 picks a free port (tests use it).
  const { port, address } = app.server.address() as AddressInfo;
  const shown = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : address;
  app.log.info({ port, address, config: describeConfig(config), docs: `http://${shown}:${port}/docs` }, 'quantd ready');
  const missing = SERVER_NODE_FLAGS.filter((f) => !process.execArgv.includes(f));
  if (missing.length) app.log.warn({ missing }, `started without ${missing.join(' ')}: big uploads cost the event loop more (node ${SERVER_NODE_FLAGS.join(' ')} dist/src/http/server.js, as npm start does)`);
} catch (err) {
  app.log.error({ err }, 'could not start');
  process.exit(1);
}
