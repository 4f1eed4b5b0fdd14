import type { OpenAPIV3_1 } from 'openapi-types';

// Model uploads are read by hand (a raw body or multipart parts, streamed), so the routes
// declare no body schema; their request bodies are described here instead.

const OPTIONS_NOTE = 'Options as in the query parameters (multipart: fields of the same names).';

export const MODEL_REQUEST_BODY: OpenAPIV3_1.RequestBodyObject = {
  required: true,
  content: {
    'application/octet-stream': { schema: { type: 'string', format: 'binary', description: `The .onnx file. ${OPTIONS_NOTE}` } },
    'multipart/form-data': {
      schema: {
        type: 'object',
        required: ['model'],
        properties: {
          model: { type: 'string', format: 'binary', description: 'The .onnx file' },
          inputs: { type: 'string', format: 'binary', description: 'Optional .npz of float arrays named like the model inputs, for validation' },
        },
        additionalProperties: {
          description: `An option field (bits, scheme, ...), or an external data file whose part name is its location. ${OPTIONS_NOTE}`,
        },
      },
    },
  },
};

/** The 200 reply's non-JSON forms: @fastify/swagger gives every produced type the JSON schema. */
const BINARY_REPLIES: Record<string, OpenAPIV3_1.MediaTypeObject> = {
  'application/octet-stream': { schema: { type: 'string', format: 'binary', description: 'The quantized model (the default reply); X-Quantization-Summary holds a compact JSON summary' } },
  'multipart/mixed': { schema: { type: 'string', format: 'binary', description: 'Two parts: the JSON report (as with Accept: application/json, without model), then the model' } },
};

export function modelRequestBodies<T>(doc: T, paths: readonly string[]): T {
  const all = (doc as OpenAPIV3_1.Document).paths ?? {};
  for (const path of paths) {
    const op = all[path]?.post as OpenAPIV3_1.OperationObject | undefined;
    if (!op) continue;
    op.requestBody = MODEL_REQUEST_BODY;
    const ok = op.responses?.['200'] as OpenAPIV3_1.ResponseObject | undefined;
    for (const [type, media] of Object.entries(BINARY_REPLIES)) if (ok?.content?.[type]) ok.content[type] = media;
  }
  return doc;
}

export const WEIGHTS_JOB_REQUEST_BODY: OpenAPIV3_1.RequestBodyObject = {
  required: true,
  content: {
    'application/x-safetensors': { schema: { type: 'string', format: 'binary', description: `One .safetensors file. ${OPTIONS_NOTE}` } },
    'application/octet-stream': { schema: { type: 'string', format: 'binary', description: `One .safetensors file. ${OPTIONS_NOTE}` } },
    'multipart/form-data': {
      schema: {
        type: 'object',
        required: ['shard'],
        properties: {
          shard: { type: 'array', items: { type: 'string', format: 'binary' }, description: 'One part per .safetensors shard; the part\'s filename is the shard\'s name as the index gives it' },
          index: { type: 'string', format: 'binary', description: 'model.safetensors.index.json (required with more than one shard)' },
          config: { type: 'string', format: 'binary', description: "Optional config.json: the result holds it with quantization_config set" },
        },
        additionalProperties: { description: `An option field (bits, scheme, ...). ${OPTIONS_NOTE}` },
      },
    },
  },
};

/** The weights job's request body, read by hand like the model uploads. */
export function weightsJobRequestBody<T>(doc: T, path: string): T {
  const op = (doc as OpenAPIV3_1.Document).paths?.[path]?.post as OpenAPIV3_1.OperationObject | undefined;
  if (op) op.requestBody = WEIGHTS_JOB_REQUEST_BODY;
  return doc;
}
