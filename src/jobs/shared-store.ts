import { EventEmitter } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { Errors, isQuantError } from '../errors.js';
import type { Artifact, JobEvent, JobRecord, JobStore } from './types.js';
import type { S3Objects } from './s3-objects.js';

// The job store shared by replicas (JOBS_STORE=redis):
//   Redis   quantd:job:<id>   the record, read by every replica (progress lands here)
//           quantd:expiry     ZSET id → expires_at (ms), for TTL cleanup
//           quantd:bytes      HASH id → bytes held, for JOBS_MAX_BYTES
//   S3      jobs/<id>/job.json            the record at each status change: the truth when
//                                         Redis has lost it (and written first, deleted first)
//           jobs/<id>/in/<file>           the uploads
//           jobs/<id>/out/<attempt>/...   results and report.json, one directory per attempt
//                                         so a stale worker never mixes into a served result
// Events between replicas travel through BullMQ's event stream (queue-runner.ts), which
// calls publish() on every replica; subscribe() also polls, in case an event was missed
// while Redis was away.

const PREFIX = 'quantd';
const EXPIRY = `${PREFIX}:expiry`;
const BYTES = `${PREFIX}:bytes`;
const ID = /^[0-9a-f-]{36}$/;
const POLL_MS = 5000;

/** Writes the record unless it is gone (0) or already finished (-1): the first end wins. */
const GUARDED_SET = `
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local st = cjson.decode(cur).status
if st == 'succeeded' or st == 'failed' then return -1 end
redis.call('SET', KEYS[1], ARGV[1])
return 1`;

export const isFinished = (j: JobRecord) => j.status === 'succeeded' || j.status === 'failed';

function unavailable(what: string, err: unknown): Error {
  if (isQuantError(err)) return err;
  return new Errors.JobsUnavailable(`the job store is unavailable (${what}: ${(err as Error).message}); retry later`);
}

export class SharedJobStore implements JobStore {
  readonly redis: Redis;
  readonly s3: S3Objects;
  readonly #scratch: string;
  readonly #events = new EventEmitter();
  readonly #polls = new Map<string, NodeJS.Timeout>();
  /** Local work directories of the jobs this replica runs. */
  readonly #work = new Map<string, string>();

  /** `redis` must fail fast when disconnected (enableOfflineQueue: false). */
  constructor(redis: Redis, s3: S3Objects, scratchDir: string) {
    this.redis = redis;
    this.s3 = s3;
    this.#scratch = scratchDir;
    this.#events.setMaxListeners(0);
  }

  static key(id: string, rest: string): string {
    if (!ID.test(id)) throw new Error(`invalid job id ${id}`);
    return `jobs/${id}/${rest}`;
  }

  #rec(id: string): string {
    return `${PREFIX}:job:${id}`;
  }

  ready(): boolean {
    return this.redis.status === 'ready';
  }

  async create(): Promise<void> {
    // Refused at once while Redis is away: an upload would be lost at commit anyway.
    if (!this.ready()) throw new Errors.JobsUnavailable(`the job queue is unavailable (Redis is ${this.redis.status}); retry later`);
  }

  async inputWriter(id: string, file: string): Promise<Writable> {
    return this.s3.writer(SharedJobStore.key(id, `in/${file}`), (err) => unavailable('object store', err));
  }

  async #index(record: JobRecord): Promise<void> {
    await this.redis.multi().zadd(EXPIRY, Date.parse(record.expires_at), record.id).hset(BYTES, record.id, record.bytes).exec();
  }

  async commit(record: JobRecord): Promise<void> {
    try {
      await this.s3.putJson(SharedJobStore.key(record.id, 'job.json'), record);
    } catch (err) {
      throw unavailable('object store', err);
    }
    try {
      await this.redis.set(this.#rec(record.id), JSON.stringify(record));
      await this.#index(record);
    } catch (err) {
      throw unavailable('Redis', err);
    }
  }

  /** The record from S3, put back into Redis when Redis lost it. */
  async #fromS3(id: string, restore: boolean): Promise<JobRecord | undefined> {
    let record: JobRecord | undefined;
    try {
      record = (await this.s3.getJson(SharedJobStore.key(id, 'job.json'))) as JobRecord | undefined;
    } catch (err) {
      throw unavailable('object store', err);
    }
    if (record && restore) {
      await this.redis.set(this.#rec(id), JSON.stringify(record), 'NX').catch(() => undefined);
      await this.#index(record).catch(() => undefined);
    }
    return record;
  }

  async get(id: string): Promise<JobRecord | undefined> {
    if (!ID.test(id)) return undefined;
    let text: string | null;
    try {
      text = await this.redis.get(this.#rec(id));
    } catch {
      // Redis away: the S3 record still answers (its progress is the last status change's).
      return this.#fromS3(id, false);
    }
    if (text !== null) return JSON.parse(text) as JobRecord;
    return this.#fromS3(id, true);
  }

  /**
   * Merges `patch` into the record. Undefined when the job is gone or had already finished
   * (then nothing is written). Status changes are also written to S3.
   */
  async update(id: string, patch: Partial<JobRecord>): Promise<JobRecord | undefined> {
    const old = await this.get(id);
    if (!old || isFinished(old)) return undefined;
    const record: JobRecord = { ...old, ...patch, updated_at: new Date().toISOString() };
    const written = (await this.redis.eval(GUARDED_SET, 1, this.#rec(id), JSON.stringify(record))) as number;
    if (written !== 1) return undefined;
    if (record.status !== old.status || patch.expires_at !== undefined) {
      await this.s3.putJson(SharedJobStore.key(id, 'job.json'), record);
      await this.#index(record);
    }
    return record;
  }

  /** Downloads the job's inputs into a fresh local directory for the worker that runs it. */
  async workDirs(id: string): Promise<{ input: string; output: string }> {
    const job = await this.get(id);
    if (!job) throw new Error(`no job ${id}`);
    const dir = join(this.#scratch, `${id}-${randomUUID().slice(0, 8)}`);
    this.#work.set(id, dir);
    const input = join(dir, 'in');
    const output = join(dir, 'out');
    await mkdir(output, { recursive: true });
    for (const f of [job.model, ...job.external, ...(job.inputs ? [job.inputs] : []), ...(job.calibration ? [job.calibration] : [])]) {
      const path = join(input, f.file);
      await mkdir(dirname(path), { recursive: true });
      await pipeline(await this.s3.reader(SharedJobStore.key(id, `in/${f.file}`)), createWriteStream(path));
    }
    return { input, output };
  }

  async saveReport(id: string, report: unknown): Promise<void> {
    const dir = this.#work.get(id);
    if (!dir) throw new Error(`job ${id} has no work directory here`);
    await writeFile(join(dir, 'out', 'report.json'), JSON.stringify(report));
  }

  /** Uploads the results and report from the work directory; returns their S3 directory. */
  async publishResults(id: string, artifacts: Artifact[]): Promise<string> {
    const dir = this.#work.get(id);
    if (!dir) throw new Error(`job ${id} has no work directory here`);
    const results = `out/${randomUUID()}`;
    for (const name of [...artifacts.map((a) => a.name), 'report.json']) {
      await this.s3.putFile(SharedJobStore.key(id, `${results}/${name}`), createReadStream(join(dir, 'out', name)));
    }
    return results;
  }

  async discardWork(id: string): Promise<void> {
    const dir = this.#work.get(id);
    this.#work.delete(id);
    if (dir) await rm(dir, { recursive: true, force: true });
  }

  async #resultKey(id: string, name: string): Promise<string> {
    const job = await this.get(id);
    if (!job?.results_dir) throw new Errors.JobNotFound(`job ${id} has no results`);
    return SharedJobStore.key(id, `${job.results_dir}/${name}`);
  }

  async openArtifact(id: string, name: string): Promise<Readable> {
    const key = await this.#resultKey(id, name);
    try {
      return await this.s3.reader(key);
    } catch (err) {
      throw unavailable('object store', err);
    }
  }

  async artifactUrl(id: string, name: string, expiresInS: number): Promise<string> {
    return this.s3.signedUrl(await this.#resultKey(id, name), name, expiresInS);
  }

  async readReport(id: string): Promise<unknown> {
    try {
      return await this.s3.getJson(await this.#resultKey(id, 'report.json'));
    } catch (err) {
      throw unavailable('object store', err);
    }
  }

  /** Removes the record (S3's first, so no fallback finds it) and then every object. */
  async delete(id: string): Promise<void> {
    try {
      await this.s3.delete(SharedJobStore.key(id, 'job.json'));
    } catch (err) {
      throw unavailable('object store', err);
    }
    // A record left in Redis by an outage is removed by the sweep (no job.json behind it).
    await this.redis.multi().del(this.#rec(id)).zrem(EXPIRY, id).hdel(BYTES, id).exec().catch(() => undefined);
    await this.s3.deletePrefix(`jobs/${id}/`).catch(() => undefined);
  }

  /** Ids Redis holds, with their expiry (ms). */
  async indexed(): Promise<Map<string, number>> {
    const flat = await this.redis.zrange(EXPIRY, '0', '-1', 'WITHSCORES');
    const out = new Map<string, number>();
    for (let i = 0; i < flat.length; i += 2) out.set(flat[i]!, Number(flat[i + 1]));
    return out;
  }

  async hasRedisRecord(id: string): Promise<boolean> {
    return (await this.redis.exists(this.#rec(id))) === 1;
  }

  async list(): Promise<JobRecord[]> {
    const ids = [...(await this.indexed()).keys()];
    const out: JobRecord[] = [];
    for (let i = 0; i < ids.length; i += 100) {
      const texts = await this.redis.mget(ids.slice(i, i + 100).map((id) => this.#rec(id)));
      for (const t of texts) if (t) out.push(JSON.parse(t) as JobRecord);
    }
    return out;
  }

  async usage(): Promise<number> {
    try {
      return (await this.redis.hvals(BYTES)).reduce((s, v) => s + Number(v), 0);
    } catch (err) {
      throw unavailable('Redis', err);
    }
  }

  subscribe(id: string, listener: (e: JobEvent) => void): () => void {
    this.#events.on(id, listener);
    if (!this.#polls.has(id)) {
      const timer = setInterval(() => {
        void this.get(id).then(
          (job) => job && isFinished(job) && this.publish({ type: 'end', job }),
          () => undefined,
        );
      }, POLL_MS);
      timer.unref();
      this.#polls.set(id, timer);
    }
    return () => {
      this.#events.off(id, listener);
      if (this.#events.listenerCount(id) === 0) {
        clearInterval(this.#polls.get(id));
        this.#polls.delete(id);
      }
    };
  }

  /** Delivers to this replica's subscribers only; other replicas get it from the event stream. */
  publish(e: JobEvent): void {
    this.#events.emit(e.job.id, e);
  }

  close(): void {
    for (const t of this.#polls.values()) clearInterval(t);
    this.#polls.clear();
  }
}
