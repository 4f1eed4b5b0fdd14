import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { Errors } from '../../errors.js';
import { sendModelReply } from '../model-send.js';
import { ownedBytes } from '../tensor-source.js';
import { ErrorReply } from '../schemas/common.js';
import { WeightsOptions } from '../schemas/weights.js';
import { negotiate, OCTET, SAFETENSORS } from '../tensor-source.js';

const errors = { 400: ErrorReply, 406: ErrorReply, 413: ErrorReply, 415: ErrorReply, 503: ErrorReply, 504: ErrorReply };

/** safetensors checkpoints → compressed-tensors pack-quantized (README, safetensors checkpoints). */
export const weightsRoutes: FastifyPluginAsync = async (app) => {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.post('/v1/weights/quantize', {
    bodyLimit: app.config.modelBodyLimit,
    schema: {
      summary: 'Quantize a .safetensors checkpoint into the compressed-tensors pack-quantized layout',
      description:
        'Body: the .safetensors file (`application/x-safetensors` or `application/octet-stream`), options in the query string. ' +
        'Reply: the quantized .safetensors (summary in `X-Quantization-Summary`), or with `Accept: application/json` the report and the file in base64.',
      tags: ['models'],
      consumes: [SAFETENSORS, OCTET],
      produces: [OCTET, 'application/json'],
      querystring: WeightsOptions,
      response: errors,
    },
    handler: async (request, reply) => {
      const accept = negotiate(request, [OCTET, 'application/json', SAFETENSORS]);
      if (!Buffer.isBuffer(request.body) || request.body.length === 0) throw new Errors.Validation('send the .safetensors file as the request body');
      const file = ownedBytes(request.body);
      const task = {
        op: 'quantizeWeights' as const,
        file,
        filename: 'model.safetensors',
        options: request.query,
        accept: accept === 'application/json' ? ('json' as const) : ('safetensors' as const),
        limits: app.limits,
      };
      return sendModelReply(request, reply, task, [file.buffer as ArrayBuffer]);
    },
  });
};
