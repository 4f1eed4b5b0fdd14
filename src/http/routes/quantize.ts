import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { BinaryQuery, DequantizeBody, DequantizeResponse, QuantizeJsonBody, QuantizeOptions, QuantizeResponse } from '../schemas/quantize.js';
import { ErrorReply } from '../schemas/common.js';
import { mergeQueryOptions, splitTensorRequest, NPY, NPZ, OCTET, SAFETENSORS, negotiate } from '../tensor-source.js';
import { sendReply } from '../send.js';

const OPTION_KEYS = Object.keys(QuantizeOptions.shape);
const errors = { 400: ErrorReply, 406: ErrorReply, 413: ErrorReply, 415: ErrorReply, 503: ErrorReply, 504: ErrorReply };

export const quantizeRoutes: FastifyPluginAsync = async (app) => {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.post('/v1/quantize', {
    config: { tensorBody: true },
    schema: {
      summary: 'Quantize a tensor',
      description:
        'Body: JSON `{tensor, ...options}`, a NumPy .npy file (`application/x-npy`) or raw little-endian values (`application/octet-stream` with `?shape=`). ' +
        'Options go in the JSON body or the query string. `Accept: application/x-npz` returns an .npz with quantized, scale, zero_point and report.json.',
      tags: ['quantize'],
      consumes: ['application/json', NPY, OCTET, SAFETENSORS],
      produces: ['application/json', NPZ],
      body: QuantizeJsonBody,
      querystring: BinaryQuery,
      response: { 200: QuantizeResponse, ...errors },
    },
    preValidation: async (request) => mergeQueryOptions(request, OPTION_KEYS),
    handler: async (request, reply) => {
      const { input, transferList, options } = splitTensorRequest(request, request.body, request.query);
      const accept = negotiate(request, ['application/json', NPZ]) === NPZ ? 'npz' : 'json';
      return sendReply(request, reply, { op: 'quantize', input, options, accept, limits: app.limits }, transferList);
    },
  });

  r.post('/v1/dequantize', {
    schema: {
      summary: 'Dequantize what /v1/quantize returned',
      description: 'Post the /v1/quantize JSON response as is. `Accept: application/x-npy` returns an .npy of float32.',
      tags: ['quantize'],
      produces: ['application/json', NPY],
      body: DequantizeBody,
      response: { 200: DequantizeResponse, ...errors },
    },
    handler: async (request, reply) => {
      const b = request.body;
      const payload = {
        shape: b.shape,
        bits: b.bits,
        scheme: b.scheme,
        granularity: b.granularity,
        axis: b.axis,
        group_size: b.group_size,
        quantized: { dtype: b.quantized.dtype, data: b.quantized.data },
        scale: b.scale,
        zero_point: b.zero_point,
      };
      const accept = negotiate(request, ['application/json', NPY]) === NPY ? 'npy' : 'json';
      return sendReply(request, reply, { op: 'dequantize', payload, accept, limits: app.limits });
    },
  });
};
