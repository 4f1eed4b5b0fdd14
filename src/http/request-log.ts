import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';

/** Facts about a request worth a log line: sizes and shapes, never tensor data. */
export interface LogFacts {
  op?: string;
  shape?: number[];
  elements?: number;
  requestBytes?: number;
  code?: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    logFacts: LogFacts | null;
  }
}

function byteCount(value: string | number | string[] | undefined): number | undefined {
  if (value === undefined || value === '' || Array.isArray(value)) return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
}

/** Adds facts to a request's log line (handlers and the error handler call this). */
export function logFact(request: FastifyRequest, facts: LogFacts): void {
  request.logFacts = { ...request.logFacts, ...facts };
}

/**
 * Fastify's two lines per request, with what an operator needs: request id (the child
 * logger adds it), route, status, duration, bytes in and out, tensor shape, error code.
 * Headers are never logged, so neither are API keys; tensor values never are either.
 * Fastify's other lines (serializer and stream errors) stay as they are.
 */
export class RequestLogController extends LogController {
  override incomingRequest(request: FastifyRequest): void {
    request.log.info({ method: request.method, url: request.url, remoteAddress: request.ip }, 'incoming request');
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const facts = request.logFacts ?? {};
    const line = {
      method: request.method,
      route: request.routeOptions?.url ?? null,
      statusCode: reply.statusCode,
      durationMs: Math.round(reply.elapsedTime * 100) / 100,
      requestBytes: facts.requestBytes ?? byteCount(request.headers['content-length']),
      responseBytes: byteCount(reply.getHeader('content-length')),
      ...facts,
    };
    if (error) reply.log.error({ ...line, err: error }, 'request errored');
    else reply.log.info(line, 'request completed');
  }
}

/** Counts binary bodies before the handler transfers them to a worker. */
export const requestLog = fp(async (app) => {
  app.decorateRequest('logFacts', null);
  app.addHook('preHandler', async (request) => {
    if (Buffer.isBuffer(request.body)) logFact(request, { requestBytes: request.body.length });
  });
});
