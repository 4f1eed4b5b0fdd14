import underPressure from '@fastify/under-pressure';
import fp from 'fastify-plugin';
import { Errors } from '../errors.js';
import { isOpenRoute } from './open-routes.js';

export interface LoadSheddingOptions {
  maxEventLoopDelayMs: number;
  maxHeapUsedBytes: number;
  /** How often the event loop and heap are sampled. */
  sampleIntervalMs: number;
}

const RETRY_AFTER_S = 5;

const WHAT: Record<string, string> = {
  eventLoopDelay: 'the event loop is delayed by %v ms (limit MAX_EVENT_LOOP_DELAY_MS=%l)',
  heapUsedBytes: 'the heap holds %v bytes (limit MAX_HEAP_USED_BYTES=%l)',
};
const BLOCKED = 'the event loop is blocked past a whole delay sample (limit MAX_EVENT_LOOP_DELAY_MS=%l)';

/**
 * @fastify/under-pressure refuses work with a 503 + Retry-After (in our error format) while
 * the main thread is too slow or its heap too full to take more. The probes and docs are
 * never refused: /readyz reports the pressure itself, and /healthz must stay up so a busy
 * instance is not restarted as if it were dead.
 */
export const loadShedding = fp<LoadSheddingOptions>(async (app, opts) => {
  await app.register(underPressure, {
    maxEventLoopDelay: opts.maxEventLoopDelayMs,
    maxHeapUsedBytes: opts.maxHeapUsedBytes,
    sampleInterval: opts.sampleIntervalMs,
    pressureHandler: (request, _reply, type, value) => {
      if (isOpenRoute(request)) return undefined;
      const limit = type === 'eventLoopDelay' ? opts.maxEventLoopDelayMs : opts.maxHeapUsedBytes;
      // under-pressure reports Infinity when the loop stayed blocked past a whole sample: say so, not 'Infinity ms'.
      const v = Number(value);
      const template = Number.isFinite(v) ? WHAT[type] : type === 'eventLoopDelay' ? BLOCKED : WHAT[type];
      const what = (template ?? `${type} is over its limit`).replace('%v', String(Math.round(v))).replace('%l', String(limit));
      return Promise.reject(Object.assign(new Errors.Overloaded(`the service is under pressure: ${what}; retry shortly`), { retryAfter: RETRY_AFTER_S }));
    },
  });
});
