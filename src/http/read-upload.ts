import type { Readable } from 'node:stream';
import { Errors } from '../errors.js';

/**
 * Reads a stream into one buffer. With a size bound known up front (Content-Length) the
 * buffer is allocated once and filled as chunks arrive, so a model of S bytes costs S, not
 * the 2 S of collecting chunks and concatenating them. Pages of the bound that are never
 * written (other multipart parts) are never touched, so they cost no memory either.
 */
export async function readAll(stream: Readable, bound: number | undefined, limit: number, what: string): Promise<Buffer> {
  const tooBig = () => new Errors.BodyTooLarge(`${what} exceeds the limit of ${limit} bytes (MODEL_BODY_LIMIT)`);
  if (bound !== undefined && bound > 0 && bound <= limit) {
    const out = Buffer.allocUnsafeSlow(bound);
    let at = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (at + chunk.length > bound) throw new Errors.Validation(`${what} is longer than Content-Length says`);
      chunk.copy(out, at);
      at += chunk.length;
    }
    return out.subarray(0, at);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) throw tooBig();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

/** Content-Length as a number, when the request has a valid one. */
export function contentLength(headers: Record<string, string | string[] | undefined>): number | undefined {
  const v = headers['content-length'];
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
  return Number.isSafeInteger(n) ? n : undefined;
}
