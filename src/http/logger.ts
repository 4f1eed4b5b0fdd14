import type { FastifyServerOptions } from 'fastify';
import type { Config } from '../config.js';

/**
 * pino options for the service. Request logs are written by request-log.ts and carry no
 * headers; the redaction is there for anything that logs a request or its headers anyway,
 * so that an API key cannot reach the log by accident.
 */
export function loggerOptions(config: Pick<Config, 'logLevel'>): Exclude<FastifyServerOptions['logger'], boolean | undefined> {
  return {
    level: config.logLevel,
    redact: {
      paths: ['req.headers.authorization', 'headers.authorization', 'request.headers.authorization', 'authorization'],
      censor: '[redacted]',
    },
  };
}
