import { Piscina } from 'piscina';
import { Errors } from '../errors.js';
import type { Task, TaskReply, TaskResult } from './messages.js';

export interface PoolOptions {
  workers: number;
  maxQueue: number;
  /** Worker entry; defaults to the compiled worker beside this file. */
  filename?: string;
}

export interface RunOptions {
  signal?: AbortSignal;
  /** Buffers handed to the worker by transfer; the caller must not touch them afterwards. */
  transferList?: ArrayBuffer[];
}

/** The piscina pool behind one small interface: run a task, get its reply or a typed error. */
export class QuantPool {
  readonly #piscina: Piscina;

  constructor(opts: PoolOptions) {
    this.#piscina = new Piscina({
      filename: opts.filename ?? new URL('./worker.js', import.meta.url).href,
      minThreads: opts.workers,
      maxThreads: opts.workers,
      maxQueue: opts.maxQueue,
      // Tasks are CPU-bound: one at a time per thread keeps the latency of each predictable.
      concurrentTasksPerWorker: 1,
      idleTimeout: Infinity,
    });
  }

  get threads(): number {
    return this.#piscina.threads.length;
  }

  get queueSize(): number {
    return this.#piscina.queueSize;
  }

  async run(task: Task, opts: RunOptions = {}): Promise<TaskReply> {
    let result: TaskResult;
    try {
      result = (await this.#piscina.run(task, { signal: opts.signal ?? null, transferList: opts.transferList })) as TaskResult;
    } catch (err) {
      throw mapPoolError(err);
    }
    if (!result.ok) throw new Errors[result.error.name](result.error.message);
    return result;
  }

  async close(): Promise<void> {
    await this.#piscina.close();
  }
}

function mapPoolError(err: unknown): Error {
  const message = err instanceof Error ? err.message : String(err);
  if (message === 'Task queue is at limit') {
    return Object.assign(new Errors.Overloaded('the worker queue is full; retry shortly'), { retryAfter: 1 });
  }
  if (err instanceof Error && err.name === 'AbortError') {
    const reason = (err as { cause?: unknown }).cause;
    const timedOut = reason instanceof Error && reason.name === 'TimeoutError';
    return timedOut
      ? new Errors.Timeout('the task ran past REQUEST_TIMEOUT_MS and was stopped')
      : new Errors.Aborted('the request was aborted before its task finished');
  }
  return err instanceof Error ? err : new Error(message);
}
