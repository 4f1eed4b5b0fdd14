import { EventEmitter } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { StorageLedger } from '../pool/storage-ledger.js';
import type { JobEvent, JobRecord, JobStore } from './types.js';

// The embedded job store: one directory per job under JOBS_DIR,
//   <id>/job.json   the record (rewritten whole, atomically, by rename)
//   <id>/in/...     the uploads, under their own names
//   <id>/out/...    the result files and report.json
// Records are also kept in memory; the directory is the truth across restarts. The ledger
// (pool/storage-ledger.ts) counts every byte from when it is reserved, before it is written,
// to when its file is deleted: an upload's as it streams, a running job's spill file and
// results; a committed record keeps what its upload and its results reserved, and gives it
// back when the job is deleted. usage() is its total.

const ID = /^[0-9a-f-]{36}$/;
/** Progress is persisted at most this often; status changes always are. */
const PERSIST_EVERY_MS = 1000;
/** What an upload may buffer on its way to disk, and the pieces a result is read in (the defaults, 16 and 64 KiB, cost a syscall each). */
const UPLOAD_BUFFER_BYTES = 4 * 2 ** 20;
const RESULT_CHUNK_BYTES = 2 ** 20;

export class LocalJobStore implements JobStore {
  readonly ledger = new StorageLedger();
  readonly #root: string;
  readonly #records = new Map<string, JobRecord>();
  readonly #events = new EventEmitter();
  readonly #lastPersist = new Map<string, number>();
  #writes: Promise<void> = Promise.resolve();

  private constructor(root: string) {
    this.#root = root;
    this.#events.setMaxListeners(0);
  }

  /** Opens (or creates) the store and loads the records a previous run left. */
  static async open(root: string): Promise<LocalJobStore> {
    const store = new LocalJobStore(root);
    await mkdir(root, { recursive: true });
    for (const entry of await readdir(root, { withFileTypes: true })) {
      if (!entry.isDirectory() || !ID.test(entry.name)) continue;
      try {
        const record = JSON.parse(await readFile(join(root, entry.name, 'job.json'), 'utf8')) as JobRecord;
        store.#records.set(record.id, record);
        store.ledger.add(record.bytes);
      } catch {
        // A job whose upload never completed has no record: its files are garbage.
        await rm(join(root, entry.name), { recursive: true, force: true });
      }
    }
    return store;
  }

  #dir(id: string): string {
    if (!ID.test(id)) throw new Error(`invalid job id ${id}`);
    return join(this.#root, id);
  }

  async create(id: string): Promise<void> {
    await mkdir(join(this.#dir(id), 'in'), { recursive: true });
    await mkdir(join(this.#dir(id), 'out'), { recursive: true });
  }

  async inputWriter(id: string, file: string): Promise<Writable> {
    const path = join(this.#dir(id), 'in', file);
    await mkdir(dirname(path), { recursive: true });
    // 4 MiB before the socket is paused (the default 16 KiB paused it every few chunks): the
    // file gets the upload's 64 KiB chunks in batched writes (writev), not one write each.
    return createWriteStream(path, { flags: 'wx', highWaterMark: UPLOAD_BUFFER_BYTES });
  }

  #persist(record: JobRecord): Promise<void> {
    this.#lastPersist.set(record.id, Date.now());
    const path = join(this.#dir(record.id), 'job.json');
    const text = JSON.stringify(record);
    // Serialized, so an older record never lands after a newer one.
    this.#writes = this.#writes.then(async () => {
      if (!this.#records.has(record.id)) return;
      await writeFile(`${path}.tmp`, text);
      await rename(`${path}.tmp`, path);
    });
    return this.#writes;
  }

  /** The record's bytes are in the ledger already: its upload reserved them. */
  async commit(record: JobRecord): Promise<void> {
    this.#records.set(record.id, record);
    await this.#persist(record);
  }

  async get(id: string): Promise<JobRecord | undefined> {
    return this.#records.get(id);
  }

  async update(id: string, patch: Partial<JobRecord>): Promise<JobRecord | undefined> {
    const old = this.#records.get(id);
    if (!old) return undefined;
    const record = { ...old, ...patch, updated_at: new Date().toISOString() };
    this.#records.set(id, record);
    const onlyProgress = record.status === old.status && patch.progress !== undefined && Object.keys(patch).length === 1;
    if (!onlyProgress || Date.now() - (this.#lastPersist.get(id) ?? 0) >= PERSIST_EVERY_MS) await this.#persist(record);
    return record;
  }

  async workDirs(id: string): Promise<{ input: string; output: string }> {
    return { input: join(this.#dir(id), 'in'), output: join(this.#dir(id), 'out') };
  }

  async saveReport(id: string, report: unknown): Promise<void> {
    await writeFile(join(this.#dir(id), 'out', 'report.json'), JSON.stringify(report));
  }

  async openArtifact(id: string, name: string): Promise<Readable> {
    return createReadStream(join(this.#dir(id), 'out', name), { highWaterMark: RESULT_CHUNK_BYTES });
  }

  async readReport(id: string): Promise<unknown> {
    return JSON.parse(await readFile(join(this.#dir(id), 'out', 'report.json'), 'utf8'));
  }

  async delete(id: string): Promise<void> {
    const record = this.#records.get(id);
    this.#records.delete(id);
    this.#lastPersist.delete(id);
    await this.#writes;
    await rm(this.#dir(id), { recursive: true, force: true });
    // Once the files are gone: the ledger may count more than the disk holds, never less.
    if (record) this.ledger.release(record.bytes);
  }

  async list(): Promise<JobRecord[]> {
    return [...this.#records.values()];
  }

  async usage(): Promise<number> {
    return this.ledger.used;
  }

  subscribe(id: string, listener: (e: JobEvent) => void): () => void {
    this.#events.on(id, listener);
    return () => this.#events.off(id, listener);
  }

  publish(e: JobEvent): void {
    this.#events.emit(e.job.id, e);
  }
}
