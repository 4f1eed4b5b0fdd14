import closeWithGrace from 'close-with-grace';
import { loadConfig } from '../config.js';
import { buildApp } from './app.js';

// The only place that listens and owns the process lifecycle.
const config = loadConfig();
const app = await buildApp({ config });

closeWithGrace({ delay: config.shutdownTimeoutMs }, async ({ signal, err }) => {
  if (err) app.log.error({ err }, 'shutting down after an error');
  else app.log.info({ signal }, 'shutting down: finishing requests in flight');
  await app.close();
});

try {
  await app.listen({ port: config.port, host: config.host });
  app.log.info({ workers: config.workers, docs: `http://${config.host === '0.0.0.0' ? 'localhost' : config.host}:${config.port}/docs` }, 'quantd ready');
} catch (err) {
  app.log.error({ err }, 'could not start');
  process.exit(1);
}
