import fastifyMultipart from '@fastify/multipart';
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { readModelUpload, uploadTransferList, MULTIPART } from '../model-upload.js';
import { ErrorReply } from '../schemas/common.js';
import { ModelJsonResponse, ModelOptions } from '../schemas/models.js';
import { sendModelReply } from '../model-send.js';
import { negotiate, OCTET } from '../tensor-source.js';

const errors = { 400: ErrorReply, 406: ErrorReply, 413: ErrorReply, 415: ErrorReply, 503: ErrorReply, 504: ErrorReply };
export const MULTIPART_MIXED = 'multipart/mixed';
/** Routes whose body is a model upload (their OpenAPI request body is described by hand). */
export const MODEL_UPLOAD_PATHS = ['/v1/models/quantize'];
const REPLY_TYPES = [OCTET, 'application/json', MULTIPART_MIXED] as const;

/** Parts a model upload may have: the model, the inputs, and external data files. */
const MAX_FILE_PARTS = 1024;

/**
 * Model routes, in their own scope: multipart parsing and the larger body limit apply to
 * them alone.
 */
export const modelRoutes: FastifyPluginAsync = async (app) => {
  const limit = app.config.modelBodyLimit;
  await app.register(fastifyMultipart, {
    limits: { fileSize: limit, files: MAX_FILE_PARTS, fields: 64, fieldSize: 1 << 20, parts: MAX_FILE_PARTS + 64 },
  });
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.post('/v1/models/quantize', {
    bodyLimit: limit,
    schema: {
      summary: 'Quantize the weights of an ONNX model',
      description:
        'Body: the .onnx as `application/octet-stream` (options in the query string), or `multipart/form-data` with a file part `model`, ' +
        'option fields of the same names, an optional `inputs` .npz of float arrays named like the model inputs, and one file part per external data file, named by its location. ' +
        'Reply: the quantized model (`application/octet-stream`, summary in `X-Quantization-Summary`); `Accept: application/json` for the report with the model in base64; ' +
        '`Accept: multipart/mixed` for the report and the model as two parts.',
      tags: ['models'],
      consumes: [OCTET, MULTIPART],
      produces: [...REPLY_TYPES],
      querystring: ModelOptions,
      response: {
        200: ModelJsonResponse.describe('With Accept: application/json. The default reply is the model itself (application/octet-stream).'),
        ...errors,
      },
    },
    handler: async (request, reply) => {
      const accept = negotiate(request, REPLY_TYPES);
      const upload = await readModelUpload(request, limit);
      const task = {
        op: 'quantizeModel' as const,
        model: upload.model,
        filename: upload.filename,
        external: upload.external,
        inputs: upload.inputs,
        calibration: upload.calibration,
        options: upload.options,
        accept: accept === OCTET ? ('onnx' as const) : accept === MULTIPART_MIXED ? ('multipart' as const) : ('json' as const),
        limits: app.limits,
      };
      return sendModelReply(request, reply, task, uploadTransferList(upload));
    },
  });
};
