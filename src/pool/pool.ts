import { Piscina } from 'piscina';
import { Errors } from '../errors.js';
import { removeStagedByThread } from '../onnx/runtime/host/stage.js';
import { assertShallow } from './message-depth.js';
import type { Task, TaskReply, TaskResult } from './messages.js';

export interface PoolOptions {
  workers: number;
  /** Tasks that may wait for a worker; one more is refused with a 503. */
  maxQueue: number;
  /** Worker entry; defaults to the compiled worker beside this file. */
  filename?: string;
}

export interface RunOptions {
  signal?: AbortSignal;
  /** Buffers handed to the worker by transfer; the caller must not touch them afterwards. */
  transferList?: ArrayBuffer[];
}

export interface PoolStats {
  threads: number;
  /** Tasks accepted and not yet settled: running plus queued. */
  inFlight: number;
  queued: number;
  /** Tasks settled since the pool started, whatever their outcome. */
  completed: number;
}

/** How a task ended, as the metrics count it. */
export type TaskOutcome = 'ok' | 'error' | 'rejected' | 'timeout' | 'aborted' | 'crash';

export interface TaskSettled {
  op: Task['op'];
  outcome: TaskOutcome;
  /** Time the worker spent on it; absent when no worker finished it (rejected, stopped, crashed). */
  busyMs?: number | undefined;
  /** A model task's stage timings (ms). */
  stages?: Record<string, number> | undefined;
}

export type TaskListener = (e: TaskSettled) => void;

const WORKER_NICE = 10;

/** Seconds a client refused for a full queue is asked to wait. */
const RETRY_AFTER_S = 1;

/** The piscina pool behind one small interface: run a task, get its reply or a typed error. */
export class QuantPool {
  readonly #piscina: Piscina;
  readonly #workers: number;
  readonly #capacity: number;
  #inFlight = 0;
  readonly #listeners = new Set<TaskListener>();
  readonly #threadIds = new Set<number>();

  constructor(opts: PoolOptions) {
    this.#workers = opts.workers;
    this.#capacity = opts.workers + opts.maxQueue;
    this.#piscina = new Piscina({
      filename: new URL('./worker-entry.cjs', import.meta.url).href,
      workerData: { entry: opts.filename ?? new URL('./worker.js', import.meta.url).href },
      minThreads: opts.workers,
      maxThreads: opts.workers,
      // piscina only enforces maxQueue for tasks without an AbortSignal (those with one wait
      // in a separate, unbounded queue), and every task here has one: run() bounds it.
      maxQueue: opts.maxQueue,
      // Tasks are CPU-bound: one at a time per thread keeps the latency of each predictable.
      concurrentTasksPerWorker: 1,
      idleTimeout: Infinity,
      // Workers run at a lower CPU priority than the main thread (Linux; a no-op elsewhere), so
      // when cores are short the event loop still accepts, routes and answers probes promptly
      // instead of queueing behind tensor work. Idle cores still go to the workers.
      niceIncrement: WORKER_NICE,
    });
    // What a worker staged for its onnxruntime host goes with it (host/stage.ts): once when
    // it is destroyed, and again after close, when every thread has surely stopped.
    // piscina's worker handle names the thread as `id`; read at creation (a terminated thread's is -1).
    const ids = new WeakMap<object, number>();
    this.#piscina.on('workerCreate', (w: { id: number }) => {
      ids.set(w, w.id);
      this.#threadIds.add(w.id);
    });
    this.#piscina.on('workerDestroy', (w: { id: number }) => {
      const id = ids.get(w);
      if (id !== undefined) removeStagedByThread(id);
    });
  }

  get threads(): number {
    return this.#piscina.threads.length;
  }

  get queueSize(): number {
    return Math.max(0, this.#inFlight - this.#workers);
  }

  get stats(): PoolStats {
    return { threads: this.threads, inFlight: this.#inFlight, queued: this.queueSize, completed: this.#piscina.completed };
  }

  /** Calls listener as each task settles (the metrics count them); returns the unsubscribe. */
  observe(listener: TaskListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #settled(e: TaskSettled): void {
    for (const listener of this.#listeners) listener(e);
  }

  async run(task: Task, opts: RunOptions = {}): Promise<TaskReply> {
    if (this.#inFlight >= this.#capacity) {
      this.#settled({ op: task.op, outcome: 'rejected' });
      throw Object.assign(new Errors.Overloaded(`all ${this.#workers} workers are busy and ${this.#capacity - this.#workers} tasks are waiting (MAX_QUEUE); retry shortly`), {
        retryAfter: RETRY_AFTER_S,
      });
    }
    assertShallow(task);
    this.#inFlight++;
    let result: TaskResult;
    try {
      result = (await this.#piscina.run(task, { signal: opts.signal ?? null, transferList: opts.transferList })) as TaskResult;
    } catch (err) {
      const mapped = mapPoolError(err);
      const code = (mapped as { code?: string }).code;
      this.#settled({ op: task.op, outcome: code === 'QUANT_ERR_TIMEOUT' ? 'timeout' : code === 'QUANT_ERR_ABORTED' ? 'aborted' : 'crash' });
      throw mapped;
    } finally {
      this.#inFlight--;
    }
    if (this.#listeners.size > 0) this.#settled({ op: task.op, outcome: result.ok ? 'ok' : 'error', busyMs: result.busyMs, stages: result.ok ? result.stages : undefined });
    if (!result.ok) throw new Errors[result.error.name](result.error.message);
    return result;
  }

  async close(): Promise<void> {
    await this.#piscina.close();
    for (const id of this.#threadIds) removeStagedByThread(id);
  }
}

function mapPoolError(err: unknown): Error {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof Error && err.name === 'AbortError') {
    const reason = (err as { cause?: unknown }).cause;
    const timedOut = reason instanceof Error && reason.name === 'TimeoutError';
    return timedOut
      ? new Errors.Timeout('the task ran past REQUEST_TIMEOUT_MS and was stopped')
      : new Errors.Aborted('the request was aborted before its task finished');
  }
  // Anything else (a worker that crashed, an exception of ours) is a 500: kept whole for the log.
  return err instanceof Error ? err : new Error(message);
}
