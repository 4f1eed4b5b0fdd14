import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Task } from '../pool/messages.js';

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
  const signal = AbortSignal.any([disconnect.signal, AbortSignal.timeout(request.server.config.requestTimeoutMs)]);
  let result;
  try {
    result = await request.server.pool.run(task, { signal, transferList });
  } finally {
    reply.raw.off('close', onClose);
  }
  request.log.info({ op: task.op, shape: result.log.shape, elements: result.log.elements }, 'task done');
  const filename = FILENAMES[result.contentType];
  if (filename) reply.header('content-disposition', `attachment; filename="${filename}"`);
  return reply.type(result.contentType).send(Buffer.from(result.body.buffer, result.body.byteOffset, result.body.byteLength));
}
