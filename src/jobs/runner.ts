import { BroadcastChannel } from 'node:worker_threads';
import { randomUUID } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import { isQuantError } from '../errors.js';
import { cancel, cancelFlag, isCancelled, type CancelFlag } from '../pool/cancel.js';
import type { TaskLimits } from '../pool/messages.js';
import type { QuantPool } from '../pool/pool.js';
import { StorageLedger } from '../pool/storage-ledger.js';
import type { WorkerProgress } from '../pool/tasks/quantize-model-files.js';
import type { ModelReport } from '../pool/tasks/model-reply.js';
import { modelFilesTask } from './model-files-task.js';
import { PhaseClock, type PhaseObserver } from './phase-clock.js';
import type { JobService } from './service.js';
import type { Artifact, JobProgress, JobRecord, JobStore } from './types.js';

// Runs queued jobs in the worker pool, a few at a time so synchronous requests keep
// workers, and turns worker progress into monotonic job progress. Expired jobs are swept.

export interface RunnerOptions {
  concurrency: number;
  ttlSeconds: number;
  limits: TaskLimits;
  log: FastifyBaseLogger;
  /** How often expired jobs are looked for. */
  sweepMs?: number | undefined;
  /** Largest result written as one .onnx; past it, .onnx + external data in a zip. */
  maxInlineBytes?: number | undefined;
  /** JOBS_MAX_BYTES: a running job's spill file and results reserve from the store's ledger under it (and fail the job past it). */
  maxBytes?: number | undefined;
  /** Quantized tensors a job holds before spilling (default SPILL_BYTES); tests lower it. */
  spillBytes?: number | undefined;
}

// Quantizing is most of the work; writing and validating share the rest.
const SHARE = { reference: 0.02, calibrating: 0.5, quantizing: 0.85, writing: 0.9, validating: 0.95 } as const;
const RETRY_MS = 1000;

/** Empties a job's output directory (left as it was: the store made it). */
async function clearDir(dir: string): Promise<void> {
  for (const name of await readdir(dir).catch(() => [])) await rm(join(dir, name), { recursive: true, force: true });
}

export const INITIAL_PROGRESS: JobProgress = { phase: 'queued', tensors_done: 0, tensors_total: 0, bytes_done: 0, bytes_total: 0, fraction: 0 };

export function advance(old: JobProgress, p: WorkerProgress): JobProgress {
  if (p.phase === 'calibrating') {
    const share = p.samplesTotal > 0 ? p.samplesDone / p.samplesTotal : 1;
    return {
      ...old,
      phase: 'calibrating',
      samples_done: p.samplesDone,
      samples_total: p.samplesTotal,
      fraction: Math.max(old.fraction, SHARE.reference + (SHARE.calibrating - SHARE.reference) * share),
    };
  }
  if (p.phase !== 'quantizing') return { ...old, phase: p.phase, fraction: Math.max(old.fraction, SHARE[p.phase]) };
  const share = p.bytesTotal > 0 ? p.bytesDone / p.bytesTotal : 1;
  return {
    ...old,
    phase: 'quantizing',
    tensors_done: p.tensorsDone,
    tensors_total: p.tensorsTotal,
    bytes_done: p.bytesDone,
    bytes_total: p.bytesTotal,
    // Quantizing spans (reference share .. quantizing share).
    fraction: Math.max(old.fraction, SHARE.reference + (SHARE.quantizing - SHARE.reference) * share),
  };
}

export class JobRunner implements JobService {
  readonly #store: JobStore;
  readonly #pool: QuantPool;
  readonly #opts: RunnerOptions;
  readonly #queue: string[] = [];
  readonly #deleting = new Set<string>();
  /** Running jobs and their cancel flags: a worker running onnxruntime is never terminated (pool/cancel.ts). */
  readonly #running = new Map<string, CancelFlag>();
  /** The store's, so uploads and running jobs share one room; a store without one (tests) still bounds the jobs together. */
  readonly #ledger: StorageLedger;
  #sweeper: NodeJS.Timeout | undefined;
  #closed = false;
  /**
   * Told how long each job spent in each phase (the metrics set it): the progress phases, plus
   * 'decoding' for the start of a task before its first progress message.
   */
  phaseObserver: PhaseObserver | undefined;

  constructor(store: JobStore, pool: QuantPool, opts: RunnerOptions) {
    this.#store = store;
    this.#pool = pool;
    this.#opts = opts;
    this.#ledger = store.ledger ?? new StorageLedger();
  }

  get store(): JobStore {
    return this.#store;
  }

  /** Re-queues jobs a previous run left unfinished (once), and starts sweeping. */
  async start(): Promise<void> {
    for (const job of await this.#store.list()) {
      if (job.status !== 'queued' && job.status !== 'running') continue;
      if (job.attempts >= 2) {
        await this.#finish(job.id, { status: 'failed', error: { code: 'QUANT_ERR_INTERNAL', message: 'the job was interrupted twice by a restart; submit it again' } });
      } else {
        // What the interrupted run wrote (its spill file, part of a result) was never counted: gone before it runs again.
        await clearDir((await this.#store.workDirs(job.id)).output);
        await this.#store.update(job.id, { status: 'queued', progress: INITIAL_PROGRESS });
        this.#queue.push(job.id);
      }
    }
    await this.sweep();
    this.#sweeper = setInterval(() => void this.sweep(), this.#opts.sweepMs ?? 60_000);
    this.#sweeper.unref();
    this.#pump();
  }

  ready(): boolean {
    return !this.#closed;
  }

  expiry(): string {
    return new Date(Date.now() + this.#opts.ttlSeconds * 1000).toISOString();
  }

  enqueue(id: string): void {
    this.#queue.push(id);
    this.#pump();
  }

  /**
   * Stops a job (queued or running) and deletes it with its files. A running one is deleted
   * once its task has reached its next checkpoint; until then it is already gone for callers.
   */
  async cancel(id: string): Promise<void> {
    const i = this.#queue.indexOf(id);
    if (i >= 0) this.#queue.splice(i, 1);
    const running = this.#running.get(id);
    if (!running) return this.#store.delete(id);
    this.#deleting.add(id);
    cancel(running);
  }

  /** A job being deleted: hidden from callers while its task winds down. */
  isDeleting(id: string): boolean {
    return this.#deleting.has(id);
  }

  async sweep(): Promise<void> {
    const now = Date.now();
    for (const job of await this.#store.list()) {
      if (Date.parse(job.expires_at) < now && !this.#running.has(job.id) && !this.#queue.includes(job.id)) await this.#store.delete(job.id);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#sweeper) clearInterval(this.#sweeper);
    // Interrupted jobs stay 'running' on disk and are re-queued by the next start(); the
    // pool's close waits for them to reach their next checkpoint.
    for (const flag of this.#running.values()) cancel(flag);
  }

  #pump(): void {
    while (!this.#closed && this.#running.size < this.#opts.concurrency && this.#queue.length > 0) {
      const id = this.#queue.shift()!;
      const flag = cancelFlag();
      this.#running.set(id, flag);
      void this.#run(id, flag).finally(async () => {
        this.#running.delete(id);
        if (this.#deleting.delete(id)) await this.#store.delete(id);
        this.#pump();
      });
    }
  }

  async #finish(id: string, patch: Partial<JobRecord>): Promise<JobRecord | undefined> {
    const job = await this.#store.update(id, { ...patch, expires_at: this.expiry() });
    if (job) this.#store.publish({ type: 'end', job });
    return job;
  }

  async #run(id: string, flag: CancelFlag): Promise<void> {
    const job = await this.#store.get(id);
    if (!job) return;
    const dirs = await this.#store.workDirs(id);
    const channelName = `quantd-job-${id}-${randomUUID()}`;
    const channel = new BroadcastChannel(channelName);
    channel.unref();
    let progress = job.progress;
    let updates = Promise.resolve();
    const clock = new PhaseClock(() => this.phaseObserver, job);
    const account = this.#ledger.account();
    channel.onmessage = (event) => {
      const data = (event as { data: WorkerProgress }).data;
      clock.enter(data.phase);
      progress = advance(progress, data);
      const snapshot = progress;
      updates = updates.then(async () => {
        const updated = await this.#store.update(id, { progress: snapshot });
        if (updated) this.#store.publish({ type: 'progress', job: updated });
      });
    };
    try {
      const running = await this.#store.update(id, { status: 'running', attempts: job.attempts + 1 });
      clock.enter('decoding');
      if (running) this.#store.publish({ type: 'progress', job: running });
      const { maxBytes } = this.#opts;
      const storage = maxBytes === undefined ? undefined : { ledger: this.#ledger.buffer, account: account.buffer, maxBytes };
      const result = await this.#pool.run(
        modelFilesTask(job, dirs, { limits: this.#opts.limits, maxInlineBytes: this.#opts.maxInlineBytes, progressChannel: channelName, cancel: flag, storage, spillBytes: this.#opts.spillBytes }),
      );
      // Progress still in flight is moot now; closing drops it, so none lands after the end.
      channel.close();
      clock.enter('done');
      await updates;
      const meta = result.meta as { report: ModelReport; summaryHeader: string; artifacts: Artifact[] };
      for (const warning of result.warnings ?? []) this.#opts.log.warn({ job: id }, warning);
      await this.#store.saveReport(id, meta.report);
      const outBytes = meta.artifacts.reduce((s, a) => s + a.size, 0);
      const done = await this.#finish(id, {
        status: 'succeeded',
        progress: { ...progress, phase: 'done', fraction: 1 },
        summary: meta.report.summary,
        summary_header: meta.summaryHeader,
        artifacts: meta.artifacts,
        bytes: job.bytes + outBytes,
      });
      // The record keeps the results' bytes (given back when the job is deleted); a store without the ledger does not.
      if (done && this.#store.ledger) account.handOver(outBytes);
      else account.releaseAll();
    } catch (err) {
      channel.close();
      await updates;
      // The task deleted what it wrote, unless its worker died first.
      if (account.held > 0) await clearDir(dirs.output);
      account.releaseAll();
      if (isCancelled(flag)) return;
      if (isQuantError(err) && err.code === 'QUANT_ERR_OVERLOADED') {
        await this.#store.update(id, { status: 'queued' });
        setTimeout(() => this.enqueue(id), RETRY_MS).unref();
        return;
      }
      const known = isQuantError(err);
      if (!known) this.#opts.log.error({ err, job: id }, 'job failed');
      await this.#finish(id, {
        status: 'failed',
        error: known ? { code: err.code, message: err.message } : { code: 'QUANT_ERR_INTERNAL', message: `internal error; it has been logged with job id ${id}` },
      });
    }
  }
}
