import type { FastifyRequest } from 'fastify';
import { errorCodes } from 'fastify';
import { tensorBytes } from '../core/kernels/arenas.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * The route's binary body is one tensor the kernels will read: a big one is read into a
     * kernel arena. Other binary bodies (models) are parsed by code that expects an
     * ordinary buffer it can transfer.
     */
    tensorBody?: boolean;
  }
}

type Done = (err: Error | null, body?: Buffer) => void;
type Payload = NodeJS.ReadableStream & { receivedEncodedLength?: number };

/**
 * A buffer for a body of known length. A big one is read straight into a kernel arena (a
 * shared WebAssembly memory, core/kernels/runtime.ts): the worker's kernels then read the
 * tensor where it is instead of staging it through their own memory pass by pass, and the
 * body is never copied again. Where no arena can be had, a plain buffer.
 */
function sizedBody(bytes: number, tensor: boolean): Buffer {
  if (!tensor) return Buffer.allocUnsafeSlow(bytes);
  const u8 = tensorBytes(bytes);
  return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

/**
 * The content-type parser for binary tensor bodies: the body read into one Buffer, as
 * fastify's `parseAs: 'buffer'` does (same limits, same errors), but copied chunk by chunk
 * into a buffer sized from Content-Length instead of collected and joined at the end. For a
 * 64 MiB upload the join was one ~50 ms stretch of copying and first-touch page faults on the
 * event loop (every other request waited), and the chunks and the joined copy were alive
 * together (twice the body in memory). The Buffer owns its whole ArrayBuffer (or is an arena,
 * shared), so it reaches the worker without a copy.
 */
export function tensorBodyParser(defaultLimit: number) {
  return (request: FastifyRequest, payload: Payload, done: Done): void => {
    const limit = request.routeOptions.bodyLimit ?? defaultLimit;
    const declared = Number(request.headers['content-length']);
    if (declared > limit) {
      done(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE());
      return;
    }
    const sized = Number.isSafeInteger(declared) && declared >= 0;
    // Without a length (chunked upload) the buffer doubles as it fills; it is cut to size at the end.
    let body = sized ? sizedBody(declared, request.routeOptions.config.tensorBody === true) : Buffer.allocUnsafeSlow(64 * 1024);
    let received = 0;
    const finish = (err: Error | null, value?: Buffer) => {
      payload.removeListener('data', onData);
      payload.removeListener('end', onEnd);
      payload.removeListener('error', onEnd);
      done(err, value);
    };
    function onData(chunk: Buffer | string): void {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      if (received + bytes.length > limit || (payload.receivedEncodedLength ?? 0) > limit) {
        finish(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE());
        return;
      }
      if (received + bytes.length > body.length) {
        if (sized) {
          // More than Content-Length said: the error fastify gives for it at the end.
          finish(new errorCodes.FST_ERR_CTP_INVALID_CONTENT_LENGTH());
          return;
        }
        const grown = Buffer.allocUnsafeSlow(Math.min(limit, Math.max(2 * body.length, received + bytes.length)));
        body.copy(grown, 0, 0, received);
        body = grown;
      }
      // Buffer#fill with a buffer is one memcpy in C++. Uint8Array#set and Buffer#copy (which
      // is set in Node 20) copy into shared memory (an arena) with V8's relaxed_memmove, word
      // by word: a third of the event loop's CPU per 4 MiB request in `perf` (bench/README.md,
      // "HTTP: the event loop, round two").
      if (bytes.length > 0) body.fill(bytes, received, received + bytes.length);
      received += bytes.length;
    }
    function onEnd(err?: Error & { statusCode?: number }): void {
      if (err) {
        if (!(typeof err.statusCode === 'number' && err.statusCode >= 400)) err.statusCode = 400;
        finish(err);
        return;
      }
      if (sized && (payload.receivedEncodedLength || received) !== declared) {
        finish(new errorCodes.FST_ERR_CTP_INVALID_CONTENT_LENGTH());
        return;
      }
      if (received === body.length) {
        finish(null, body);
        return;
      }
      // Only a chunked upload ends short of its buffer: copy it into one of its own size.
      const exact = Buffer.allocUnsafeSlow(received);
      body.copy(exact, 0, 0, received);
      finish(null, exact);
    }
    payload.on('data', onData);
    payload.on('end', onEnd);
    payload.on('error', onEnd);
    payload.resume();
  };
}
