import type { FastifyReply, FastifyRequest } from 'fastify';
import { Errors } from '../errors.js';
import { cancel, cancelFlag } from '../pool/cancel.js';
import type { Task, TaskReply } from '../pool/messages.js';
import { logFact } from './request-log.js';

type ModelTask = Extract<Task, { op: 'quantizeModel' | 'quantizeWeights' }>;

/**
 * sendReply for model tasks. They run onnxruntime, whose worker must never be terminated
 * mid-run (see pool/cancel.ts), so a client that goes away or a task past REQUEST_TIMEOUT_MS
 * raises the task's cancel flag instead of aborting it: the answer (504, or nothing for a
 * gone client) is immediate and the worker stops at its next checkpoint.
 */
export async function sendModelReply(request: FastifyRequest, reply: FastifyReply, task: ModelTask, transferList: ArrayBuffer[]) {
  const flag = cancelFlag();
  let ended = false;
  const running = request.server.pool.run({ ...task, cancel: flag }, { transferList }).finally(() => {
    ended = true;
  });
  // The task's own end is awaited below or deliberately dropped once we have answered.
  running.catch(() => {});
  const timeoutMs = request.server.config.requestTimeoutMs;
  let timer: NodeJS.Timeout | undefined;
  let onClose: (() => void) | undefined;
  const stopped = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Errors.Timeout(`the task ran past REQUEST_TIMEOUT_MS=${timeoutMs} and was stopped: POST /v1/jobs takes the same request and has no deadline`)), timeoutMs);
    onClose = () => {
      if (!reply.raw.writableFinished) reject(new Errors.Aborted('the request was aborted before its task finished'));
    };
    reply.raw.once('close', onClose);
  });
  let result: TaskReply;
  try {
    result = await Promise.race([running, stopped]);
  } catch (err) {
    // Only a task still running is stopped. One that ended with an error (a 400 found in the
    // worker) may have left a request in its thread's onnxruntime host, such as the reference
    // run started before quantizing: raising its flag now made that request's poll kill the
    // host while the next task on the thread was using it (its validation came back as
    // 'onnxruntime crashed (SIGKILL)').
    if (!ended) cancel(flag);
    throw err;
  } finally {
    clearTimeout(timer);
    if (onClose) reply.raw.off('close', onClose);
  }
  logFact(request, { op: task.op, ...result.log });
  for (const warning of result.warnings ?? []) request.log.warn({ op: task.op }, warning);
  if (result.headers) reply.headers(result.headers);
  return reply.type(result.contentType).send(Buffer.from(result.body.buffer, result.body.byteOffset, result.body.byteLength));
}
