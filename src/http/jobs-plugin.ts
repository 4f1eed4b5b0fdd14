import fp from 'fastify-plugin';
import { LocalJobStore } from '../jobs/local-store.js';
import { JobRunner } from '../jobs/runner.js';
import type { JobService } from '../jobs/service.js';
import type { JobStore } from '../jobs/types.js';

declare module 'fastify' {
  interface FastifyInstance {
    jobs: JobService;
  }
}

export interface JobsPluginOptions {
  /** A store to use instead of the local one in JOBS_DIR (a shared backend, or tests). */
  store?: JobStore | undefined;
  /** Largest result written as one .onnx (default: protobuf's 2 GiB limit). */
  maxInlineBytes?: number | undefined;
  sweepMs?: number | undefined;
  /** Quantized tensors a job holds before the rest spill to a file (default SPILL_BYTES); tests lower it. */
  spillBytes?: number | undefined;
}

/**
 * Owns the job runner: opened with the app (re-queuing what a previous run left), closed
 * with it (running jobs are stopped and stay queued on disk for the next start).
 */
export const jobsPlugin = fp<JobsPluginOptions>(async (app, opts) => {
  const { config } = app;
  if (config.scale.jobsStore === 'redis' && !opts.store) {
    // Loaded only when configured: the local store needs neither BullMQ nor the AWS SDK.
    const { QueueJobRunner } = await import('../jobs/queue-runner.js');
    const shared = new QueueJobRunner(app.pool, {
      scale: config.scale,
      scratchDir: config.jobsDir,
      concurrency: config.jobsConcurrency,
      ttlSeconds: config.jobsTtlS,
      limits: app.limits,
      log: app.log,
      maxInlineBytes: opts.maxInlineBytes,
      maxBytes: config.jobsMaxBytes,
      spillBytes: opts.spillBytes,
      sweepMs: opts.sweepMs,
    });
    app.decorate('jobs', shared);
    app.addHook('onListen', async () => shared.start());
    app.addHook('preClose', async () => shared.close());
    return;
  }
  const store = opts.store ?? (await LocalJobStore.open(config.jobsDir));
  const runner = new JobRunner(store, app.pool, {
    concurrency: config.jobsConcurrency,
    ttlSeconds: config.jobsTtlS,
    limits: app.limits,
    log: app.log,
    maxInlineBytes: opts.maxInlineBytes,
    maxBytes: config.jobsMaxBytes,
    spillBytes: opts.spillBytes,
    sweepMs: opts.sweepMs,
  });
  app.decorate('jobs', runner);
  // Jobs run only in a listening service (not, e.g., while the OpenAPI document is generated).
  app.addHook('onListen', async () => runner.start());
  app.addHook('preClose', async () => runner.close());
});
