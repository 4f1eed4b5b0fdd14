import { setArenaCacheBytes } from '../core/kernels/arenas.js';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import fp from 'fastify-plugin';
import { jsonSchemaTransform, jsonSchemaTransformObject, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { Config } from '../config.js';
import { Errors } from '../errors.js';
import type { TaskLimits } from '../pool/messages.js';
import { QuantPool } from '../pool/pool.js';
import { auth } from './auth.js';
import { binaryBodies } from './binary-bodies.js';
import { clientErrorHandler, errorHandler } from './error-handler.js';
import { loadShedding } from './load-shedding.js';
import { loggerOptions } from './logger.js';
import { metrics, metricsRoute } from './metrics.js';
import { binaryRequestBodies } from './openapi.js';
import { modelRequestBodies, weightsJobRequestBody } from './openapi-models.js';
import { bearerSecurity } from './openapi-security.js';
import { rateLimiting } from './rate-limit.js';
import { logFact, RequestLogController, requestLog } from './request-log.js';
import { shutdown } from './shutdown.js';
import { analyzeRoutes } from './routes/analyze.js';
import { MODEL_UPLOAD_PATHS, modelRoutes } from './routes/models.js';
import { JOB_UPLOAD_PATHS, jobRoutes, WEIGHTS_JOB_PATH } from './routes/jobs.js';
import { jobsPlugin, type JobsPluginOptions } from './jobs-plugin.js';
import { quantizeRoutes } from './routes/quantize.js';
import { systemRoutes } from './routes/system.js';
import { weightsRoutes } from './routes/weights.js';
import { uiRoutes } from './ui.js';

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
  /** Job store and runner settings beside the config (tests use them). */
  jobs?: JobsPluginOptions;
  /** How often load shedding samples the event loop and heap (tests shorten it). */
  pressureSampleMs?: number;
}

/** Owns the worker pool: created with the app, closed when it closes. */
const poolPlugin = fp<AppOptions>(async (app, opts) => {
  // Idle arenas of request bodies kept for reuse (http/arena-pool.ts).
  setArenaCacheBytes(opts.config.arenaCacheBytes);
  const pool = opts.pool ?? new QuantPool({ workers: opts.config.workers, maxQueue: opts.config.maxQueue });
  app.decorate('pool', pool);
  if (!opts.pool) app.addHook('onClose', async () => pool.close());
});

/** The service as a fastify plugin: tests register it on an instance without listening. */
export const app = fp<AppOptions>(async (fastify, opts) => {
  const { config } = opts;
  fastify.decorate('config', config);
  fastify.decorate('limits', {
    maxElements: config.maxElements,
    maxDims: config.maxDims,
    maxMatmulMacs: config.maxMatmulMacs,
    dataAwareMaxMacs: config.dataAwareMaxMacs,
    maxJsonReplyBytes: config.maxJsonReplyBytes,
    calibrationMaxBytes: config.calibrationMaxBytes,
    calibrationMaxSamples: config.calibrationMaxSamples,
    hessianMaxBytes: config.hessianMaxBytes,
  });
  fastify.setValidatorCompiler((route) => {
    const validate = validatorCompiler(route as Parameters<typeof validatorCompiler>[0]);
    // NPY and raw bodies are bytes; their options are validated with the query string.
    return route.httpPart === 'body' ? (data: unknown) => (Buffer.isBuffer(data) ? { value: data } : validate(data)) : validate;
  });
  fastify.setSerializerCompiler(serializerCompiler);
  fastify.setErrorHandler(errorHandler);
  fastify.setNotFoundHandler((request, reply) => {
    const err = new Errors.NotFound(`no route ${request.method} ${request.url.split('?')[0]}; see /docs`);
    logFact(request, { code: err.code });
    reply.code(404).send({ statusCode: 404, error: 'Not Found', code: err.code, message: err.message });
  });
  // Order matters: the log line exists before anything can refuse the request, keys are
  // checked before load or rate decisions, and the rate limiter attaches to routes added after it.
  await fastify.register(requestLog);
  await fastify.register(metrics);
  await fastify.register(shutdown);
  await fastify.register(auth, { apiKeys: config.apiKeys });
  await fastify.register(loadShedding, {
    maxEventLoopDelayMs: config.maxEventLoopDelayMs,
    maxHeapUsedBytes: config.maxHeapUsedBytes,
    sampleIntervalMs: opts.pressureSampleMs ?? 1000,
  });
  await fastify.register(rateLimiting, { max: config.rateLimitMax });
  await fastify.register(binaryBodies, { bodyLimit: config.bodyLimit });

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
        { name: 'models', description: 'Quantize the weights of ONNX models' },
        { name: 'jobs', description: 'Quantize big models in the background, with progress' },
        { name: 'ops', description: 'Probes' },
      ],
      components: { securitySchemes: {} },
    },
    transform: jsonSchemaTransform,
    transformObject: (doc) =>
      bearerSecurity(weightsJobRequestBody(binaryRequestBodies(modelRequestBodies(jsonSchemaTransformObject(doc), [...MODEL_UPLOAD_PATHS, ...JOB_UPLOAD_PATHS])), WEIGHTS_JOB_PATH)),
  });
  await fastify.register(fastifySwaggerUi, { routePrefix: '/docs' });
  await fastify.register(poolPlugin, opts);
  await fastify.register(systemRoutes);
  await fastify.register(metricsRoute, { token: config.metricsToken });
  await fastify.register(jobsPlugin, opts.jobs ?? {});
  // A ROLE=worker replica runs jobs and answers probes only.
  if (config.scale.role !== 'worker') {
    await fastify.register(quantizeRoutes);
    await fastify.register(analyzeRoutes);
    await fastify.register(modelRoutes);
    await fastify.register(weightsRoutes);
    await fastify.register(jobRoutes);
    await fastify.register(uiRoutes);
  }
});

/** A fastify instance with the service registered, configured as the server runs it. */
export async function buildApp(opts: AppOptions & { logger?: FastifyServerOptions['logger'] }): Promise<FastifyInstance> {
  const fastify = Fastify({
    logger: opts.logger ?? loggerOptions(opts.config),
    // One line in and one out per request, with the facts fastify's own lines lack.
    logController: new RequestLogController(),
    bodyLimit: opts.config.bodyLimit,
    // shutdown.ts answers requests that arrive while closing, in our error format.
    return503OnClosing: false,
    frameworkErrors: errorHandler,
    clientErrorHandler,
    // Big uploads must not be cut off by the default request timeout while they stream in.
    requestTimeout: 0,
    genReqId: () => crypto.randomUUID(),
    ajv: undefined,
  });
  await fastify.register(app, opts);
  await fastify.ready();
  return fastify;
}
