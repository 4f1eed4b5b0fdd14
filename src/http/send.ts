import type { FastifyReply, FastifyRequest } from 'fastify';
import { Errors, isQuantError } from '../errors.js';
import type { Task } from '../pool/messages.js';
import { markFinished } from './arena-pool.js';
import { logFact } from './request-log.js';

const FILENAMES: Record<string, string> = {
  'application/x-npz': 'quantized.npz',
  'application/x-npy': 'dequantized.npy',
};

/**
 * Runs a task in the pool and sends the bytes the worker encoded, as they are: the worker
 * already serialised the reply (its shape is the route's response schema, checked by tests).
 */
export async function sendReply(request: FastifyRequest, reply: FastifyReply, task: Task, transferList: ArrayBuffer[] = []) {
  // A client that goes away before its answer aborts the task (the request's own 'close'
  // fires as soon as its body is read, so the response's is the one to watch).
  const disconnect = new AbortController();
  const onClose = () => {
    if (!reply.raw.writableFinished) disconnect.abort(new Error('client disconnected'));
  };
  reply.raw.once('close', onClose);
  const timeoutMs = request.server.config.requestTimeoutMs;
  const signal = AbortSignal.any([disconnect.signal, AbortSignal.timeout(timeoutMs)]);
  let result;
  try {
    result = await request.server.pool.run(task, { signal, transferList });
    markFinished(request);
  } catch (err) {
    if (isQuantError(err) && err.code === 'QUANT_ERR_TIMEOUT') throw new Errors.Timeout(`the task ran past REQUEST_TIMEOUT_MS=${timeoutMs} and was stopped`);
    throw err;
  } finally {
    reply.raw.off('close', onClose);
  }
  logFact(request, { op: task.op, ...result.log });
  const filename = FILENAMES[result.contentType];
  if (filename) reply.header('content-disposition', `attachment; filename="${filename}"`);
  return reply.type(result.contentType).send(Buffer.from(result.body.buffer, result.body.byteOffset, result.body.byteLength));
}
