import type { FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import { Errors } from '../errors.js';

// NOTE (model quantization engineer): this file was overwritten by mistake and is
// reconstructed from its use in binary-bodies.ts and test/http/body-limit.test.ts; its
// original author should check it against their version.

/** Which setting a route's body limit comes from: model routes set MODEL_BODY_LIMIT as theirs. */
function limitName(request: FastifyRequest, limit: number): string {
  const { bodyLimit, modelBodyLimit } = request.server.config;
  return limit === modelBodyLimit && limit !== bodyLimit ? 'MODEL_BODY_LIMIT' : 'BODY_LIMIT';
}

/**
 * A parser for binary bodies within the route's limit (else `fallback`): a Content-Length
 * over it is refused before a byte is read, a chunked body as soon as it passes it. With a
 * Content-Length the buffer is allocated once and filled as chunks arrive, so a body of S
 * bytes costs S rather than the 2 S of collecting chunks and concatenating them.
 */
export function readBody(fallback: number) {
  return async (request: FastifyRequest, payload: Readable): Promise<Buffer> => {
    const limit = request.routeOptions.bodyLimit ?? fallback;
    const tooBig = () => new Errors.BodyTooLarge(`request body exceeds the limit of ${limit} bytes (${limitName(request, limit)})`);
    const header = request.headers['content-length'];
    const declared = typeof header === 'string' && /^\d+$/.test(header) ? Number(header) : undefined;
    if (declared !== undefined && declared > limit) throw tooBig();
    if (declared !== undefined) {
      const out = Buffer.allocUnsafeSlow(declared);
      let at = 0;
      for await (const chunk of payload as AsyncIterable<Buffer>) {
        if (at + chunk.length > declared) throw new Errors.Validation('the body is longer than its Content-Length');
        chunk.copy(out, at);
        at += chunk.length;
      }
      if (at !== declared) throw new Errors.Validation(`the body ended after ${at} of the ${declared} bytes its Content-Length declares`);
      return out;
    }
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of payload as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > limit) throw tooBig();
      chunks.push(chunk);
    }
    return Buffer.concat(chunks, total);
  };
}
