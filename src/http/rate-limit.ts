import rateLimit from '@fastify/rate-limit';
import fp from 'fastify-plugin';
import { Errors } from '../errors.js';
import { isOpenRoute } from './open-routes.js';

/**
 * RATE_LIMIT_MAX requests per minute per API key, or per client IP when there are no keys.
 * Keyed by the key's id (set by auth, which runs first), never by the key itself. Must be
 * registered before the routes: the plugin attaches itself to each route as it is added.
 */
export const rateLimiting = fp<{ max: number }>(async (app, opts) => {
  if (opts.max <= 0) return;
  await app.register(rateLimit, {
    max: opts.max,
    timeWindow: 60_000,
    keyGenerator: (request) => request.apiKeyId ?? `ip-${request.ip}`,
    allowList: (request) => isOpenRoute(request),
    errorResponseBuilder: (request, context) => {
      const who = request.apiKeyId ? 'this API key' : `client ${request.ip}`;
      return Object.assign(new Errors.RateLimited(`more than RATE_LIMIT_MAX=${context.max} requests in a minute from ${who}; retry in ${context.after}`), {
        retryAfter: Math.max(1, Math.ceil(context.ttl / 1000)),
      });
    },
  });
});
