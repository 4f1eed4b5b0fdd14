import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { STATUS_CODES } from 'node:http';
import { Errors, isQuantError } from '../errors.js';

interface ValidationIssue {
  instancePath?: string;
  message?: string;
}

function body(statusCode: number, code: string, message: string) {
  return { statusCode, error: STATUS_CODES[statusCode] ?? 'Error', code, message };
}

function describeValidation(err: FastifyError): string {
  const part = err.validationContext ?? 'body';
  const issues = (err.validation ?? []) as ValidationIssue[];
  return issues
    .slice(0, 5)
    .map((i) => `${part}${i.instancePath && i.instancePath !== '/' ? i.instancePath : ''}: ${i.message ?? 'is invalid'}`)
    .join('; ');
}

/** Fastify's own 4xx errors, mapped onto our codes with messages a person can act on. */
function fromFastify(err: FastifyError, request: FastifyRequest): Error | undefined {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new Errors.BodyTooLarge(`request body exceeds the limit of ${request.routeOptions.bodyLimit ?? request.server.initialConfig.bodyLimit} bytes (BODY_LIMIT)`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new Errors.UnsupportedMediaType(
        `Content-Type ${request.headers['content-type'] ?? '(none)'} is not supported here; use application/json, application/x-npy or application/octet-stream`,
      );
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new Errors.BadJson('the JSON body is empty');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new Errors.Validation('Content-Length does not match the body that was sent');
    case 'FST_ERR_CTP_EMPTY_TYPE':
    case 'FST_ERR_CTP_INVALID_TYPE':
      return new Errors.UnsupportedMediaType('the request has no usable Content-Type');
  }
  if (err instanceof SyntaxError || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return new Errors.BadJson(`the body is not valid JSON: ${err.message}`);
  }
  return undefined;
}

export function errorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  if (err.validation) {
    return reply.code(400).send(body(400, 'QUANT_ERR_VALIDATION', describeValidation(err)));
  }
  const known = isQuantError(err) ? err : fromFastify(err, request);
  if (known && isQuantError(known)) {
    const retryAfter = (known as { retryAfter?: number }).retryAfter;
    if (retryAfter) reply.header('retry-after', String(retryAfter));
    if (known.statusCode >= 500) request.log.warn({ code: known.code }, known.message);
    return reply.code(known.statusCode).send(body(known.statusCode, known.code, known.message));
  }
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
    return reply.code(err.statusCode).send(body(err.statusCode, err.code ?? 'QUANT_ERR_VALIDATION', err.message));
  }
  // Anything else is ours: log it whole with the request id, tell the client nothing more.
  request.log.error({ err }, 'internal error');
  return reply.code(500).send(body(500, 'QUANT_ERR_INTERNAL', 'internal error; it has been logged with request id ' + request.id));
}
