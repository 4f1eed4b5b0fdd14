import type { OpenAPIV3_1 } from 'openapi-types';

const BINARY_TYPES: Record<string, string> = {
  'application/x-npy': 'A NumPy .npy file (versions 1-3; float16/32/64, either byte order, C or Fortran order)',
  'application/octet-stream': 'Raw little-endian values; give ?shape= and ?dtype=',
  'application/x-npz': 'A NumPy .npz (numpy.savez): /v1/quantize takes the members tensor and optionally scale and zero_point; /v1/dequantize the .npz that /v1/quantize returned (quantized, scale, zero_point, report.json)',
};

/**
 * @fastify/swagger gives every consumed type the JSON body schema; the NPY, NPZ and raw types are
 * bytes, so their request bodies are described as binary instead.
 */
export function binaryRequestBodies<T>(doc: T): T {
  const paths = (doc as OpenAPIV3_1.Document).paths ?? {};
  for (const item of Object.values(paths)) {
    const op = item?.post;
    const content = (op?.requestBody as OpenAPIV3_1.RequestBodyObject | undefined)?.content;
    if (!content) continue;
    for (const [type, description] of Object.entries(BINARY_TYPES)) {
      if (content[type]) content[type] = { schema: { type: 'string', format: 'binary', description } };
    }
  }
  return doc;
}

/** The committed document's exact text. */
export function openapiText(doc: unknown): string {
  return JSON.stringify(doc, null, 2) + '\n';
}
