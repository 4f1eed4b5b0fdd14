import type { FastifyRequest } from 'fastify';
import type { FloatDType } from '../core/dtypes.js';
import { arenaOf } from '../core/kernels/runtime.js';
import { Errors } from '../errors.js';
import type { TensorSource } from '../pool/messages.js';
import type { TensorBody } from './schemas/common.js';

export const NPY = 'application/x-npy';
export const OCTET = 'application/octet-stream';
export const NPZ = 'application/x-npz';

/** The body as bytes this thread may give away: a Buffer that owns its whole ArrayBuffer, else a copy. */
export function ownedBytes(buf: Buffer): Uint8Array {
  if (buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength && buf.buffer instanceof ArrayBuffer) {
    return new Uint8Array(buf.buffer);
  }
  return new Uint8Array(buf);
}

export function fromJson(t: TensorBody): TensorSource {
  if (t.b64 !== undefined) return { kind: 'b64', b64: t.b64, dtype: t.dtype ?? 'float32', shape: t.shape ?? [] };
  return { kind: 'json', data: t.data ?? [], shape: t.shape };
}

/** A binary body (NPY or raw) → a tensor source plus the buffer to transfer to the worker. */
export function fromBinary(
  request: FastifyRequest,
  body: Buffer,
  query: { shape?: number[] | undefined; dtype: FloatDType },
): { source: TensorSource; transferList: ArrayBuffer[] } {
  // A body in a kernel arena is shared with the worker, not transferred (see tensor-body.ts).
  const arena = arenaOf(body);
  const bytes = arena ? new Uint8Array(body.buffer, body.byteOffset, body.byteLength) : ownedBytes(body);
  const transferList = arena ? [] : [bytes.buffer as ArrayBuffer];
  if (request.headers['content-type']?.startsWith(NPY)) {
    return { source: { kind: 'npy', bytes, arena }, transferList };
  }
  if (request.headers['content-type']?.startsWith(NPZ)) {
    return { source: { kind: 'npz', bytes, arena }, transferList };
  }
  if (!query.shape) {
    throw new Errors.Validation('querystring/shape is required with application/octet-stream, e.g. ?shape=256,512');
  }
  return { source: { kind: 'raw', bytes, dtype: query.dtype, shape: query.shape, arena }, transferList };
}

/** JSON bodies may also take options from the query string, where the body leaves them out. */
export function mergeQueryOptions(request: FastifyRequest, keys: readonly string[]): void {
  const body = request.body;
  if (!body || typeof body !== 'object' || Buffer.isBuffer(body) || Array.isArray(body)) return;
  const query = request.query as Record<string, unknown>;
  for (const key of keys) {
    if (query[key] !== undefined && (body as Record<string, unknown>)[key] === undefined) {
      (body as Record<string, unknown>)[key] = query[key];
    }
  }
}

/**
 * Picks the reply type from the Accept header among those a route offers (the first is the
 * default); an Accept header that allows none of them is a 406.
 */
export function negotiate<T extends string>(request: FastifyRequest, offered: readonly [T, ...T[]]): T {
  const accept = request.headers.accept;
  if (!accept) return offered[0];
  const ranges = accept.split(',').map((part) => part.split(';')[0]!.trim().toLowerCase());
  for (const range of ranges) {
    const hit = offered.find((type) => type === range);
    if (hit) return hit;
  }
  if (ranges.some((r) => r === '*/*' || r === 'application/*')) return offered[0];
  throw new Errors.NotAcceptable(`Accept: ${accept} allows none of the types this route returns: ${offered.join(', ')}`);
}

/**
 * A tensor route's request → the tensor source, the buffers to transfer and the options:
 * from the JSON body, or from the query string when the body is NPY or raw bytes.
 */
export function splitTensorRequest<B extends { tensor: TensorBody }, Q extends { shape?: number[] | undefined; dtype: FloatDType }>(
  request: FastifyRequest,
  body: B,
  query: Q,
): { input: TensorSource; transferList: ArrayBuffer[]; options: Omit<B, 'tensor'> | Omit<Q, 'shape' | 'dtype'> } {
  if (Buffer.isBuffer(body)) {
    const { source, transferList } = fromBinary(request, body, query);
    const { shape: _shape, dtype: _dtype, ...options } = query;
    return { input: source, transferList, options };
  }
  const { tensor, ...options } = body;
  return { input: fromJson(tensor), transferList: [], options };
}
