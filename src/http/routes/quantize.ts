import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { BinaryQuery, DequantizeBody, DequantizeQuery, DequantizeResponse, QuantizeJsonBody, QuantizeOptions, QuantizeResponse } from '../schemas/quantize.js';
import { ErrorReply } from '../schemas/common.js';
import { mergeQueryOptions, ownedBytes, splitTensorRequest, NPY, NPZ, OCTET, SAFETENSORS, negotiate } from '../tensor-source.js';
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
        'Body: JSON `{tensor, ...options}`, a NumPy .npy file (`application/x-npy`), raw little-endian values (`application/octet-stream` with `?shape=`) ' +
        'or an .npz (`application/x-npz`) with the member `tensor` and optionally `scale` and `zero_point`, or, for method=imatrix|gptq, ' +
        '`activations` ([n, in]: calibration rows of the layer input) or `xtx` ([in, in] = Σ xᵀx) beside a 2-D `tensor`. ' +
        'Options go in the JSON body or the query string. With `scale` (and `zero_point`) there is no calibration: ONNX QuantizeLinear with exactly those. ' +
        '`Accept: application/x-npz` returns an .npz with quantized, scale, zero_point and report.json.',
      tags: ['quantize'],
      consumes: ['application/json', NPY, OCTET, NPZ, SAFETENSORS],
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
      description:
        'ONNX DequantizeLinear, (q - zero_point) * scale in float32. Post the /v1/quantize JSON response as is, or integers (`quantized.values`) with scale and zero_point; ' +
        'or the .npz /v1/quantize returned (`application/x-npz`: quantized, scale, zero_point, report.json; options in the query string override report.json). ' +
        '`Accept: application/x-npy` returns an .npy of float32.',
      tags: ['quantize'],
      consumes: ['application/json', NPZ],
      produces: ['application/json', NPY],
      body: DequantizeBody,
      querystring: DequantizeQuery,
      response: { 200: DequantizeResponse, ...errors },
    },
    handler: async (request, reply) => {
      const accept = negotiate(request, ['application/json', NPY]) === NPY ? 'npy' : 'json';
      if (Buffer.isBuffer(request.body)) {
        const bytes = ownedBytes(request.body);
        const npz = { bytes, query: request.query };
        return sendReply(request, reply, { op: 'dequantize', npz, accept, limits: app.limits }, [bytes.buffer as ArrayBuffer]);
      }
      const b = request.body;
      const payload = {
        shape: b.shape,
        bits: b.bits,
        scheme: b.scheme,
        granularity: b.granularity,
        axis: b.axis ?? null,
        group_size: b.group_size ?? null,
        quantized: { dtype: b.quantized.dtype, data: b.quantized.data, values: b.quantized.values },
        scale: b.scale,
        zero_point: b.zero_point,
      };
      return sendReply(request, reply, { op: 'dequantize', payload, accept, limits: app.limits });
    },
  });
};
