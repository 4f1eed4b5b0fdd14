import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { AnalyzeJsonBody, AnalyzeOptions, AnalyzeQuery, AnalyzeResponse } from '../schemas/analyze.js';
import { MatmulBody, MatmulResponse } from '../schemas/matmul.js';
import { ErrorReply } from '../schemas/common.js';
import { fromJson, mergeQueryOptions, splitTensorRequest, negotiate, NPY, NPZ, OCTET, SAFETENSORS } from '../tensor-source.js';
import { sendReply } from '../send.js';

const OPTION_KEYS = Object.keys(AnalyzeOptions.shape);
const errors = { 400: ErrorReply, 406: ErrorReply, 413: ErrorReply, 415: ErrorReply, 503: ErrorReply, 504: ErrorReply };

export const analyzeRoutes: FastifyPluginAsync = async (app) => {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.post('/v1/analyze', {
    config: { tensorBody: true },
    schema: {
      summary: 'Compare bit widths, schemes, granularities and calibrations on one tensor',
      description:
        'Quantizes the tensor with every combination asked for and reports the error and size of each. ' +
        'With `target_snr_db`, `recommended` is the smallest row that reaches it. Lists in the query string are comma-separated. ' +
        'An .npz body (`application/x-npz`) holds `tensor` and optionally `activations` ([n, in]) or `xtx` ([in, in]): then every row also reports `output_snr_db`, ' +
        'the recommendation is by it, and methods may include imatrix and gptq.',
      tags: ['analyze'],
      consumes: ['application/json', NPY, OCTET, NPZ, SAFETENSORS],
      body: AnalyzeJsonBody,
      querystring: AnalyzeQuery,
      response: { 200: AnalyzeResponse, ...errors },
    },
    preValidation: async (request) => mergeQueryOptions(request, OPTION_KEYS),
    handler: async (request, reply) => {
      negotiate(request, ['application/json']);
      const { input, transferList, options } = splitTensorRequest(request, request.body, request.query);
      return sendReply(request, reply, { op: 'analyze', input, options, limits: app.limits }, transferList);
    },
  });

  r.post('/v1/matmul', {
    schema: {
      summary: 'Quantized matrix multiplication with exact integer accumulation',
      description: 'C = A @ B computed from the quantized operands, compared with the float32 product.',
      tags: ['analyze'],
      body: MatmulBody,
      response: { 200: MatmulResponse, ...errors },
    },
    handler: async (request, reply) => {
      negotiate(request, ['application/json']);
      const { a, b, ...options } = request.body;
      return sendReply(request, reply, { op: 'matmul', a: fromJson(a), b: fromJson(b), options, limits: app.limits });
    },
  });
};
