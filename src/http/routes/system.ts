import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

const Health = z.object({ status: z.literal('ok') });
const Ready = z.object({ status: z.enum(['ready', 'not_ready']), workers: z.number().int(), queued: z.number().int() });

export const systemRoutes: FastifyPluginAsync = async (app) => {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get('/healthz', { schema: { summary: 'Liveness', tags: ['ops'], response: { 200: Health } } }, async () => ({ status: 'ok' as const }));
  r.get(
    '/readyz',
    { schema: { summary: 'Readiness: the worker pool is up', tags: ['ops'], response: { 200: Ready, 503: Ready } } },
    async (_request, reply) => {
      const workers = app.pool.threads;
      // Not ready while shutting down, shedding load or without the job queue (Redis), so a
      // balancer sends work elsewhere.
      const ready = workers > 0 && !app.closing && !app.isUnderPressure() && app.jobs.ready();
      return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', workers, queued: app.pool.queueSize });
    },
  );
  r.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
};
