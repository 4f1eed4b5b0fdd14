import { BroadcastChannel } from 'node:worker_threads';
import { randomUUID } from 'node:crypto';
import { DelayedError, Queue, QueueEvents, QueueEventsProducer, WaitingError, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import type { FastifyBaseLogger } from 'fastify';
import type { ScaleConfig } from '../config.js';
import { Errors, isQuantError } from '../errors.js';
import { cancel, cancelFlag, isCancelled, type CancelFlag } from '../pool/cancel.js';
import type { TaskLimits } from '../pool/messages.js';
import type { QuantPool } from '../pool/pool.js';
import { StorageLedger } from '../pool/storage-ledger.js';
import type { ModelReport } from '../pool/tasks/model-reply.js';
import { modelFilesTask } from './model-files-task.js';
import { PhaseClock, type PhaseObserver } from './phase-clock.js';
import type { WorkerProgress } from '../pool/tasks/quantize-model-files.js';
import { advance } from './runner.js';
import { S3Objects } from './s3-objects.js';
import type { JobService } from './service.js';
import { SharedJobStore, isFinished } from './shared-store.js';
import type { Artifact, JobProgress, JobRecord } from './types.js';

// Jobs shared by replicas (JOBS_STORE=redis): a BullMQ queue on Redis, files in S3. Any
// replica with ROLE=all|api takes uploads; any with ROLE=all|worker runs jobs. Each replica
// reads the queue's event stream once (QueueEvents) and hands progress to its SSE clients.
// A worker's death is caught by BullMQ's stall check (JOBS_LOCK_MS, JOBS_STALLED_INTERVAL_MS)
// and the job runs again elsewhere; results go to a per-attempt directory and the first
// attempt to finish wins, so a client never gets a mixed result.

export const QUEUE_NAME = 'quantd-jobs';
const CANCEL_EVENT = 'quantd-cancel';
const PROGRESS_MS = 250;
const RETRY_MS = 1000;
const SWEEP_LOCK = 'quantd:sweep-lock';

export interface QueueRunnerOptions {
  scale: ScaleConfig;
  /** Local scratch for the jobs this replica runs. */
  scratchDir: string;
  concurrency: number;
  ttlSeconds: number;
  limits: TaskLimits;
  log: FastifyBaseLogger;
  sweepMs?: number | undefined;
  maxInlineBytes?: number | undefined;
  /** JOBS_MAX_BYTES: also bounds this replica's scratch (its running jobs' inputs, spill files and results together). */
  maxBytes?: number | undefined;
  spillBytes?: number | undefined;
}

interface Running {
  flag: CancelFlag;
  why: 'delete' | 'shutdown' | undefined;
}

export class QueueJobRunner implements JobService {
  readonly #store: SharedJobStore;
  readonly #pool: QuantPool;
  readonly #opts: QueueRunnerOptions;
  readonly #connections: Redis[] = [];
  readonly #running = new Map<string, Running>();
  readonly #deleting = new Set<string>();
  /**
   * This replica's scratch: the inputs its running jobs downloaded (admitted already, so
   * counted whatever the limit), and their spill files and results, reserved as written.
   */
  readonly scratch = new StorageLedger();
  #queue: Queue | undefined;
  #producer: QueueEventsProducer | undefined;
  #events: QueueEvents | undefined;
  #worker: Worker | undefined;
  #sweeper: NodeJS.Timeout | undefined;
  #closed = false;
  #producerConnection: Redis | undefined;
  /** Told how long each phase of the jobs this replica runs took (the metrics set it). */
  phaseObserver: PhaseObserver | undefined;

  constructor(pool: QuantPool, opts: QueueRunnerOptions) {
    this.#pool = pool;
    this.#opts = opts;
    // Commands from requests fail at once while Redis is away (503), never queue up.
    const commands = this.#connect({ enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    this.#store = new SharedJobStore(commands, new S3Objects(opts.scale.s3), opts.scratchDir);
    // On connecting, and when back after an outage: find what Redis may have lost (S3
    // records) and re-queue it.
    commands.on('ready', () => {
      if (!this.#closed) setTimeout(() => void this.sweep(), RETRY_MS).unref();
    });
  }

  #connect(extra: Record<string, unknown>): Redis {
    const redis = new Redis(this.#opts.scale.redisUrl, { lazyConnect: false, ...extra });
    // ioredis reconnects by itself; an unhandled 'error' event would only add noise.
    redis.on('error', (err: Error) => this.#opts.log.debug({ err: err.message }, 'redis connection error'));
    this.#connections.push(redis);
    return redis;
  }

  get store(): SharedJobStore {
    return this.#store;
  }

  /** Ready only when every connection a request uses (the store's and the producer's) is: each reconnects on its own after an outage. */
  ready(): boolean {
    return !this.#closed && this.#store.ready() && (this.#producerConnection === undefined || this.#producerConnection.status === 'ready');
  }

  expiry(): string {
    return new Date(Date.now() + this.#opts.ttlSeconds * 1000).toISOString();
  }

  async start(): Promise<void> {
    const { scale, log } = this.#opts;
    const producer = this.#connect({ enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    this.#producerConnection = producer;
    this.#queue = new Queue(QUEUE_NAME, { connection: producer });
    this.#queue.on('error', (err) => log.debug({ err: err.message }, 'queue error'));
    this.#producer = new QueueEventsProducer(QUEUE_NAME, { connection: producer });
    this.#events = new QueueEvents(QUEUE_NAME, { connection: this.#connect({ maxRetriesPerRequest: null }) });
    this.#events.on('error', (err) => log.debug({ err: (err as Error).message }, 'queue events error'));
    this.#events.on('progress', ({ jobId, data }) => {
      const job = data as unknown as JobRecord;
      if (job && typeof job === 'object' && job.id === jobId) this.#store.publish({ type: 'progress', job });
    });
    this.#events.on('completed', ({ jobId }) => void this.#ended(jobId));
    this.#events.on('failed', ({ jobId, failedReason }) => void this.#ended(jobId, failedReason));
    (this.#events as unknown as NodeJS.EventEmitter).on(CANCEL_EVENT, ({ jobId }: { jobId: string }) => this.#stop(jobId, 'delete'));
    if (scale.role !== 'api') {
      this.#worker = new Worker(QUEUE_NAME, (job, token) => this.#process(job, token), {
        connection: this.#connect({ maxRetriesPerRequest: null }),
        concurrency: this.#opts.concurrency,
        lockDuration: scale.lockMs,
        stalledInterval: scale.stalledIntervalMs,
        maxStalledCount: 1,
      });
      this.#worker.on('error', (err) => log.warn({ err: err.message }, 'job worker error'));
    }
    setTimeout(() => void this.sweep(), RETRY_MS).unref();
    this.#sweeper = setInterval(() => void this.sweep(), this.#opts.sweepMs ?? 60_000);
    this.#sweeper.unref();
  }

  async enqueue(id: string): Promise<void> {
    try {
      await this.#queue!.add(
        'quantize',
        { id },
        {
          jobId: id,
          attempts: this.#opts.scale.attempts,
          backoff: { type: 'exponential', delay: RETRY_MS },
          // The record (Redis and S3) outlives BullMQ's job: finished jobs leave the queue.
          removeOnComplete: true,
          removeOnFail: true,
        },
      );
    } catch (err) {
      throw new Errors.JobsUnavailable(`the job queue is unavailable (${(err as Error).message}); retry later`);
    }
  }

  isDeleting(id: string): boolean {
    return this.#deleting.has(id);
  }

  async cancel(id: string): Promise<void> {
    this.#deleting.add(id);
    try {
      // Gone for every replica at once; the worker holding it stops at its next checkpoint.
      await this.#store.delete(id);
      this.#stop(id, 'delete');
      const job = await this.#queue!.getJob(id).catch(() => undefined);
      if (!job) return;
      try {
        await job.remove();
      } catch {
        // Active, so locked by a worker somewhere: tell them all.
        await this.#producer!.publishEvent({ eventName: CANCEL_EVENT, jobId: id }).catch(() => undefined);
      }
    } finally {
      this.#deleting.delete(id);
    }
  }

  #stop(id: string, why: 'delete' | 'shutdown'): void {
    const running = this.#running.get(id);
    if (!running) return;
    running.why ??= why;
    cancel(running.flag);
  }

  /** A job left the queue: tell this replica's subscribers how it ended. */
  async #ended(id: string, failedReason?: string): Promise<void> {
    let job = await this.#store.get(id).catch(() => undefined);
    if (job && !isFinished(job) && failedReason !== undefined) {
      // Failed outside the processor (e.g. stalled past the limit): every replica may try; one write wins.
      const patch = { status: 'failed' as const, error: { code: 'QUANT_ERR_INTERNAL', message: `the job failed: ${failedReason}` }, expires_at: this.expiry() };
      job = (await this.#store.update(id, patch).catch(() => undefined)) ?? (await this.#store.get(id).catch(() => undefined));
    }
    if (job && isFinished(job)) this.#store.publish({ type: 'end', job });
  }

  async #finish(id: string, patch: Partial<JobRecord>): Promise<JobRecord | undefined> {
    return this.#store.update(id, { ...patch, expires_at: this.expiry() });
  }

  async #process(job: Job, token: string | undefined): Promise<string> {
    const id = job.id!;
    const store = this.#store;
    this.#opts.log.debug({ job: id, attemptsStarted: job.attemptsStarted }, 'job taken');
    const first = await store.get(id);
    // Deleted (S3's record goes first), or already finished by an earlier attempt.
    if (!first || isFinished(first) || !(await store.s3.getJson(SharedJobStore.key(id, 'job.json')))) return 'gone';
    const entry: Running = { flag: cancelFlag(), why: undefined };
    this.#running.set(id, entry);
    const channelName = `quantd-job-${id}-${randomUUID()}`;
    const channel = new BroadcastChannel(channelName);
    channel.unref();
    let progress: JobProgress = first.progress;
    let updates = Promise.resolve();
    let timer: NodeJS.Timeout | undefined;
    const flush = () => {
      timer = undefined;
      const snapshot = progress;
      updates = updates
        .then(async () => {
          const updated = await store.update(id, { progress: snapshot });
          if (updated) await job.updateProgress(updated as unknown as object);
          else if (!(await store.get(id))) this.#stop(id, 'delete');
        })
        // Progress is best effort: a Redis blip must not fail the job.
        .catch(() => undefined);
    };
    const clock = new PhaseClock(() => this.phaseObserver, first);
    const account = this.scratch.account();
    channel.onmessage = (event) => {
      clock.enter((event as { data: WorkerProgress }).data.phase);
      progress = advance(progress, (event as { data: WorkerProgress }).data);
      timer ??= setTimeout(flush, PROGRESS_MS);
    };
    const quiet = async () => {
      channel.close();
      if (timer) clearTimeout(timer);
      timer = undefined;
      await updates;
    };
    try {
      account.add(first.bytes);
      const dirs = await store.workDirs(id);
      const running = await store.update(id, { status: 'running', attempts: first.attempts + 1 });
      if (!running) return 'gone';
      clock.enter('decoding');
      this.#opts.log.info({ job: id, attempt: running.attempts }, 'job started');
      await job.updateProgress(running as unknown as object).catch(() => undefined);
      const { maxBytes } = this.#opts;
      // Scratch is local and discarded after the attempt: bounded per replica, not counted in Redis.
      const storage = maxBytes === undefined ? undefined : { ledger: this.scratch.buffer, account: account.buffer, maxBytes };
      const result = await this.#pool.run(
        modelFilesTask(first, dirs, { limits: this.#opts.limits, maxInlineBytes: this.#opts.maxInlineBytes, progressChannel: channelName, cancel: entry.flag, storage, spillBytes: this.#opts.spillBytes }),
      );
      clock.enter('done');
      await quiet();
      if (isCancelled(entry.flag)) throw new Errors.Aborted('the job was cancelled');
      const meta = result.meta as { report: ModelReport; summaryHeader: string; artifacts: Artifact[] };
      for (const warning of result.warnings ?? []) this.#opts.log.warn({ job: id }, warning);
      await store.saveReport(id, meta.report);
      const resultsDir = await store.publishResults(id, meta.artifacts);
      const done = await this.#finish(id, {
        status: 'succeeded',
        progress: { ...progress, phase: 'done', fraction: 1 },
        summary: meta.report.summary,
        summary_header: meta.summaryHeader,
        artifacts: meta.artifacts,
        results_dir: resultsDir,
        bytes: first.bytes + meta.artifacts.reduce((s, a) => s + a.size, 0),
      });
      // Another attempt finished first, or the job was deleted: these results are not served.
      if (!done) await store.s3.deletePrefix(SharedJobStore.key(id, `${resultsDir}/`)).catch(() => undefined);
      this.#opts.log.info({ job: id, served: done !== undefined }, 'job finished');
      return 'done';
    } catch (err) {
      await quiet();
      if (isCancelled(entry.flag)) {
        if (entry.why === 'shutdown') {
          // Handed back now rather than after the stall check: another replica takes it.
          await job.moveToWait(token);
          this.#opts.log.info({ job: id }, 'job handed back');
          throw new WaitingError();
        }
        await store.s3.deletePrefix(`jobs/${id}/`).catch(() => undefined);
        this.#opts.log.info({ job: id }, 'job cancelled');
        return 'cancelled';
      }
      if (isQuantError(err) && err.code === 'QUANT_ERR_OVERLOADED') {
        await job.moveToDelayed(Date.now() + RETRY_MS, token);
        throw new DelayedError();
      }
      // The model's own errors are final; infrastructure errors are retried (JOBS_ATTEMPTS).
      if (isQuantError(err) && err.code !== 'QUANT_ERR_JOBS_UNAVAILABLE') {
        await this.#finish(id, { status: 'failed', error: { code: err.code, message: err.message } });
        return 'failed';
      }
      this.#opts.log.error({ err, job: id, attempt: job.attemptsMade + 1 }, 'job attempt failed');
      if (job.attemptsMade + 1 < (job.opts.attempts ?? 1)) throw err;
      await this.#finish(id, { status: 'failed', error: { code: 'QUANT_ERR_INTERNAL', message: `internal error; it has been logged with job id ${id}` } });
      return 'failed';
    } finally {
      this.#running.delete(id);
      await store.discardWork(id).catch(() => undefined);
      account.releaseAll();
    }
  }

  /**
   * TTL cleanup and repair, by one replica at a time: expired jobs go; records Redis lost
   * (S3 still has them) come back, unfinished ones re-queued; records deleted during an
   * outage (no S3 record behind them) and uploads that never committed are removed.
   */
  async sweep(): Promise<void> {
    if (this.#closed || !this.#queue) return;
    const store = this.#store;
    try {
      const ttlMs = this.#opts.ttlSeconds * 1000;
      const lock = await store.redis.set(SWEEP_LOCK, randomUUID(), 'PX', 60_000, 'NX');
      if (lock !== 'OK') return;
      try {
        const now = Date.now();
        const indexed = await store.indexed();
        const objects = await store.s3.list('jobs/');
        const inS3 = new Map<string, { record: boolean; newest: number }>();
        for (const o of objects) {
          const [, id, rest] = o.key.split('/', 3);
          if (!id) continue;
          const seen = inS3.get(id) ?? { record: false, newest: 0 };
          seen.record ||= rest === 'job.json';
          seen.newest = Math.max(seen.newest, o.lastModified);
          inS3.set(id, seen);
        }
        for (const [id, expires] of indexed) {
          if (!inS3.get(id)?.record || expires < now) {
            if (await this.#idle(id)) await store.delete(id);
            continue;
          }
          // A record whose queue entry Redis lost (read back from S3 since): queue it again.
          const job = await store.get(id);
          if (job && !isFinished(job) && !(await this.#queue.getJob(id))) await this.#requeue(id);
        }
        for (const [id, seen] of inS3) {
          if (indexed.has(id)) continue;
          if (!seen.record) {
            if (now - seen.newest > ttlMs) await store.s3.deletePrefix(`jobs/${id}/`);
            continue;
          }
          const job = await store.get(id);
          if (!job) continue;
          if (Date.parse(job.expires_at) < now) await store.delete(id);
          else if (!isFinished(job)) await this.#requeue(id);
        }
      } finally {
        await store.redis.del(SWEEP_LOCK);
      }
    } catch (err) {
      this.#opts.log.warn({ err: (err as Error).message }, 'job sweep failed; it runs again later');
    }
  }

  async #requeue(id: string): Promise<void> {
    this.#opts.log.warn({ job: id }, 're-queuing a job Redis had lost');
    await this.enqueue(id);
  }

  /** Not waiting, delayed or running in the queue. */
  async #idle(id: string): Promise<boolean> {
    const job = await this.#queue!.getJob(id);
    if (!job) return true;
    const state = await job.getState();
    return state === 'completed' || state === 'failed' || state === 'unknown';
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#sweeper) clearInterval(this.#sweeper);
    for (const id of this.#running.keys()) this.#stop(id, 'shutdown');
    await this.#worker?.close();
    await this.#events?.close();
    await this.#producer?.close();
    await this.#queue?.close();
    this.#store.close();
    this.#store.s3.close();
    for (const c of this.#connections) c.disconnect();
  }
}
