import fp from 'fastify-plugin';
import { createHash, timingSafeEqual } from 'node:crypto';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { Errors } from '../errors.js';
import { JOB_STATUSES } from '../jobs/types.js';
import type { TaskSettled } from '../pool/pool.js';

// Prometheus metrics, one registry per app (tests build several apps in one process). The
// request hook does two label lookups and three additions; everything else (pool gauges, jobs
// by status) is read when a scraper asks, so the hot path stays as it was.

/** The stages a model report times, as the metrics name them (the report says "validation"). */
export const MODEL_STAGES = ['decode', 'calibrate', 'quantize', 'encode', 'validate'] as const;
const STAGE_NAME: Record<string, (typeof MODEL_STAGES)[number]> = {
  decode: 'decode',
  calibrate: 'calibrate',
  calibration: 'calibrate',
  quantize: 'quantize',
  encode: 'encode',
  validation: 'validate',
  validate: 'validate',
};
const JOB_PHASES = ['queued', 'decoding', 'reference', 'calibrating', 'quantizing', 'writing', 'validating'] as const;

const REQUEST_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
const LONG_BUCKETS = [0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600];

/** Label of requests no route matched: raw URLs would make a label value per probe a scanner tries. */
const UNMATCHED = 'unmatched';

function bytesOf(value: string | number | string[] | undefined): number {
  if (value === undefined || Array.isArray(value)) return 0;
  const n = Number(value);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

declare module 'fastify' {
  interface FastifyInstance {
    metricsRegistry: Registry;
  }
}

/** The registry and what feeds it; registered before every route so its request hook sees them all. */
export const metrics = fp(async (app) => {
  const register = new Registry();
  collectDefaultMetrics({ register });
  const registers = [register];
  const httpLabels = ['route', 'method', 'status_code'] as const;

  const requests = new Counter({ name: 'quantd_http_requests_total', help: 'HTTP requests answered, by route pattern, method and status code', labelNames: httpLabels, registers });
  const duration = new Histogram({
    name: 'quantd_http_request_duration_seconds',
    help: 'Time from a request arriving to its answer being sent, by route pattern, method and status code',
    labelNames: httpLabels,
    buckets: REQUEST_BUCKETS,
    registers,
  });
  const bytesIn = new Counter({ name: 'quantd_http_request_bytes_total', help: 'Request body bytes (Content-Length, or the bytes read), by route pattern', labelNames: ['route'], registers });
  const bytesOut = new Counter({ name: 'quantd_http_response_bytes_total', help: 'Response body bytes (Content-Length of the reply), by route pattern', labelNames: ['route'], registers });
  const errors = new Counter({ name: 'quantd_http_errors_total', help: 'Error replies by route pattern and error code (QUANT_ERR_...)', labelNames: ['route', 'code'], registers });

  const tasks = new Counter({
    name: 'quantd_tasks_total',
    help: 'Worker pool tasks by op and outcome: ok, error (bad input found in the worker), rejected (queue full, 503), timeout, aborted, crash',
    labelNames: ['op', 'outcome'],
    registers,
  });
  const rejected = new Counter({ name: 'quantd_tasks_rejected_total', help: 'Tasks refused because the worker queue was full (MAX_QUEUE; 503)', registers });
  const timedOut = new Counter({ name: 'quantd_tasks_timed_out_total', help: 'Requests whose task was stopped past REQUEST_TIMEOUT_MS (504)', registers });
  const busy = new Counter({ name: 'quantd_worker_busy_seconds_total', help: 'Time worker threads spent running tasks that finished, by op', labelNames: ['op'], registers });
  const stages = new Histogram({
    name: 'quantd_model_stage_duration_seconds',
    help: 'Model quantization stages (decode, calibrate, quantize, encode, validate), synchronous requests and jobs alike',
    labelNames: ['stage'],
    buckets: LONG_BUCKETS,
    registers,
  });
  const phases = new Histogram({
    name: 'quantd_job_phase_duration_seconds',
    help: 'Time jobs spent in each phase: queued, decoding, reference, quantizing, writing, validating',
    labelNames: ['phase'],
    buckets: LONG_BUCKETS,
    registers,
  });
  // Every label value that is known in advance is shown at 0 from the start, so rates work from the first scrape.
  for (const stage of MODEL_STAGES) stages.zero({ stage });
  for (const phase of JOB_PHASES) phases.zero({ phase });
  rejected.inc(0);
  timedOut.inc(0);

  new Gauge({
    name: 'quantd_tasks_queued',
    help: 'Tasks waiting for a worker',
    registers,
    collect() {
      this.set(app.pool.stats.queued);
    },
  });
  new Gauge({
    name: 'quantd_tasks_running',
    help: 'Tasks running in a worker',
    registers,
    collect() {
      const s = app.pool.stats;
      this.set(s.inFlight - s.queued);
    },
  });
  new Gauge({
    name: 'quantd_workers',
    help: 'Worker threads up',
    registers,
    collect() {
      this.set(app.pool.threads);
    },
  });
  new Gauge({
    name: 'quantd_jobs',
    help: 'Jobs in the store, by status',
    labelNames: ['status'],
    registers,
    async collect() {
      const counts = Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as Record<string, number>;
      let jobs;
      try {
        jobs = await app.jobs.store.list();
      } catch {
        // The shared store's Redis is away: no counts rather than stale ones, and the rest of
        // the scrape still answers.
        this.reset();
        return;
      }
      for (const job of jobs) counts[job.status] = (counts[job.status] ?? 0) + 1;
      for (const [status, n] of Object.entries(counts)) this.set({ status }, n);
    },
  });

  // The pool and the job runner are made after this plugin (its request hook must come before
  // every route): their observers are attached once the app is ready.
  let unobserve = () => {};
  app.addHook('onReady', async () => {
    unobserve = app.pool.observe(onTask);
    app.jobs.phaseObserver = (phase, seconds) => phases.observe({ phase }, seconds);
  });
  const onTask = (e: TaskSettled) => {
    tasks.inc({ op: e.op, outcome: e.outcome });
    if (e.outcome === 'rejected') rejected.inc();
    if (e.busyMs !== undefined) busy.inc({ op: e.op }, e.busyMs / 1000);
    if (e.stages) {
      for (const [key, ms] of Object.entries(e.stages)) {
        const stage = STAGE_NAME[key];
        if (stage) stages.observe({ stage }, ms / 1000);
      }
    }
  };
  app.addHook('onClose', async () => {
    unobserve();
    app.jobs.phaseObserver = undefined;
  });

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? UNMATCHED;
    const status = reply.statusCode;
    const labels = { route, method: request.method, status_code: status };
    requests.inc(labels);
    duration.observe(labels, reply.elapsedTime / 1000);
    const inBytes = request.logFacts?.requestBytes ?? bytesOf(request.headers['content-length']);
    if (inBytes > 0) bytesIn.inc({ route }, inBytes);
    const outBytes = bytesOf(reply.getHeader('content-length'));
    if (outBytes > 0) bytesOut.inc({ route }, outBytes);
    const code = request.logFacts?.code;
    if (code !== undefined) {
      errors.inc({ route, code });
      if (code === 'QUANT_ERR_TIMEOUT') timedOut.inc();
    }
  });

  app.decorate('metricsRegistry', register);
});

/** GET /metrics, registered after the OpenAPI plugin so the document lists it. */
export const metricsRoute = fp<{ token?: string | undefined }>(async (app, opts) => {
  const register = app.metricsRegistry;
  const digest = opts.token === undefined ? undefined : createHash('sha256').update(opts.token, 'utf8').digest();
  app.get(
    '/metrics',
    {
      schema: {
        summary: 'Prometheus metrics (text exposition format)',
        description: 'Open like the probes, unless METRICS_TOKEN is set: then it needs `Authorization: Bearer <METRICS_TOKEN>`.',
        tags: ['ops'],
        produces: [register.contentType.split(';')[0]!],
      },
    },
    async (request, reply) => {
      if (digest) {
        const token = /^Bearer +(\S+) *$/i.exec(request.headers.authorization ?? '')?.[1];
        const presented = createHash('sha256').update(token ?? '', 'utf8').digest();
        if (token === undefined || !timingSafeEqual(presented, digest)) {
          reply.header('www-authenticate', 'Bearer realm="quantd-metrics"');
          throw new Errors.Unauthorized('/metrics needs the header Authorization: Bearer <METRICS_TOKEN>');
        }
      }
      const text = await register.metrics();
      return reply.type(register.contentType).send(text);
    },
  );
});
