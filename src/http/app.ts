import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import fp from 'fastify-plugin';
import { jsonSchemaTransform, jsonSchemaTransformObject, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { Config } from '../config.js';
import { Errors } from '../errors.js';
import type { TaskLimits } from '../pool/messages.js';
import { QuantPool } from '../pool/pool.js';
import { errorHandler } from './error-handler.js';
import { binaryRequestBodies } from './openapi.js';
import { analyzeRoutes } from './routes/analyze.js';
import { quantizeRoutes } from './routes/quantize.js';
import { systemRoutes } from './routes/system.js';
import { NPY, OCTET } from './tensor-source.js';

declare module 'fastify' {
  interface FastifyInstance {
    config: Config;
    pool: QuantPool;
    limits: TaskLimits;
    closing: boolean;
  }
}

export const VERSION = '0.1.0';

export interface AppOptions {
  config: Config;
  /** A pool to use instead of creating one (tests share one across apps). */
  pool?: QuantPool;
}

/** Owns the worker pool: created with the app, closed when it closes. */
const poolPlugin = fp<AppOptions>(async (app, opts) => {
  const pool = opts.pool ?? new QuantPool({ workers: opts.config.workers, maxQueue: opts.config.maxQueue });
  app.decorate('pool', pool);
  app.decorate('closing', false);
  app.addHook('preClose', async () => {
    app.closing = true;
  });
  if (!opts.pool) app.addHook('onClose', async () => pool.close());
});

/** The service as a fastify plugin: tests register it on an instance without listening. */
export const app = fp<AppOptions>(async (fastify, opts) => {
  const { config } = opts;
  fastify.decorate('config', config);
  fastify.decorate('limits', { maxElements: config.maxElements, maxDims: config.maxDims, maxMatmulMacs: config.maxMatmulMacs });
  fastify.setValidatorCompiler((route) => {
    const validate = validatorCompiler(route as Parameters<typeof validatorCompiler>[0]);
    // NPY and raw bodies are bytes; their options are validated with the query string.
    return route.httpPart === 'body' ? (data: unknown) => (Buffer.isBuffer(data) ? { value: data } : validate(data)) : validate;
  });
  fastify.setSerializerCompiler(serializerCompiler);
  fastify.setErrorHandler(errorHandler);
  fastify.setNotFoundHandler((request, reply) => {
    const err = new Errors.NotFound(`no route ${request.method} ${request.url.split('?')[0]}; see /docs`);
    reply.code(404).send({ statusCode: 404, error: 'Not Found', code: err.code, message: err.message });
  });
  for (const type of [NPY, OCTET]) {
    fastify.addContentTypeParser(type, { parseAs: 'buffer', bodyLimit: config.bodyLimit }, (_req, payload, done) => done(null, payload));
  }

  await fastify.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'quantd',
        description: 'Quantize tensors to 2-16 bit integers (symmetric or asymmetric; per tensor, channel or group; min-max, percentile or MSE calibration) and measure the error.',
        version: VERSION,
      },
      tags: [
        { name: 'quantize', description: 'Quantize and dequantize tensors' },
        { name: 'analyze', description: 'Compare settings; quantized matmul' },
        { name: 'ops', description: 'Probes' },
      ],
    },
    transform: jsonSchemaTransform,
    transformObject: (doc) => binaryRequestBodies(jsonSchemaTransformObject(doc)),
  });
  await fastify.register(fastifySwaggerUi, { routePrefix: '/docs' });
  await fastify.register(poolPlugin, opts);
  await fastify.register(systemRoutes);
  await fastify.register(quantizeRoutes);
  await fastify.register(analyzeRoutes);
});

/** A fastify instance with the service registered, configured as the server runs it. */
export async function buildApp(opts: AppOptions & { logger?: FastifyServerOptions['logger'] }): Promise<FastifyInstance> {
  const fastify = Fastify({
    logger: opts.logger ?? { level: opts.config.logLevel, redact: ['req.headers.authorization'] },
    bodyLimit: opts.config.bodyLimit,
    // Big uploads must not be cut off by the default request timeout while they stream in.
    requestTimeout: 0,
    genReqId: () => crypto.randomUUID(),
    ajv: undefined,
  });
  await fastify.register(app, opts);
  await fastify.ready();
  return fastify;
}
