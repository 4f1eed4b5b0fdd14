import { endianness } from 'node:os';
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { errorNameOf, isQuantError, type ErrorPayload } from '../errors.js';
import type { Task, TaskReply, TaskResult } from './messages.js';
import { runAnalyze } from './tasks/analyze.js';
import { runDequantize } from './tasks/dequantize.js';
import { runMatmul } from './tasks/matmul.js';
import { runQuantize } from './tasks/quantize.js';
import { runQuantizeModel } from './tasks/quantize-model.js';
import { runQuantizeModelFiles } from './tasks/quantize-model-files.js';
import { runQuantizeWeights } from './tasks/quantize-weights.js';
import { runQuantizeWeightsFiles } from './tasks/quantize-weights-files.js';

// Typed-array views are used as little-endian storage throughout.
if (endianness() !== 'LE') throw new Error('quantd needs a little-endian host');

function run(task: Task): TaskReply | Promise<TaskReply> {
  switch (task.op) {
    case 'quantize':
      return runQuantize(task);
    case 'dequantize':
      return runDequantize(task);
    case 'analyze':
      return runAnalyze(task);
    case 'matmul':
      return runMatmul(task);
    case 'quantizeModel':
      return runQuantizeModel(task);
    case 'quantizeModelFiles':
      return runQuantizeModelFiles(task);
    case 'quantizeWeights':
      return runQuantizeWeights(task);
    case 'quantizeWeightsFiles':
      return runQuantizeWeightsFiles(task);
  }
}

function toPayload(err: unknown): ErrorPayload | undefined {
  if (!isQuantError(err)) return undefined;
  const name = errorNameOf(err.code);
  return name ? { name, message: err.message } : undefined;
}

/**
 * The worker entry. Expected errors come back as values (their class does not survive
 * structured cloning); anything else is thrown and becomes a 500 on the main thread.
 */
export default async function handle(task: Task): Promise<TaskResult> {
  let reply: TaskReply;
  try {
    reply = await run(task);
  } catch (err) {
    const error = toPayload(err);
    if (error) return { ok: false, error };
    throw err;
  }
  const result: TaskResult = { ok: true, ...reply };
  // The reply body is handed to the main thread by transfer, not copied.
  const buffer = reply.body.buffer;
  const transferable = buffer instanceof ArrayBuffer && reply.body.byteLength === buffer.byteLength;
  if (!transferable) return result;
  return move({ [transferableSymbol]: [buffer], [valueSymbol]: result }) as unknown as TaskResult;
}
