// The slice of an OpenAPI document this transform touches (openapi-types' 3.0/3.1 unions
// do not compose, and nothing else here needs them).
interface Operation {
  security?: Array<Record<string, string[]>>;
  responses?: Record<string, { description?: string; content?: unknown }>;
}
interface Doc {
  paths?: Record<string, Record<string, Operation> | undefined>;
  components?: { securitySchemes?: Record<string, unknown> };
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch'];

/**
 * Declares the bearer scheme and puts every /v1 operation under it, with the 401 (and the
 * 429 of the rate limiter) it can answer. The probes and docs stay unauthenticated.
 */
export function bearerSecurity<T>(doc: T): T {
  const d = doc as Doc;
  d.components = {
    ...d.components,
    securitySchemes: {
      ...d.components?.securitySchemes,
      bearerAuth: {
        type: 'http',
        scheme: 'bearer',
        description: 'An API key, required when the server is started with API_KEYS: `Authorization: Bearer <key>`',
      },
    },
  };
  for (const [path, item] of Object.entries(d.paths ?? {})) {
    if (!path.startsWith('/v1/') || !item) continue;
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      op.security = [{ bearerAuth: [] }];
      const content = op.responses?.['400']?.content;
      if (!content) continue;
      op.responses = {
        ...op.responses,
        401: { description: 'Missing or invalid API key (only when the server sets API_KEYS)', content },
        429: { description: 'Over RATE_LIMIT_MAX requests per minute; see Retry-After', content },
      };
    }
  }
  return doc;
}
