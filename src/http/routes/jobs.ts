import fastifyMultipart from '@fastify/multipart';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { Errors } from '../../errors.js';
import type { JobEvent, JobRecord } from '../../jobs/types.js';
import { INITIAL_PROGRESS } from '../../jobs/runner.js';
import { zipStream } from '../../onnx/io/zip-stream.js';
import { checkJobQuery, receiveJobUpload, uploadBudget, type Budget } from '../job-upload.js';
import { receiveWeightsUpload } from '../weights-job-upload.js';
import { WeightsOptions, WeightsReport } from '../schemas/weights.js';
import { ErrorReply } from '../schemas/common.js';
import { JobCreated, JobParams, JobView } from '../schemas/jobs.js';
import { ModelOptions, ModelReport } from '../schemas/models.js';
import { OCTET, SAFETENSORS } from '../tensor-source.js';
import { MULTIPART } from '../model-upload.js';

const errors = { 400: ErrorReply, 404: ErrorReply, 409: ErrorReply, 413: ErrorReply, 415: ErrorReply, 507: ErrorReply };
const HEARTBEAT_MS = 15_000;
/** Lifetime of a JOBS_RESULT_REDIRECT URL. */
const REDIRECT_EXPIRES_S = 900;

export const JOB_UPLOAD_PATHS = ['/v1/jobs'];
export const WEIGHTS_JOB_PATH = '/v1/weights/jobs';

/** The zip of a weights job's files: `model.safetensors.index.json` → `model.4bit.zip`. */
export function weightsArchiveName(filename: string, bits: number): string {
  const stem = (filename.split(/[\\/]/).pop() ?? '').replace(/(\.safetensors)?(\.index)?(\.json)?$/i, '').replace(/\.safetensors$/i, '').replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._-]+/, '') || 'model';
  return `${stem}.${bits}bit.zip`;
}

function links(id: string) {
  const self = `/v1/jobs/${id}`;
  return { self, result: `${self}/result`, report: `${self}/report`, events: `${self}/events` };
}

export function jobView(j: JobRecord) {
  return {
    id: j.id,
    kind: j.kind ?? ('model' as const),
    status: j.status,
    created_at: j.created_at,
    updated_at: j.updated_at,
    expires_at: j.expires_at,
    progress: j.progress,
    ...(j.summary ? { summary: j.summary } : {}),
    ...(j.error ? { error: j.error } : {}),
    links: links(j.id),
  };
}

function notReady(j: JobRecord): Error {
  if (j.status === 'failed') return new Errors.JobNotReady(`job ${j.id} failed (${j.error?.code}): ${j.error?.message}`);
  return new Errors.JobNotReady(`job ${j.id} is ${j.status} (${Math.floor(j.progress.fraction * 100)}% done); follow ${links(j.id).events}`);
}

/** The jobs API, in its own scope: uploads stream to disk instead of being buffered. */
export const jobRoutes: FastifyPluginAsync = async (app) => {
  const { jobsMaxBytes } = app.config;
  const runner = app.jobs;
  const store = runner.store;
  app.removeContentTypeParser(OCTET);
  // The body stays a stream; receiveJobUpload meters it into the store.
  app.addContentTypeParser(OCTET, (_request, payload, done) => done(null, payload));
  app.removeContentTypeParser(SAFETENSORS);
  app.addContentTypeParser(SAFETENSORS, (_request, payload, done) => done(null, payload));
  await app.register(fastifyMultipart, { limits: { fileSize: jobsMaxBytes, files: 1024, fields: 64, fieldSize: 1 << 20, parts: 1088 } });
  const r = app.withTypeProvider<ZodTypeProvider>();

  const find = async (id: string): Promise<JobRecord> => {
    const job = runner.isDeleting(id) ? undefined : await store.get(id);
    if (!job) throw new Errors.JobNotFound(`no job ${id}: it never existed, was deleted, or expired`);
    return job;
  };

  type Upload = Pick<JobRecord, 'filename' | 'options' | 'model' | 'external' | 'inputs' | 'bytes'> & Partial<Pick<JobRecord, 'kind' | 'calibration'>>;

  /** Reserves a job, streams its upload into the store (deleted again if refused), commits and queues it: 202. */
  const startJob = async (reply: FastifyReply, receive: (id: string, budget: Budget) => Promise<Upload>) => {
    const id = randomUUID();
    await store.create(id, app.config.jobsTtlS);
    const budget = await uploadBudget(store, jobsMaxBytes);
    let upload: Upload;
    try {
      upload = await receive(id, budget);
    } catch (err) {
      await store.delete(id).catch(() => undefined);
      budget.giveBack();
      throw err;
    }
    const now = new Date().toISOString();
    // The record keeps what the upload reserved (the store gives it back when the job is deleted).
    await store.commit({ id, status: 'queued', created_at: now, updated_at: now, expires_at: runner.expiry(), attempts: 0, progress: INITIAL_PROGRESS, ...upload });
    try {
      await runner.enqueue(id);
    } catch (err) {
      await store.delete(id).catch(() => undefined);
      throw err;
    }
    return reply.code(202).header('location', links(id).self).send({ id, status: 'queued' as const, links: links(id) });
  };

  r.post('/v1/jobs', {
    schema: {
      summary: 'Start quantizing a model in the background',
      description:
        'The same bodies and options as POST /v1/models/quantize. Uploads stream to the job store (bounded by JOBS_MAX_BYTES), so models with gigabytes of external data fit. ' +
        'Follow it with GET /v1/jobs/{id} or its server-sent events; the result is byte-identical to what the synchronous endpoint returns, or a zip of the .onnx and its external data when past 2 GiB.',
      tags: ['jobs'],
      consumes: [OCTET, MULTIPART],
      querystring: ModelOptions,
      response: { 202: JobCreated, ...errors },
    },
    handler: async (request, reply) => {
      // Option conflicts are the synchronous endpoint's 400, before the job exists.
      checkJobQuery(request);
      return startJob(reply, async (id, budget) => {
        const upload = await receiveJobUpload(request, store, id, budget);
        return {
          filename: upload.filename,
          options: upload.options,
          model: upload.model,
          external: upload.external,
          inputs: upload.inputs,
          calibration: upload.calibration,
          bytes: upload.bytes,
        };
      });
    },
  });

  r.post(WEIGHTS_JOB_PATH, {
    schema: {
      summary: 'Start quantizing a safetensors checkpoint (one file, or shards and their index) in the background',
      description:
        'The body: one .safetensors (application/x-safetensors or application/octet-stream, options in the query string), or multipart/form-data with a file part `shard` per .safetensors file ' +
        '(named by its file name), `index` (model.safetensors.index.json, required with more than one shard), optionally `config` (config.json, returned with quantization_config set) and option fields. ' +
        'Every header and the index are checked while the upload streams to the job store: a bad checkpoint is a 400 naming the shard and tensor. Follow the job at /v1/jobs/{id}; ' +
        'the result is the quantized .safetensors (one file, no config), or a zip of the index, the shards under their own names and config.json.',
      tags: ['jobs'],
      consumes: [SAFETENSORS, OCTET, MULTIPART],
      querystring: WeightsOptions,
      response: { 202: JobCreated, ...errors },
    },
    handler: async (request, reply) =>
      startJob(reply, async (id, budget) => {
        const upload = await receiveWeightsUpload(request, store, id, budget);
        return { kind: 'weights' as const, filename: upload.filename, options: upload.options, model: upload.model, external: upload.external, inputs: undefined, bytes: upload.bytes };
      }),
  });

  r.get('/v1/jobs/:id', {
    schema: { summary: "A job's status and progress", tags: ['jobs'], params: JobParams, response: { 200: JobView, ...errors } },
    handler: async (request) => jobView(await find(request.params.id)),
  });

  r.get('/v1/jobs/:id/result', {
    schema: {
      summary: 'The quantized model of a job that succeeded',
      description: 'The .onnx (application/octet-stream), or past 2 GiB a zip (application/zip) holding the .onnx and its external data file. X-Quantization-Summary as in the synchronous endpoint.',
      tags: ['jobs'],
      produces: [OCTET, 'application/zip'],
      params: JobParams,
      response: { 200: z.unknown().describe('The model file, or a zip of the model and its external data'), ...errors },
    },
    handler: async (request, reply) => {
      const job = await find(request.params.id);
      if (job.status !== 'succeeded' || !job.artifacts) throw notReady(job);
      const artifacts = job.artifacts;
      if (job.summary_header) reply.header('x-quantization-summary', job.summary_header);
      if (artifacts.length === 1) {
        const a = artifacts[0]!;
        if (app.config.scale.resultRedirect && store.artifactUrl) {
          // Straight from the object store: the replica does not carry the bytes.
          return reply.redirect(await store.artifactUrl(job.id, a.name, REDIRECT_EXPIRES_S), 302);
        }
        reply.header('content-disposition', `attachment; filename="${a.name}"`).header('content-length', a.size);
        return reply.type(OCTET).send(await store.openArtifact(job.id, a.name));
      }
      const zip = zipStream(artifacts.map((a) => ({ ...a, open: () => store.openArtifact(job.id, a.name) })));
      const name = job.kind === 'weights' ? weightsArchiveName(job.filename, job.options.bits) : artifacts[0]!.name.replace(/\.onnx$/, '') + '.zip';
      reply.header('content-disposition', `attachment; filename="${name}"`).header('content-length', zip.length);
      return reply.type('application/zip').send(zip.stream());
    },
  });

  r.get('/v1/jobs/:id/report', {
    schema: {
      summary: "A job's report (as POST /v1/models/quantize, or for a weights job POST /v1/weights/quantize, answers with Accept: application/json, without the file)",
      tags: ['jobs'],
      params: JobParams,
      response: { 200: z.union([ModelReport, WeightsReport]), ...errors },
    },
    handler: async (request) => {
      const job = await find(request.params.id);
      if (job.status !== 'succeeded') throw notReady(job);
      return (await store.readReport(job.id)) as never;
    },
  });

  r.get('/v1/jobs/:id/events', {
    schema: {
      summary: "A job's progress as server-sent events",
      description: "`event: progress` with the job (as GET /v1/jobs/{id}) whenever it changes, then one `event: end` when it has succeeded or failed; the stream then closes.",
      tags: ['jobs'],
      produces: ['text/event-stream'],
      params: JobParams,
      response: { 400: ErrorReply, 404: ErrorReply },
    },
    handler: async (request, reply) => {
      const job = await find(request.params.id);
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      const send = (event: string, j: JobRecord) => res.write(`event: ${event}\ndata: ${JSON.stringify(jobView(j))}\n\n`);
      const finished = (j: JobRecord) => j.status === 'succeeded' || j.status === 'failed';
      if (finished(job)) {
        send('end', job);
        res.end();
        return;
      }
      send('progress', job);
      const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
      const stop = () => {
        clearInterval(heartbeat);
        unsubscribe();
      };
      const unsubscribe = store.subscribe(job.id, (e: JobEvent) => {
        send(e.type, e.job);
        if (e.type === 'end') {
          stop();
          res.end();
        }
      });
      res.on('close', stop);
      // The job may have ended between reading it and subscribing.
      const now = await store.get(job.id);
      if (now && finished(now)) {
        stop();
        send('end', now);
        res.end();
      }
    },
  });

  r.delete('/v1/jobs/:id', {
    schema: { summary: 'Stop a job if it runs, and delete it with its files', tags: ['jobs'], params: JobParams, response: { 204: z.null().describe('Deleted'), ...errors } },
    handler: async (request, reply) => {
      await find(request.params.id);
      await runner.cancel(request.params.id);
      return reply.code(204).send(null);
    },
  });
};
