import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { Errors, isQuantError } from '../errors.js';
import { logFact } from './request-log.js';

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

/** Which setting a route's body limit comes from: model routes set MODEL_BODY_LIMIT as theirs. */
function bodyLimitName(request: FastifyRequest, limit: number): string {
  const { bodyLimit, modelBodyLimit } = request.server.config;
  return limit === modelBodyLimit && limit !== bodyLimit ? 'MODEL_BODY_LIMIT' : 'BODY_LIMIT';
}

/** Fastify's own 4xx errors, mapped onto our codes with messages a person can act on. */
function fromFastify(err: FastifyError, request: FastifyRequest): Error | undefined {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE': {
      const limit = request.routeOptions.bodyLimit ?? request.server.initialConfig.bodyLimit ?? 0;
      return new Errors.BodyTooLarge(`request body exceeds the limit of ${limit} bytes (${bodyLimitName(request, limit)})`);
    }
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
    case 'FST_ERR_BAD_URL':
      return new Errors.BadRequest(`the URL is malformed (bad percent-encoding?): ${err.message}`);
  }
  if (err instanceof SyntaxError || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return new Errors.BadJson(`the body is not valid JSON: ${err.message}`);
  }
  return undefined;
}

const HANG_UPS = new Set(['ECONNRESET', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE']);

/** The client hung up mid-upload: the body stream failed, and nobody is left to answer. */
function clientGone(err: FastifyError, request: FastifyRequest): boolean {
  return HANG_UPS.has(err.code) || (request.raw.destroyed && typeof err.code === 'string' && err.code.startsWith('FST_ERR_CTP_'));
}

export function errorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  const send = (statusCode: number, code: string, message: string) => {
    logFact(request, { code });
    return reply.code(statusCode).send(body(statusCode, code, message));
  };
  if (err.validation) return send(400, 'QUANT_ERR_VALIDATION', describeValidation(err));
  if (clientGone(err, request) || (isQuantError(err) && err.code === 'QUANT_ERR_ABORTED')) {
    // The socket is gone, so fastify will not log the request's completion: this line does.
    request.log.info({ code: 'QUANT_ERR_ABORTED', route: request.routeOptions.url, reason: err.message }, 'client went away before its answer');
    return send(499, 'QUANT_ERR_ABORTED', 'the client went away before its answer');
  }
  // Fastify closes the connection after any body-parsing error, in case the client is still
  // sending. When the body was read to its end (a JSON syntax error, say) the connection is
  // fine, and keeping it saves the client a reconnect.
  if (request.raw.complete && reply.getHeader('connection') === 'close') reply.removeHeader('connection');
  const known = isQuantError(err) ? err : fromFastify(err, request);
  if (known && isQuantError(known)) {
    const retryAfter = (known as { retryAfter?: number }).retryAfter;
    if (retryAfter) reply.header('retry-after', String(retryAfter));
    if (known.statusCode >= 500) request.log.warn({ code: known.code }, known.message);
    return send(known.statusCode, known.code, known.message);
  }
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
    return send(err.statusCode, 'QUANT_ERR_BAD_REQUEST', err.message);
  }
  // Anything else is ours: log it whole with the request id, tell the client nothing more.
  request.log.error({ err }, 'internal error');
  return send(500, 'QUANT_ERR_INTERNAL', `internal error; it has been logged with request id ${request.id}`);
}

const CLIENT_ERRORS: Record<string, [number, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'the request headers are larger than the server accepts'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'the request took too long to arrive'],
  ERR_HTTP_HEADERS_TIMEOUT: [408, 'the request headers took too long to arrive'],
};

/**
 * Requests too malformed for HTTP parsing never reach fastify's error handler; answer them
 * in the same JSON shape as every other error, then drop the connection (its parser state
 * is unusable).
 */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, message] = CLIENT_ERRORS[err.code ?? ''] ?? [400, 'the request is not valid HTTP/1.1'];
  const payload = JSON.stringify(body(status, 'QUANT_ERR_BAD_REQUEST', message));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(payload)}\r\nConnection: close\r\n\r\n${payload}`,
    );
  }
  socket.destroy();
}
